"""``testbed run`` as a lab user meets it: the carrier (``--lo``, ``[defaults] lo_hz``) checked against the TX guard
before anything starts; one process per run directory; Ctrl-C exits 130 with the command that resumes; a finished
run resumed does nothing unless ``--reevaluate``; options that contradict the recorded run are refused.

Budgets are tiny: analytic runs of a few episodes; one OTA run of one episode of 3 slots (with its calibration at
5.8 GHz, the longest part).
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from testbed.store import Store
from tests.testbed.run_helpers import (WAIT_S, invoke, last_json, metric_lines, run_row, spawn as _spawn,
                                       wait_until as _wait_until)

RADIOS = "sim0,sim1"
GUARD_5_8 = "[safety]\nallowed_bands = [[5725e6, 5875e6]]\nmax_tx_gain_db = 0.0\n"


@pytest.fixture(scope="module")
def lab58(tmp_path_factory):
    """A lab whose TX guard allows 5725-5875 MHz only and whose [defaults] put the radios at 5.8 GHz."""
    root = tmp_path_factory.mktemp("lab58")
    config = root / "testbed.toml"
    config.write_text(GUARD_5_8 + "[defaults]\nlo_hz = 5.8e9\n", encoding="utf-8")
    return root, config, root / "store.sqlite"


# --- item: the carrier against the TX guard, before anything starts ----------------------------------------------

@pytest.mark.parametrize("config_text, extra, names", [
    (GUARD_5_8, [], "the default carrier (set --lo or [defaults] lo_hz)"),
    (GUARD_5_8 + "[defaults]\nlo_hz = 2.45e9\n", [], "[defaults] lo_hz of"),
    (GUARD_5_8 + "[defaults]\nlo_hz = 5.8e9\n", ["--lo", "2.45e9"], "from --lo"),
    (GUARD_5_8 + "[defaults]\nlo_hz = 5.8e9\ntx_gain_db = 3.0\n", [], "TX gain 3 dB from [defaults] tx_gain_db"),
])
def test_a_carrier_or_gain_the_guard_forbids_is_refused_before_the_run_directory_exists(
        tmp_path, monkeypatch, config_text, extra, names):
    """The guard allows 5725-5875 MHz at <= 0 dB: a run at 2.45 GHz (by default, by [defaults] lo_hz or by --lo), or
    at 5.8 GHz with a TX gain above the maximum, exits 2 naming the setting that decided it, the band the carrier
    occupies and the allowed bands, before the run directory, a calibration or a run record exists."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "guard.toml"
    config.write_text(config_text, encoding="utf-8")
    store = tmp_path / "s.sqlite"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "2", "--ota-every", "1", "--ota-slots", "3",
                            "--run-dir", str(tmp_path / "r"), "--store", str(store), "--config", str(config), *extra)
    assert code == 2, (out, err)
    assert names in err and "TX guard" in err
    if "TX gain" in names:
        assert "maximum 0 dB" in err
    else:
        # LTE 5 MHz: 25 RBs of 12 subcarriers at 15 kHz plus a subcarrier each side, 4.53 MHz around 2450 MHz.
        assert "2447.74-2452.26 MHz" in err and "allowed bands: 5725-5875 MHz" in err
    assert not (tmp_path / "r").exists()
    if store.exists():
        with Store(store) as s:
            assert s.calibrations() == [] and s.run("r") is None


