"""``testbed repro dtn``: the pipeline end to end on a tiny budget, the results page, reuse of saved runs."""

from __future__ import annotations

import dataclasses
import json

from click.testing import CliRunner

from testbed.repro import dtn as repro_dtn
from testbed.cmd_repro import repro

TINY = dataclasses.replace(repro_dtn.QUICK, seeds=(0, 1), episodes=2, slots_per_episode=2, num_envs=1,
                           eval_episodes=1, eval_slots=3, curve_points=1, workers=1)


def test_results_section_is_written_beside_other_sections_and_runs_are_reused(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Another paper\n\nkept as is\n")
    outcome = repro_dtn.run_all(TINY, only=["reward"])
    assert outcome["computed"] == 2 * len(TINY.seeds)                      # shared and link reward, per seed
    assert [e.key for e in outcome["experiments"]] == ["reward"]
    summary = repro_dtn.write_results(outcome, results, tmp_path / "figures", "testbed repro dtn --quick")
    text = results.read_text()
    assert "## Another paper\n\nkept as is" in text
    assert text.count(repro_dtn.RESULTS_BEGIN) == 1 and text.count(repro_dtn.RESULTS_END) == 1
    assert "testbed repro dtn --quick --only reward" in text
    assert set(summary["reward"]) == {"shared", "link"}
    assert all(run["physical_episodes"] >= 1 for run in outcome["runs"].values())   # Z_k scaled into the budget

    # Saved runs are reused: nothing is trained again, and rewriting replaces the section rather than adding one.
    known = repro_dtn.load_raw(tmp_path / "figures" / "dtn_results.json", TINY)
    assert known is not None and set(known["runs"]) == set(outcome["runs"])
    again = repro_dtn.run_all(TINY, only=["reward"], known=known)
    assert again["computed"] == 0
    repro_dtn.write_results(again, results, tmp_path / "figures", "testbed repro dtn --quick")
    assert results.read_text().count(repro_dtn.RESULTS_BEGIN) == 1
    # Another budget does not reuse them.
    assert repro_dtn.load_raw(tmp_path / "figures" / "dtn_results.json", dataclasses.replace(TINY, episodes=3)) is None
    raw = json.loads((tmp_path / "figures" / "dtn_results.json").read_text())
    assert len(raw["runs"]) == 4 and all(len(r["curve"]) >= 1 for r in raw["runs"])


def test_every_experiment_of_the_plan_has_runs_with_three_seeds():
    for profile in (repro_dtn.FULL, repro_dtn.QUICK):
        experiments = repro_dtn.plan(profile)
        assert {e.key for e in experiments} >= {"fig5a", "fig5b", "fig5c", "fig5d", "fig6ab", "fig6c", "fig7a",
                                                "fig7b", "fig7c", "fig8"}
        assert len(profile.seeds) >= 3
        for e in experiments:
            assert e.runs and len({s.seed for s in e.runs}) == len(profile.seeds)


def test_bad_paper_and_experiment_names_exit_2():
    result = CliRunner().invoke(repro, ["maddpg"])
    assert result.exit_code == 2 and "PAPER 'maddpg'; allowed: dtn" in result.output
    result = CliRunner().invoke(repro, ["dtn", "--quick", "--only", "fig9"])
    assert result.exit_code == 2 and "--only 'fig9'; allowed: comma-separated keys from fig5a" in result.output
