"""The ``link`` and ``analyze`` commands and the radio link runner on loopback radios."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from _ofdm_testlib import shared_data_dir
from radio.guard import GuardRule, TxGuard
from radio.loopback import LoopbackRadio
from radio.ofdm import Link, SlotPlan, run_link
from testbed.cmd_analyze import analyze
from testbed.cmd_link import link

OPEN = TxGuard(GuardRule(((0.0, 1e12),), 100.0))


def test_run_link_over_a_noisy_delayed_loopback_radio():
    plan = SlotPlan("lte3", (Link("a", tuple(range(0, 7)), "16qam", "3/4"),
                             Link("b", tuple(range(8, 15)), "qpsk", "1/2", power_db=-10.0)))
    snr_a = 25.0
    # noise per RE relative to a 0 dB link's RE power
    geo_scale = 10 ** (-12 / 20) / np.sqrt(180 / 256)
    with LoopbackRadio("loop0", OPEN, delay_samples=1234, noise_rms=geo_scale * 10 ** (-snr_a / 20), seed=3) as r:
        result = run_link([(r, plan)], r, 3, lo_hz=2.4e9)
        assert not r.transmitting
    a, b = result.stats["a"], result.stats["b"]
    assert a.bler == 0.0 and b.bler == 0.0
    assert a.sinr_db == pytest.approx(snr_a, abs=0.7)
    assert b.sinr_db == pytest.approx(snr_a - 10.0, abs=0.7)
    assert a.delivered_bits == 3 * result.reports[0][0].links[0].offered_bits
    assert a.throughput_mbps == pytest.approx(a.bits_per_slot / 1e-3 / 1e6)
    assert result.clipped_samples == 0


def test_run_link_two_transmitters_into_one_receiver():
    # Two "AP radios" on disjoint RBs, summed in the air by a loopback that receives what the test transmits.
    class Air(LoopbackRadio):
        def __init__(self):
            super().__init__("air", OPEN)
            self.parts = {}

    air = Air()

    class Tx(LoopbackRadio):
        def _transmit(self, samples, cyclic):
            air.parts[self.name] = samples

    ap0, ap1 = Tx("ap0", OPEN), Tx("ap1", OPEN)
    plan0 = SlotPlan("lte5", (Link("x", tuple(range(0, 12)), "64qam", "3/4"),), tx_id=0)
    plan1 = SlotPlan("lte5", (Link("y", tuple(range(12, 25)), "qpsk", "1/2", power_db=-6.0),), tx_id=1)

    def receive(num_samples, timeout_s):
        x = np.roll(np.tile(air.parts["ap0"], 3), -100)[:num_samples] + \
            np.roll(np.tile(air.parts["ap1"], 3), -2345)[:num_samples]
        from radio.base import Reception, RxMetadata
        return Reception(x.astype(np.complex64), RxMetadata("air", 2.4e9, 7.68e6, 0.0))

    air._receive = receive
    result = run_link([(ap0, plan0), (ap1, plan1)], air, 2)
    assert result.stats["x"].bler == 0.0 and result.stats["y"].bler == 0.0
    # The APs are not time aligned (2245 samples apart), so each sees the other's sidelobes: real ACI, no noise.
    assert 25.0 < result.stats["x"].sinr_db < 60.0
    starts = [rep.sync.start for rep in result.reports[0]]
    assert starts[0] != starts[1]  # each AP synchronised on its own preamble


def test_link_command_on_loopback_prints_per_link_stats():
    res = CliRunner().invoke(link, ["--tx", "loop0", "--rx", "loop0", "--numerology", "lte1.4", "--slots", "2",
                                    "--link", "rbs=0-2,mod=16qam,rate=3/4,power_db=0",
                                    "--link", "id=weak,rbs=3+5,mod=qpsk,rate=1/2,power_db=-6", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert set(out["links"]) == {"L0", "weak"}
    for s in out["links"].values():
        assert s["bler"] == 0.0 and s["evm"] < 0.01 and s["bits_per_slot"] > 0 and s["throughput_mbps"] > 0
    human = CliRunner().invoke(link, ["--tx", "loop0", "--rx", "loop0", "--numerology", "lte1.4", "--slots", "1",
                                      "--link", "rbs=0-5,mod=64qam,rate=5/6"])
    assert human.exit_code == 0 and "SINR" in human.output and "Mbit/s" in human.output


@pytest.mark.parametrize("spec,needle", [
    ("rbs=0-11,mod=17qam", "mod='17qam'; allowed: bpsk"),
    ("rbs=0-11,rate=7/8", "rate='7/8'; allowed: 1/3, 1/2"),
    ("rbs=0-99", "allowed RBs 0 to 24"),
    ("rbs=0-5,power_db=loud", "power_db='loud'; allowed a number"),
    ("rbs=0-5,colour=red", "unknown field 'colour'"),
    ("mod=qpsk", "'rbs' is required"),
    ("rbs=0-5,tx=elsewhere", "tx='elsewhere'; allowed"),
])
def test_bad_link_spec_exits_2_naming_the_field(spec, needle):
    res = CliRunner().invoke(link, ["--tx", "loop0", "--rx", "loop0", "--link", spec])
    assert res.exit_code == 2
    assert needle in res.output


def test_bad_numerology_exits_2():
    res = CliRunner().invoke(link, ["--tx", "loop0", "--rx", "loop0", "--numerology", "lte7", "--link", "rbs=0"])
    assert res.exit_code == 2 and "allowed" in res.output


def test_analyze_command(tmp_path):
    shared = shared_data_dir() / "lte_dl_6prb_pci1_1.92Msps.sigmf-meta"
    if shared.exists():
        res = CliRunner().invoke(analyze, [str(shared), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output.strip().splitlines()[-1])["cell_id"] == 1
    res = CliRunner().invoke(analyze, [str(tmp_path / "missing.sigmf-meta")])
    assert res.exit_code == 2 and "missing" in res.output


def test_link_command_between_two_simulated_radios():
    res = CliRunner().invoke(link, ["--tx", "sim0", "--rx", "sim1", "--numerology", "lte3", "--slots", "2",
                                    "--link", "rbs=0-6,mod=qpsk,rate=1/2", "--link", "id=b,rbs=8-14,mod=16qam",
                                    "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    for s in out["links"].values():
        # Real front ends (phase noise, PA, IQ imbalance, thermal noise): a finite SINR, and these robust MCSs
        # still decode.
        assert 15.0 < s["sinr_db"] < 60.0
        assert s["bler"] == 0.0
