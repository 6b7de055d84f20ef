"""``testbed repro hetnet``: the pipeline on a tiny budget, the results section, the CLI's errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from testbed.repro import hetnet as repro_hetnet
from testbed.cmd_repro import repro

TINY = dataclasses.replace(repro_hetnet.QUICK, seeds=(0, 1), episodes=2, slots_per_episode=5, num_envs=1,
                           eval_episodes=1, scaling_ues=(8, 12), scarcity_subchannels=(4,), disturbance_db=(0.0, 12.0),
                           workers=1)


def test_tiny_reproduction_writes_its_section_beside_the_others(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n<!-- BEGIN repro dtn -->\ndtn section\n<!-- END repro dtn -->\n\nkept\n")
    outcome = repro_hetnet.run_all(TINY, ["overall", "scaling"])
    schemes = {job["scheme"] for job in outcome["jobs"]}
    assert schemes == set(repro_hetnet.LEARNED + repro_hetnet.CLASSICAL)
    assert len(outcome["jobs"]) == len(schemes) * len(TINY.seeds)
    dqn_dddpg = [job for job in outcome["jobs"] if job["scheme"] == "dqn-dddpg"]
    assert all("scaling" not in job for job in dqn_dddpg)                 # built for one N
    summary = repro_hetnet.write_results(outcome, results, tmp_path / "figures", "testbed repro hetnet --quick")
    text = results.read_text()
    assert "<!-- BEGIN repro dtn -->\ndtn section\n<!-- END repro dtn -->" in text and "kept" in text
    assert text.count(repro_hetnet.RESULTS_BEGIN) == 1 and text.count(repro_hetnet.RESULTS_END) == 1
    assert "testbed repro hetnet --quick --only scaling" in text
    overall = summary["overall"]
    assert overall["maddqn-dmaddpg"]["throughput_mbps"][0] > 0
    assert 0 <= overall["wmmse-ssa"]["p_throughput_mbps"] <= 1
    assert set(summary["scaling"]["maddqn-dmaddpg"]) == {8, 12}
    assert summary["decision"]["maddqn-dmaddpg"][200]["flops"] > 0
    assert (tmp_path / "figures" / "hetnet_training.png").stat().st_size > 0
    assert (tmp_path / "figures" / "hetnet_scaling.png").stat().st_size > 0
    raw = json.loads((tmp_path / "figures" / "hetnet_results.json").read_text())
    assert len(raw["jobs"]) == len(outcome["jobs"]) and all(len(j["curve"]) == 2 for j in raw["jobs"] if "curve" in j)
    # Writing again replaces the section instead of adding one.
    repro_hetnet.write_results(outcome, results, tmp_path / "figures", "testbed repro hetnet --quick")
    assert results.read_text().count(repro_hetnet.RESULTS_BEGIN) == 1
    # One more experiment later: only its missing jobs are trained; the saved ones and their tables stay.
    saved = repro_hetnet.load_saved(tmp_path / "figures" / "hetnet_results.json", TINY)
    assert saved is not None and set(saved["jobs"][0]) >= {"scheme", "seed", "main"}
    assert repro_hetnet.load_saved(tmp_path / "figures" / "hetnet_results.json",
                                   dataclasses.replace(TINY, episodes=3)) is None
    more = repro_hetnet.run_all(TINY, ["fairness"], saved=saved)
    assert more["reused"] == len(outcome["jobs"])
    assert len(more["jobs"]) == len(outcome["jobs"]) + len(repro_hetnet.FAIRNESS) * len(TINY.seeds)
    assert more["experiments"] == ["overall", "scaling", "fairness"]
    summary = repro_hetnet.write_results(more, results, tmp_path / "figures", "testbed repro hetnet --quick")
    text = results.read_text()
    assert "### Fairness weight" in text and "### Overall comparison" in text and "### Scaling with N" in text
    assert set(summary["fairness"]) == {"maddqn-dmaddpg", *repro_hetnet.FAIRNESS, "wmmse-ssa"}
    assert set(summary["scaling"]["maddqn-dmaddpg"]) == {8, 12}
    assert f"{len(more['jobs'])} jobs, {more['reused']} of them kept from earlier calls" in text


def test_training_efficiency_reads_the_curve():
    curve = [-10.0] * 5 + [0.0, 5.0, 9.0, 10.0, 10.0] + [10.0] * 10
    row = repro_hetnet.training_efficiency(curve)
    assert row["final_return"] == pytest.approx(10.0) and row["return_variance"] == pytest.approx(0.0)
    assert 7 <= row["episodes_to_90"] <= 12


def test_paired_p_value():
    assert repro_hetnet.paired_p_value([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert repro_hetnet.paired_p_value([1.1, 2.3, 2.9, 4.2], [0.1, 0.2, 0.1, 0.3]) < 0.05


def test_bad_experiment_names_exit_2():
    result = CliRunner().invoke(repro, ["hetnet", "--quick", "--only", "fig5a"])
    assert result.exit_code == 2
    assert "--only 'fig5a'; allowed: comma-separated keys from overall, ablation, scaling" in result.output
    result = CliRunner().invoke(repro, ["nope"])
    assert result.exit_code == 2 and "allowed: dtn, hetnet" in result.output


@pytest.mark.slow
def test_repro_hetnet_quick_runs_end_to_end(tmp_path):
    results = tmp_path / "RESULTS.md"
    result = CliRunner().invoke(repro, ["hetnet", "--quick", "--json", "--results", str(results)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["paper"] == "hetnet" and payload["profile"] == "quick"
    assert set(payload["experiments"]) == set(repro_hetnet.EXPERIMENTS)
    text = results.read_text()
    for title in ("### Overall comparison", "### Training efficiency", "### Ablations", "### Scaling with N",
                  "### Sub-channel scarcity", "### Channel-disturbance robustness", "### Fairness weight",
                  "### Inference time"):
        assert title in text
