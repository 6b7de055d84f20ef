"""``testbed sweep``: a TOML grid of training runs, saved job by job, resumed, summarised with 95 % intervals,
validated, and the same on Ray as on the local pool."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

import testbed.cmd_sweep as cmd_sweep
from testbed.cmd_sweep import load_sweep, sweep
from testbed.store import Store

REPO = Path(__file__).resolve().parents[2]

TINY = """
[sweep]
name = "tiny"
seeds = [0, 1, 2]
x = "physical"
baselines = ["maxp-3gpp-cqi", "random"]

[base]
episodes = 2
num_envs = 1
eval_episodes = 1
learning_starts = 4
batch_size = 4
ota_every = 2

[base.twin]
num_aps = 1
num_devices = 2
num_rrbs = 2
slots_per_episode = 2

[grid]
physical = ["analytic:phi=0.0", "analytic:phi=0.9"]
"""


def _write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _sweep(tmp_path: Path, file: Path, *extra: str, out: str = "out"):
    return CliRunner().invoke(sweep, [str(file), "--store", str(tmp_path / "store.sqlite"),
                                      "--out", str(tmp_path / out), "--workers", "1", "--json", *extra])


def _result(invocation) -> dict:
    return json.loads(invocation.stdout.strip().splitlines()[-1])


def test_a_sweep_saves_every_job_summarises_with_95_ci_and_resumes_only_the_missing_job(tmp_path):
    file = _write(tmp_path, TINY)
    first = _sweep(tmp_path, file)
    assert first.exit_code == 0, first.output
    result = _result(first)
    assert (result["jobs"], result["jobs_run"], result["jobs_kept"], result["failed"]) == (6, 6, 0, [])

    with Store(tmp_path / "store.sqlite") as store:
        saved = store.sweep_jobs("tiny")
    assert len(saved) == 6 and all(row["status"] == "done" for row in saved.values())
    # The summary is the mean and the Student-t 95 % half-width over the seeds of each grid point.
    for row in result["points"]:
        values = [job["result"]["eval_policy_mbps"] for job in saved.values() if job["config"]["point"] == row["point"]]
        assert len(values) == 3 and sorted(row["seeds_done"]) == [0, 1, 2]
        mean = sum(values) / 3
        half = stats.t.ppf(0.975, 2) * stats.tstd(values) / math.sqrt(3)
        assert row["eval_policy_mbps"]["mean"] == pytest.approx(mean, rel=1e-12)
        assert row["eval_policy_mbps"]["ci95"] == pytest.approx(half, rel=1e-9)
        assert row["eval_olla_mbps"]["mean"] is None                       # not among this sweep's baselines
        assert row["physical_episodes"]["mean"] == 1                       # episode 2 of 2 with Z_k = 2
    # The baselines do not learn: at phi = 0.9 the physical network is worse for them than at phi = 0.
    by_phi = {row["point"]["physical"]: row for row in result["points"]}
    assert (by_phi["analytic:phi=0.9"]["eval_maxp_3gpp_cqi_mbps"]["mean"]
            < by_phi["analytic:phi=0.0"]["eval_maxp_3gpp_cqi_mbps"]["mean"])
    out = tmp_path / "out"
    with open(out / "summary.csv") as stream:
        table = list(csv.DictReader(stream))
    assert [r["physical"] for r in table] == ["analytic:phi=0.0", "analytic:phi=0.9"]
    assert float(table[0]["eval_policy_mbps_mean"]) == result["points"][0]["eval_policy_mbps"]["mean"]
    assert Path(result["plot"]).stat().st_size > 5000
    assert json.loads((out / "summary.json").read_text())["points"] == result["points"]

    # As after a kill: one job's saved result is gone; the rerun trains that job alone, to the same numbers.
    forgotten = sorted(saved)[3]
    with Store(tmp_path / "store.sqlite") as store:
        assert store.delete_sweep_jobs("tiny", [forgotten]) == 1
    again = _sweep(tmp_path, file)
    assert again.exit_code == 0, again.output
    resumed = _result(again)
    assert (resumed["jobs_run"], resumed["jobs_kept"]) == (1, 5)
    assert resumed["points"] == result["points"]
    with Store(tmp_path / "store.sqlite") as store:
        assert store.sweep_jobs("tiny")[forgotten]["result"] == saved[forgotten]["result"]


def test_a_failed_job_is_reported_with_config_and_traceback_the_others_are_saved_and_it_reruns(tmp_path, monkeypatch):
    file = _write(tmp_path, TINY)
    real = cmd_sweep.train_job

    def flaky(config):
        if config["seed"] == 1 and config["point"]["physical"] == "analytic:phi=0.9":
            raise FloatingPointError("diverged")
        return real(config)

    monkeypatch.setattr(cmd_sweep, "train_job", flaky)
    failed = _sweep(tmp_path, file)
    assert failed.exit_code == 1
    assert "1 of 6 jobs failed: physical=analytic:phi=0.9, seed=1" in failed.stderr
    assert "FloatingPointError: diverged" in failed.stderr and "Traceback" in failed.stderr
    assert '"seed": 1' in failed.stderr                                   # the failed job's config
    result = _result(failed)
    assert [f["error"] for f in result["failed"]] == ["FloatingPointError: diverged"]
    assert [len(row["seeds_done"]) for row in result["points"]] == [3, 2]
    with Store(tmp_path / "store.sqlite") as store:
        statuses = sorted(row["status"] for row in store.sweep_jobs("tiny").values())
        failed_row = next(row for row in store.sweep_jobs("tiny").values() if row["status"] == "failed")
    assert statuses == ["done"] * 5 + ["failed"] and "diverged" in failed_row["error"]

    monkeypatch.setattr(cmd_sweep, "train_job", real)
    fixed = _sweep(tmp_path, file)
    assert fixed.exit_code == 0 and (_result(fixed)["jobs_run"], _result(fixed)["jobs_kept"]) == (1, 5)


@pytest.mark.parametrize("change, message", [
    (("[base]", "[base]\nlearning_rat = 0.1"), "[base] key 'learning_rat' unknown; allowed: "),
    (("[grid]", "[grid]\nradios = [\"sim0,sim1\"]"), "sweeps over --radios are refused: radio-bound work stays on "
                                                     "the host that owns the radios"),
    (("[grid]", "[grid]\nepisodes = [2, 0]"), "[grid] episodes = 0; allowed: an integer >= 1"),
    (("[grid]", "[grid]\ndiscount = [0.5, 1.5]"), "discount=1.5; allowed: 0 <= value < 1"),
    (("[grid]", "[grid]\nlearning_rate = [\"fast\"]"), "[grid] learning_rate = 'fast'; allowed: a float"),
    (("[grid]", "[grid]\nota_every = 3"), "[grid] ota_every = 3; allowed: a non-empty list of values"),
    (("[grid]", "[grid]\nseed = [1, 2]"), "[grid] key 'seed' cannot be set: list the seeds in [sweep] seeds"),
    (("seeds = [0, 1, 2]", "seeds = []"), "[sweep] seeds = []; allowed: a non-empty list of distinct integers >= 0"),
    (("x = \"physical\"", "x = \"episodes\""), "[sweep] x = 'episodes'; allowed: a key of [grid] (physical)"),
    (("\"analytic:phi=0.9\"]", "\"radio:sim0\"]"), "[grid] physical = 'radio:sim0'; allowed: analytic or "
                                                   "analytic:phi=X"),
    (("num_rrbs = 2", "num_rrbs = 3\nnum_aps_x = 1"), "[base] key 'twin.num_aps_x' unknown"),
    (("num_aps = 1\nnum_devices = 2\nnum_rrbs = 2", "num_aps = 2\nnum_devices = 2\nnum_rrbs = 3"),
     "grid point {\"physical\": \"analytic:phi=0.0\"}: num_rrbs (3) must be a multiple of num_aps (2)"),
])
def test_bad_sweep_files_exit_2_naming_the_key_and_what_is_allowed(tmp_path, change, message):
    old, new = change
    assert old in TINY
    file = _write(tmp_path, TINY.replace(old, new, 1))
    result = _sweep(tmp_path, file)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "store.sqlite").exists() or not Store(tmp_path / "store.sqlite").sweep_jobs("tiny")


def test_bad_executor_and_missing_ray_exit_2(tmp_path, monkeypatch):
    file = _write(tmp_path, TINY)
    result = _sweep(tmp_path, file, "--executor", "spark")
    assert result.exit_code == 2 and "--executor 'spark'; allowed: local, ray" in result.stderr
    monkeypatch.setitem(sys.modules, "ray", None)
    result = _sweep(tmp_path, file, "--executor", "ray")
    assert result.exit_code == 2 and "pip install -e '.[cluster]'" in result.stderr


def test_the_example_sweep_file_is_valid_and_small():
    plan = load_sweep(REPO / "docs" / "configs" / "sweep-example.toml")
    assert len(plan.jobs()) == 12 and plan.x == "physical"
    assert plan.base["episodes"] <= 8 and plan.base["twin.num_devices"] <= 6


def test_the_same_sweep_on_ray_gives_bit_identical_summaries(tmp_path, ray_instance):
    file = _write(tmp_path, TINY)
    local = _sweep(tmp_path, file)
    on_ray = CliRunner().invoke(sweep, [str(file), "--store", str(tmp_path / "ray.sqlite"), "--out",
                                        str(tmp_path / "ray-out"), "--executor", "ray", "--json"])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert _result(on_ray)["executor"] == "ray" and _result(on_ray)["jobs_run"] == 6
    assert _result(on_ray)["points"] == _result(local)["points"]