@pytest.mark.slow
def test_a_lab_allowed_only_5_8_ghz_runs_the_main_job_and_a_finished_run_resumed_changes_nothing(lab58, tmp_path):
    """[defaults] lo_hz = 5.8e9 under a 5.8 GHz-only guard: the OTA run calibrates the radios at 5.8 GHz (a full
    calibration, 20-80 s: hence slow) and finishes, recording its carrier. Resumed, the finished run says so and changes nothing (exit 0);
    options that contradict the recorded run are refused naming them; --reevaluate evaluates again and keeps the
    over-the-air SINR section."""
    root, config, store = lab58
    run_dir = tmp_path / "r58"
    code, out, err = invoke("run", "--radios", RADIOS, "--episodes", "1", "--ota-every", "1", "--ota-slots", "3",
                            "--eval-episodes", "1", "--run-dir", str(run_dir), "--store", str(store),
                            "--config", str(config), "--json")
    assert code == 0, err
    summary = last_json(out)
    calibration_id = summary["calibration_id"]
    assert json.loads((run_dir / "config.json").read_text())["lo_hz"] == 5.8e9
    assert json.loads((run_dir / "calibration.json").read_text())["meta"]["settings"]["lo_hz"] == 5.8e9
    assert summary["ota_sinr"]["link_slots"] > 0

    files = ("summary.json", "report.html", "evaluation.json", "metrics.jsonl", "checkpoint.pt", "config.json")
    before = {name: (run_dir / name).read_bytes() for name in files}
    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(store))
    assert code == 0, err
    assert f"run {run_dir} finished at " in out and "nothing to do (use --reevaluate to evaluate again)" in out
    assert {name: (run_dir / name).read_bytes() for name in files} == before

    for args, says in ((["--radios", "sim1,sim0"], ["--radios sim1,sim0 (the run has sim0,sim1)"]),
                       (["--lo", "5.75e9"], ["--lo 5.75e+09 (the run has 5.8e+09)"]),
                       (["--ota-every", "3", "--seed", "7"], ["--ota-every 3 (the run has 1)",
                                                              "--seed 7 (the run has 0)"]),
                       (["--recalibrate"], [f"--recalibrate True (the run has calibration {calibration_id})"]),
                       (["--reevaluate", "--physical", "analytic:phi=0.1"], ["--physical"])):
        code, out, err = invoke("run", "--resume", str(run_dir), *args, "--store", str(store))
        assert code == 2 and "keeps its learner, radios, carrier" in err, (args, err)
        assert all(s in err for s in says), (args, err)
    assert {name: (run_dir / name).read_bytes() for name in files} == before

    code, out, err = invoke("run", "--resume", str(run_dir), "--reevaluate", "--eval-episodes", "1",
                            "--store", str(store), "--json")
    assert code == 0, err
    again = last_json(out)
    assert set(again["evaluation"]) == {"policy", "maxp-3gpp-cqi", "olla", "random"}
    assert again["ota_sinr"] == summary["ota_sinr"] and again["episodes"] == 1
    assert "Measured SINR minus the twin" in (run_dir / "report.html").read_text()
    assert (run_dir / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]


def test_a_finished_analytic_run_resumed_does_nothing_unless_reevaluate(tmp_path):
    """The same resume semantics without radios (fast): nothing to do and nothing changed; contradicting options
    are refused naming them; --reevaluate rewrites the evaluation and summary, not the training metrics."""
    run_dir, store = tmp_path / "done", tmp_path / "s.sqlite"
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--episodes", "2", "--ota-every", "2",
                            "--eval-episodes", "1", "--run-dir", str(run_dir), "--store", str(store), "--json")
    assert code == 0, err
    files = ("summary.json", "report.html", "evaluation.json", "metrics.jsonl", "checkpoint.pt", "config.json")
    before = {name: (run_dir / name).read_bytes() for name in files}
    code, out, err = invoke("run", "--resume", str(run_dir), "--store", str(store), "--json")
    assert code == 0, err
    assert last_json(out)["nothing_to_do"] is True and "nothing to do (use --reevaluate" in err
    code, out, err = invoke("run", "--resume", str(run_dir), "--physical", "analytic:phi=0.1", "--reward", "shared",
                            "--store", str(store))
    assert code == 2 and "--physical" in err and "--reward shared (the run has link)" in err, err
    assert {name: (run_dir / name).read_bytes() for name in files} == before
    code, out, err = invoke("run", "--resume", str(run_dir), "--reevaluate", "--eval-episodes", "2",
                            "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads((run_dir / "evaluation.json").read_text()) == last_json(out)["evaluation"]
    assert (run_dir / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]
    assert (run_dir / "summary.json").read_bytes() != before["summary.json"]


def test_reevaluate_needs_resume(tmp_path):
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--reevaluate", "--run-dir",
                            str(tmp_path / "r"), "--store", str(tmp_path / "s.sqlite"))
    assert code == 2 and "--reevaluate" in err and not (tmp_path / "r").exists()


def test_unknown_radio_leaves_no_run_directory(tmp_path):
    code, out, err = invoke("run", "--radios", "sim0,bogus1", "--run-dir", str(tmp_path / "r"),
                            "--store", str(tmp_path / "s.sqlite"))
    assert code == 2 and "bogus1" in err
    assert not (tmp_path / "r").exists()


# --- one process per run directory; Ctrl-C ---------------------------------------------------------------------

def _analytic(run_dir: Path, store: Path, episodes: int) -> list[str]:
    return ["run", "--physical", "analytic:phi=0.4", "--episodes", str(episodes), "--ota-every", "2",
            "--eval-episodes", "0", "--run-dir", str(run_dir), "--store", str(store)]


