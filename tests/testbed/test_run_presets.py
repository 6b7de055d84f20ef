"""The main job on two pluto-preset simulated radios (up to 50 ppm apart, datasheet EVM floors, 12-bit converters):
`testbed run` acquires every over-the-air episode, calibrates kappa from the radios, and the trained policy beats
MaxP-3GPP-CQI over the air."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from radio.sim import SimConfig
from testbed.cli import main

REPO = Path(__file__).resolve().parents[2]
PLUTO_CONFIG = REPO / "docs" / "configs" / "sim-pluto.toml"


def run_main_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> tuple[Path, dict[str, Any]]:
    """A short run: 40 episodes, two of them over the air (5 slots), 3 OTA evaluation episodes per policy."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TESTBED_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.delenv("TESTBED_CONFIG", raising=False)
    run_dir = tmp_path / f"run-{seed}"
    result = CliRunner().invoke(main, [
        "run", "--radios", "sim0,sim1", "--sim-config", str(PLUTO_CONFIG), "--episodes", "40", "--ota-every", "20",
        "--ota-slots", "5", "--eval-episodes", "3", "--seed", str(seed), "--run-dir", str(run_dir), "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return run_dir, json.loads(result.stdout.strip().splitlines()[-1])


# About 60 s a seed on two cores: the first seed runs by default, the second only with -m slow.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_main_job_on_pluto_radios_acquires_calibrates_and_beats_maxp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     seed: int) -> None:
    run_dir, summary = run_main_job(tmp_path, monkeypatch, seed)
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["evaluation"] == summary["evaluation"]

    # Acquired: no radio outage in training or evaluation, and both OTA episodes are in the metrics.
    assert summary["radio_outages"] == []
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ota = [m for m in metrics if m.get("source") == "physical"]
    assert [m["episode"] for m in ota] == [20, 40]
    assert all(math.isfinite(m["ota/episode_reward"]) and m["ota/episode_reward"] > 0 for m in ota)

    # Calibrated: kappa of each radio with a finite 95 % CI around it, and close to the pluto EVM floor it measures.
    pluto = SimConfig.from_table({"preset": "pluto"}).radio
    kappa = json.loads((run_dir / "calibration.json").read_text())["results"]["kappa"]
    for key, truth in (("kappa_t", pluto.tx_evm), ("kappa_r", pluto.rx_evm)):
        for radio in ("sim0", "sim1"):
            estimate = kappa[key][radio]
            low, high = estimate["ci95"]
            assert all(math.isfinite(v) for v in (low, high)) and low <= estimate["value"] <= high, (key, radio)
            assert estimate["value"] == pytest.approx(truth, rel=0.25), (key, radio)

    # The trained policy beats the 3GPP CQI table over the air.
    evaluation = summary["evaluation"]
    assert summary["beats_maxp"] is True
    assert evaluation["policy"] > evaluation["maxp-3gpp-cqi"] > evaluation["random"]
