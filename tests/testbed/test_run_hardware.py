"""testbed run on real radios: Pluto and USRP names take the same path as simulated ones."""

import json
import os

import pytest
from click.testing import CliRunner

from testbed.cli import main


@pytest.mark.hardware
def test_short_run_on_the_radios_named_in_testbed_hardware(tmp_path):
    """With TESTBED_HARDWARE=ap,device (two or more radios of testbed.toml, cabled or on the bench inside the
    guard's band): calibration, a short training with OTA episodes and an OTA evaluation complete, and the radios
    stop transmitting at the end."""
    names = os.environ["TESTBED_HARDWARE"]
    if len(names.split(",")) < 2:
        pytest.skip("TESTBED_HARDWARE must name at least two radios (APs..., device)")
    result = CliRunner().invoke(main, ["run", "--radios", names, "--episodes", "4", "--ota-every", "2",
                                       "--ota-slots", "5", "--eval-episodes", "1", "--run-dir", str(tmp_path / "run"),
                                       "--store", str(tmp_path / "store.sqlite"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["ota_episodes"] == 2
    assert set(summary["evaluation"]) == {"policy", "maxp-3gpp-cqi", "olla", "random"}