def test_a_second_process_on_a_run_directory_in_use_is_refused_naming_the_holder(tmp_path):
    """While a run works in a directory, the same command and --resume of it exit 2 naming the holder (pid, host,
    start time) and write nothing; once the holder is killed (SIGKILL: the kernel drops its lock) --resume works."""
    run_dir, store = tmp_path / "busy", tmp_path / "s.sqlite"
    proc = _spawn(_analytic(run_dir, store, 200), tmp_path, "busy")
    try:
        _wait_until(proc, lambda: len(metric_lines(run_dir)) >= 1, "a finished episode", tmp_path, "busy")
        holder = f"pid {proc.pid} on {socket.gethostname()} since "
        for args in (_analytic(run_dir, store, 200), ["run", "--resume", str(run_dir), "--store", str(store)]):
            code, out, err = invoke(*args)
            assert code == 2 and holder in err and "run.lock" in err, (args, err)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(metric_lines(run_dir))
    assert [m["episode"] for m in metric_lines(run_dir)] == list(range(1, done + 1))   # one writer only
    code, out, err = invoke("run", "--resume", str(run_dir), "--episodes", str(done + 2), "--store", str(store),
                            "--json")
    assert code == 0, err
    assert [m["episode"] for m in metric_lines(run_dir)] == list(range(1, done + 3))


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_exits_130_with_the_command_that_resumes(tmp_path, presses):
    """Ctrl-C once (stop after the episode in flight) or twice (abort now) during training: exit 130, not 0 or 1,
    and stderr names the command that continues the run; the store says interrupted; --resume finishes it."""
    run_dir, store = tmp_path / "stopped", tmp_path / "s.sqlite"
    proc = _spawn(_analytic(run_dir, store, 200), tmp_path, "stopped")
    try:
        _wait_until(proc, lambda: len(metric_lines(run_dir)) >= 1, "a finished episode", tmp_path, "stopped")
        proc.send_signal(signal.SIGINT)
        if presses == 2:   # the second press once the first is acknowledged (two at once merge into one signal)
            _wait_until(proc, lambda: "stopping after this slot" in (tmp_path / "stopped.err").read_text(),
                        "the first Ctrl-C acknowledged", tmp_path, "stopped")
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (tmp_path / "stopped.err").read_text()
    # A second press that lands while the interpreter is already finalising its exit meets the default handler and
    # ends the process by SIGINT, which a shell reports as 130 too (128 + 2).
    assert proc.returncode == 130 or (presses == 2 and proc.returncode == -signal.SIGINT), err
    assert f"continue with: testbed run --resume {run_dir}" in err
    assert "Aborted!" not in err
    assert run_row(store, "stopped")["status"] == "interrupted"
    assert not (run_dir / "summary.json").exists()
    done = len(metric_lines(run_dir))
    code, out, err = invoke("run", "--resume", str(run_dir), "--episodes", str(done + 1), "--store", str(store),
                            "--json")
    assert code == 0, err
    assert last_json(out)["episodes"] == done + 1
    assert run_row(store, "stopped")["status"] == "finished"


# --- progress when stderr is not a terminal ------------------------------------------------------------------------

def test_without_a_terminal_the_run_prints_a_line_per_stage_and_episode_lines(tmp_path):
    """stderr captured (as under tee, nohup or CI): one line per stage and a line for every over-the-air episode
    (and every few twin episodes) with the episode, its reward, phi and the OTA share; stdout keeps only the JSON."""
    run_dir, store = tmp_path / "logged", tmp_path / "s.sqlite"
    code, out, err = invoke(*_analytic(run_dir, store, 4), "--eval-episodes", "1", "--json")
    assert code == 0, err
    lines = err.splitlines()
    assert any("training: episodes 1..4, one in 2 over the air" in line for line in lines), err
    episode_lines = [line for line in lines if "] episode " in line]
    # 4 episodes: at most 20 lines means one per episode; the OTA episodes 2 and 4 say so and carry phi.
    assert [line.split("] episode ")[1].split(",")[0] for line in episode_lines] == [
        "1/4", "2/4 (over the air)", "3/4", "4/4 (over the air)"]
    metrics = metric_lines(run_dir)
    for line, m in zip(episode_lines, metrics):
        assert f"reward {m['charts/episode_reward']:.3f}" in line and "OTA share" in line
    assert f"phi {metrics[1]['ota/measured_phi']:+.3f}" in episode_lines[1]
    assert any("evaluating the policy and 3 baselines" in line for line in lines)
    assert any("writing the report" in line for line in lines)
    assert len(out.strip().splitlines()) == 1 and last_json(out)["episodes"] == 4
