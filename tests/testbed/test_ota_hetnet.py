"""``testbed.ota_hetnet``: HetNet slots rendered as OFDM links on two simulated radios and measured.

Checked: the MCS layer picks the menu's best expected goodput and never loses goodput as the SINR grows; rounds
never put two UEs on one block at once and play every transmitting UE exactly once; the round's SINR prediction
is the colocated model's, by hand; over the air, the measured SINR follows that prediction, the credited
throughput never exceeds what the MCS can carry in the UE's time share, the metrics are the twin's formulas on the
measured throughputs, and the next observations carry the measured rates; a stop request turns every transmitter
off.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from agents.baselines import WMMSEPolicy
from testbed.inventory import load_config, open_radios
from testbed.ota import OtaInterrupted
from testbed.ota_hetnet import HetNetOta, evaluate_over_the_air, predict_round_sinr, rounds
from twin.config import CODE_RATES, MODULATION_NAMES, MODULATION_ORDERS, DTNConfig
from twin.hetnet import HetNetConfig, jain_index
from twin.link import packet_error_rate
from twin.mcs import choose_mcs

AP, DEVICE = "sim0", "sim1"
SMALL = HetNetConfig(num_small_cells=2, num_ues=8, num_subchannels=4, slots_per_episode=3)


# --- pure parts --------------------------------------------------------------------------------------------------

def test_choose_mcs_takes_the_best_expected_goodput_and_gains_with_sinr():
    model = DTNConfig()
    sinr_db = torch.linspace(-10.0, 45.0, 111, dtype=torch.float64)
    modulation, rate, value = choose_mcs(10 ** (sinr_db / 10), model)
    assert torch.all(value[1:] >= value[:-1] - 1e-12)
    assert (MODULATION_NAMES[int(modulation[0])], CODE_RATES[int(rate[0])]) == ("BPSK", 0.5)
    assert (MODULATION_NAMES[int(modulation[-1])], CODE_RATES[int(rate[-1])]) == ("64QAM", 5 / 6)
    assert float(value[-1]) == pytest.approx(6 * 5 / 6, rel=1e-6)
    for m, order in enumerate(MODULATION_ORDERS):
        for c, code_rate in enumerate(CODE_RATES):
            per = packet_error_rate(10 ** (sinr_db / 10), torch.full_like(modulation, order),
                                    torch.full_like(modulation, c), model.packet_bits, model.coding_gain_db)
            assert torch.all(value >= math.log2(order) * code_rate * (1 - per) - 1e-12)


def test_rounds_separate_co_channel_ues_and_play_each_active_ue_once():
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        n = int(torch.randint(1, 30, (1,), generator=gen))
        block = torch.randint(0, 5, (n,), generator=gen).tolist()
        association = torch.randint(0, 4, (n,), generator=gen).tolist()
        active = (torch.rand(n, generator=gen) > 0.2).tolist()
        plays = rounds(block, association, active)
        played = [u for members in plays for u in members]
        assert sorted(played) == [u for u in range(n) if active[u]]
        for members in plays:
            assert len({block[u] for u in members}) == len(members)
        per_block = [sum(1 for u in range(n) if active[u] and block[u] == b) for b in range(5)]
        assert len(plays) == max(per_block)


def test_round_sinr_is_the_colocated_model_by_hand():
    model = DTNConfig(kappa_t=0.03, kappa_r=0.04, acir1_db=30.0, acir2_db=45.0)
    snr = torch.tensor([1000.0, 10.0, 0.0, 100.0], dtype=torch.float64)
    occupied = snr > 0
    got = predict_round_sinr(snr, occupied, model)
    kappa2 = 0.03 ** 2 + 0.04 ** 2
    a1, a2 = 10 ** -3.0, 10 ** -4.5
    expected = [1000 / (1 + a1 * 10 + a2 * 0 + kappa2 * 1000),
                10 / (1 + a1 * (1000 + 0) + a2 * 100 + kappa2 * 10),
                0.0,
                100 / (1 + a1 * 0 + a2 * 10 + kappa2 * 100)]
    assert got.tolist() == pytest.approx(expected, rel=1e-12)


# --- over the air ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """sim0 (AP) and sim1 (device) on one simulated air, with a quick calibration of them."""
    from calibration.session import run_calibration
    from calibration.settings import CalibrationSettings
    from twin.calibration_record import from_calibration

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TESTBED_CONFIG", raising=False)
        mp.chdir(tmp_path_factory.mktemp("ota_hetnet"))
        with open_radios([AP, DEVICE], load_config(None, None), seed=0) as radios:
            record = run_calibration(radios, CalibrationSettings.at_depth(quick=True))
            yield radios, from_calibration(record, DTNConfig()), record.snr_reference_db([AP], DEVICE)


def _ota(rig, **kwargs) -> HetNetOta:
    radios, link_model, snr_ref = rig
    return HetNetOta(SMALL, link_model, radios, [AP], DEVICE, snr_ref, **kwargs)


def test_over_the_air_slots_follow_the_prediction_and_credit_only_what_decodes(rig):
    ota = _ota(rig)
    policy = WMMSEPolicy()
    records = []
    result = evaluate_over_the_air({"wmmse-ssa": policy}, ota, [11, 12], records=records)["wmmse-ssa"]
    assert len(records) == 2 * SMALL.slots_per_episode * SMALL.num_ues
    played = [r for r in records if r["sinr_db"] is not None]
    assert played, "no UE was played"
    # Every UE with a positive twin SINR that some MCS can carry goes on air once per slot, and nothing else does.
    assert all((r["acquisition"] is not None) == (r["not_played"] is None) for r in records)
    assert all((r["sinr_db"] is not None) == (r["acquisition"] == "acquired") for r in records)
    assert all(r["twin_sinr_db"] is not None for r in records if r["not_played"] != "zero power")
    assert all(r["twin_sinr_db"] is None for r in records if r["not_played"] == "zero power")
    # The measured SINR follows the calibrated model's prediction for the rendering.
    errors = [r["sinr_db"] - r["predicted_sinr_db"] for r in played if 3.0 < r["predicted_sinr_db"] < 28.0]
    assert len(errors) >= 10
    assert abs(statistics.median(errors)) < 1.5, errors
    # Credited throughput (twin units): at most what the chosen MCS carries in the UE's time share of its block.
    for r in played:
        bits = math.log2(MODULATION_ORDERS[MODULATION_NAMES.index(r["modulation"])]) * r["code_rate"]
        assert 0.0 <= r["credited_twin_mbps"] <= SMALL.block_bandwidth_hz * bits / 1e6 + 1e-9
        assert r["credited_twin_mbps"] <= r["twin_capacity_mbps"] * 1.05 + 1e-9 or r["capped"]
    assert 0 < result["credited_twin_mbps"] < result["twin_throughput_mbps"]
    # Over the air, in real units: a UE's delivered bits fit the REs of its RBs at its MCS within the air time,
    # and the sum never exceeds what the whole carrier could carry at the top MCS (LTE 5 MHz: 25 RB x 12 x 14 REs
    # x 6 bit per 1 ms slot is 25.2 Mbit/s before pilots and coding).
    for r in played:
        bits = math.log2(MODULATION_ORDERS[MODULATION_NAMES.index(r["modulation"])]) * r["code_rate"]
        on_air_cap = 3 * 12 * 14 * bits / 1e-3 / 1e6  # its 3 RBs for a whole 1 ms slot
        assert 0.0 <= r["ota_throughput_mbps"] <= on_air_cap
        assert (r["delivered_bits"] > 0) == (r["ota_throughput_mbps"] > 0)
    assert 0 < result["ota_throughput_mbps"] < 25.2
    assert 1.0 / SMALL.num_ues <= result["jain"] <= 1.0
    assert result["rounds"] >= 1.0 and result["episodes"] == 2


def test_a_slot_scores_the_measured_throughput_and_observes_it(rig):
    ota = _ota(rig)
    observation = ota.reset(5)
    state = ota.network_state()
    min_rate = ota.network.min_rate.clone()
    action = WMMSEPolicy().act(observation, state)
    outcome = ota.step(action)
    throughput = outcome.throughput
    assert float(outcome.info["sum_throughput_mbps"][0]) == pytest.approx(float(throughput.sum()))
    assert float(outcome.info["jain_index"][0]) == pytest.approx(float(jain_index(throughput)[0]))
    assert float(outcome.info["qos_non_compliance"][0]) == pytest.approx(float((throughput < min_rate).double().mean()))
    expected_reward = (float(throughput.sum()) / SMALL.throughput_scale_mbps
                       - SMALL.fairness_weight * (1 - float(jain_index(throughput)[0]))
                       - SMALL.handover_weight * float(outcome.info["handovers"][0]) / SMALL.num_ues)
    assert float(outcome.reward[0]) == pytest.approx(expected_reward, rel=1e-9)
    rate_feature = outcome.observation[0, :, 2 * SMALL.num_bs]
    assert rate_feature.tolist() == pytest.approx((throughput[0] / min_rate[0]).clamp(max=10.0).tolist(), rel=1e-9)


def test_a_stop_request_ends_the_evaluation_with_the_transmitters_off(rig):
    radios = rig[0]
    ota = _ota(rig, should_stop=lambda: True)
    with pytest.raises(OtaInterrupted):
        evaluate_over_the_air({"wmmse-ssa": WMMSEPolicy()}, ota, [1])
    assert not radios[AP].transmitting


def test_what_cannot_be_rendered_is_refused(rig):
    with pytest.raises(ValueError, match="do not fit"):
        _ota(rig, rbs_per_block=7)
    radios, link_model, snr_ref = rig
    for changes in ({"noma": True}, {"traffic": "bursty"}):
        with pytest.raises(ValueError, match="allowed: noma=False, traffic='bitstream'"):
            HetNetOta(SMALL.with_updates(**changes), link_model, radios, [AP], DEVICE, snr_ref)


def test_with_two_ap_radios_the_association_picks_the_radio(tmp_path, monkeypatch):
    """BS j is carried by AP radio j mod 2: every UE-slot is recorded on its BS's radio, both radios transmit, and
    UEs of both radios deliver. (Link model and SNR references are nominal here: the mapping is under test.)"""
    monkeypatch.delenv("TESTBED_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with open_radios(["sim0", "sim1", "sim2"], load_config(None, None), seed=1) as radios:
        ota = HetNetOta(SMALL, DTNConfig(), radios, ["sim0", "sim1"], "sim2", {"sim0": 35.0, "sim1": 35.0})
        records = []
        evaluate_over_the_air({"wmmse-ssa": WMMSEPolicy()}, ota, [21], records=records)
    played = [r for r in records if r["sinr_db"] is not None]
    assert all(r["radio"] == ("sim0", "sim1")[r["bs"] % 2] for r in records)
    assert {r["radio"] for r in played} == {"sim0", "sim1"}
    assert all(any(r["ota_throughput_mbps"] > 0 for r in played if r["radio"] == name) for name in ("sim0", "sim1"))
