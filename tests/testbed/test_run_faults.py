"""testbed run while a radio fails: training goes on in the twin, the radios are retried, OTA episodes resume."""

import json

import pytest
from click.testing import CliRunner

import testbed.controller as controller
from testbed.cli import main
from testbed.store import Store

CONFIG = """
[safety]
allowed_bands = [[2400e6, 2483.5e6]]
max_tx_gain_db = 0
[radios.sim1]
driver = "sim"
faults = {{disconnect_after = {after}, down_for = 3}}
"""


def test_radio_outage_is_ridden_out_in_the_twin(tmp_path, monkeypatch):
    """sim1 disconnects during an OTA episode and comes back after 3 refused calls: the episode in flight is
    replayed in the twin (no half episode in the metrics or the store), later OTA episodes run again."""
    monkeypatch.setattr(controller, "RETRY_FIRST_S", 0.0)
    store_path = tmp_path / "store.sqlite"
    runner = CliRunner()
    # Full depth: a run never reuses a --quick record.
    calibrated = runner.invoke(main, ["calibrate", "--radios", "sim0,sim1", "--store", str(store_path), "--json"])
    assert calibrated.exit_code == 0, calibrated.output
    # The calibration does not count: the run opens fresh radios. 10 calls reach the second OTA episode.
    config = tmp_path / "testbed.toml"
    config.write_text(CONFIG.format(after=10), encoding="utf-8")
    run_dir = tmp_path / "run"
    result = runner.invoke(main, ["run", "--radios", "sim0,sim1", "--config", str(config), "--episodes", "12",
                                  "--ota-every", "2", "--ota-slots", "6", "--eval-episodes", "0", "--run-dir",
                                  str(run_dir), "--store", str(store_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["calibration_reused"] is True
    assert summary["radio_outages"], summary
    outage = summary["radio_outages"][0]
    assert "back_at_episode" in outage, summary["radio_outages"]
    assert "RadioDisconnected" in outage["error"]
    assert outage["back_at_episode"] > outage["episode"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["episode"] for m in metrics] == list(range(1, 13))
    sources = {m["episode"]: (m["source"], m.get("ota/skipped", False)) for m in metrics}
    assert sources[outage["episode"]] == ("twin", True)
    assert any(src == "physical" for ep, (src, _) in sources.items() if ep > outage["back_at_episode"] - 1)
    with Store(store_path) as store:
        stored_episodes = {row["episode"] for row in store.experiences(run_dir.name)}
        assert store.run(run_dir.name)["status"] == "finished"
    physical = {ep for ep, (src, _) in sources.items() if src == "physical"}
    assert stored_episodes == physical
