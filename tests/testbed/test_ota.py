"""``testbed.ota.OtaNetwork``: twin slots rendered as OFDM slots on two simulated radios and measured.

Physics checked against a quick calibration of the same radios: a link whose twin SNR is above what the AP radio
delivers is capped at the calibrated SINR and decodes; a link at a very low SNR with a dense MCS delivers nothing;
a link inside the dynamic range is measured near its twin SNR; rewards are the sum of the links' goodputs in twin
units; RRB r is rendered on RBs [3r, 3r + 3); a stop request ends the episode with every transmitter off.
"""

from __future__ import annotations

import math

import pytest
import torch

import testbed.ota as ota_module
from testbed.inventory import load_config, open_radios
from radio.errors import RadioFault
from testbed.ota import OtaInterrupted, OtaNetwork, SlotNotAcquired
from twin.config import CODE_RATES, DTNConfig, encode_action
from twin.link import link_rate_mbps, modulation_order_tensor

AP, DEVICE = "sim0", "sim1"
# One AP, three devices on three RRBs: every device is scheduled every slot. No shadowing or fading, so a link's
# twin SNR is set exactly by its large-scale gain.
ONE_AP = DTNConfig(num_aps=1, num_devices=3, num_rrbs=3, slots_per_episode=3, shadowing=False, fading=False)

BPSK, QPSK, QAM16, QAM64 = range(4)
R12, R34, R56 = range(3)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """sim0 and sim1 on one simulated air (seed 0), and a quick calibration of them (the record)."""
    from calibration.session import run_calibration
    from calibration.settings import CalibrationSettings

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TESTBED_CONFIG", raising=False)
        mp.chdir(tmp_path_factory.mktemp("ota"))
        cfg = load_config(None, None)
        with open_radios([AP, DEVICE], cfg, seed=0) as radios:
            record = run_calibration(radios, CalibrationSettings.at_depth(quick=True))
            yield radios, record


def _snr_ref_db(record) -> float:
    return -10 * math.log10(record.results["kappa"]["noise_term"][f"{AP}->{DEVICE}"])


def _capped_sinr_db(record) -> float:
    """The SINR the calibration predicts for a link at full digital power (u = 1): receiver noise plus TX and RX
    distortion and the TX floor of the fitted EVM model. A lone 3-RB link is far below the PA's compression, so
    the compression term is left out."""
    k = record.results["kappa"]
    evm2 = (k["kappa_t"][AP]["value"] ** 2 + k["kappa_r"][DEVICE]["value"] ** 2
            + k["noise_term"][f"{AP}->{DEVICE}"] + k["tx_floor_term"][AP])
    return -10 * math.log10(evm2)


def _network(rig, config: DTNConfig = ONE_AP, **kwargs) -> OtaNetwork:
    radios, record = rig
    return OtaNetwork(config, radios, [AP], DEVICE, {AP: _snr_ref_db(record)}, **kwargs)


def _set_twin_snr(net: OtaNetwork, snr_db: list[float]) -> None:
    """Give link n the twin SNR snr_db[n] at P_max towards every AP, then reschedule the coming slot."""
    cfg = net.config
    p_max_w = 10 ** ((cfg.p_max_dbm - 30) / 10)
    gain = torch.tensor([10 ** (s / 10) * cfg.noise_power_w / p_max_w for s in snr_db], dtype=net.dtype)
    net.large_scale_gain = gain.view(1, -1, 1).expand_as(net.large_scale_gain).clone()
    net._refresh_gain()
    net.rrb = net._schedule()


def _actions(net: OtaNetwork, mcs: list[tuple[int, int]]) -> torch.Tensor:
    """P_max with the given (modulation, code rate) per link."""
    top = net.config.num_power_levels - 1
    return torch.tensor([[int(encode_action(torch.tensor(top), torch.tensor(m), torch.tensor(r)))
                          for m, r in mcs]])


def _capture_run_slot(monkeypatch) -> list[list]:
    """Record the (radio, plan) transmitters of every slot and whether each radio transmitted after the slot."""
    slots: list[list] = []
    real = ota_module.run_slot

    def spy(transmitters, receiver, slot_index, **kwargs):
        out = real(transmitters, receiver, slot_index, **kwargs)
        slots.append([(radio, plan, radio.transmitting) for radio, plan in transmitters])
        return out

    monkeypatch.setattr(ota_module, "run_slot", spy)
    return slots


def test_links_follow_the_twin_snr_within_the_radio_range_and_rewards_are_goodputs(rig, monkeypatch):
    """Three links in one slot: twin SNR 60 dB (above the AP radio's range: capped, measured within 3 dB of the
    calibrated SINR, QPSK 1/2 decodes every block), 15 dB (inside the range, next to the capped link whose
    leakage it hears: measured within 3 dB, QPSK 1/2 decodes), -5 dB with 64QAM 5/6 (nothing decodes, goodput 0). The slot reward is the sum of the links'
    goodputs, each the twin's nominal MCS rate times the fraction of blocks delivered; RRB r sits on RBs
    [3r, 3r + 3) of the AP radio's plan with the link's modulation and code rate."""
    radios, record = rig
    slots = _capture_run_slot(monkeypatch)
    net = _network(rig)
    net.reset(11)
    _set_twin_snr(net, [60.0, 15.0, -5.0])
    assert bool(net.scheduled.all()), "every device should hold an RRB"
    mcs = [(QPSK, R12), (QPSK, R12), (QAM64, R56)]
    result = net.step(_actions(net, mcs))

    measured = {t["link"]: t["measured"] for t in net.transitions}
    assert sorted(measured) == [0, 1, 2]
    high, mid, low = measured[0], measured[1], measured[2]
    cap = _capped_sinr_db(record)
    assert high["capped"] is True and not mid["capped"] and not low["capped"]
    assert abs(high["sinr_db"] - cap) < 3.0, (high["sinr_db"], cap)
    assert high["sinr_db"] < _snr_ref_db(record) + 1.0
    assert abs(mid["sinr_db"] - 15.0) < 3.0, mid["sinr_db"]
    assert low["sinr_db"] < 0.0
    assert high["bler"] == 0.0 and high["delivered_bits"] > 0
    assert mid["bler"] == 0.0
    assert low["bler"] == 1.0 and low["delivered_bits"] == 0

    rate = result.rate[0]
    qpsk_half = float(link_rate_mbps(torch.zeros(1), modulation_order_tensor(torch.tensor([QPSK])),
                                     torch.tensor([R12]), ONE_AP.rrb_symbol_rate, torch.ones(1, dtype=torch.bool)))
    assert qpsk_half == pytest.approx(ONE_AP.rrb_symbol_rate * 2 * CODE_RATES[R12] / 1e6)
    assert float(rate[0]) == pytest.approx(qpsk_half) and float(rate[1]) == pytest.approx(qpsk_half)
    assert float(rate[2]) == 0.0
    assert float(result.reward[0]) == pytest.approx(float(rate.sum()))
    assert float(result.reward[0]) == pytest.approx(sum(t["reward"] for t in net.transitions))
    assert all(t["reward"] >= 0 and t["step"] == 1 for t in net.transitions)

    # The rendered plan: one transmitter (the AP radio), one link per scheduled twin link on its RRB's RBs.
    assert len(slots) == 1 and len(slots[0]) == 1
    radio, plan, transmitting = slots[0][0]
    assert radio is radios[AP] and transmitting
    rrb = result.info["rrb"][0]
    names = {"bpsk": BPSK, "qpsk": QPSK, "16qam": QAM16, "64qam": QAM64}
    for link in plan.links:
        n = int(link.id)
        r = int(rrb[n])
        assert link.rbs == tuple(range(3 * r, 3 * r + 3))
        assert (names[link.modulation], float(link.rate)) == (mcs[n][0], pytest.approx(CODE_RATES[mcs[n][1]]))
    assert sorted(int(link.id) for link in plan.links) == [0, 1, 2]
    net.close()
    assert not radios[AP].transmitting


def test_links_inside_the_range_are_measured_at_the_twin_snr_plus_the_calibrated_distortion(rig):
    """Three links at twin SNR 12 dB each (digital power well inside the radio's range): each is measured within
    1.5 dB of 12 dB combined with the calibrated distortion floor (SINR^-1 = SNR^-1 + cap^-1), none capped."""
    _, record = rig
    net = _network(rig)
    net.reset(4)
    _set_twin_snr(net, [12.0, 12.0, 12.0])
    net.step(_actions(net, [(BPSK, R12)] * 3))
    expected = -10 * math.log10(10 ** (-12.0 / 10) + 10 ** (-_capped_sinr_db(record) / 10))
    assert len(net.transitions) == 3
    for t in net.transitions:
        assert t["measured"]["capped"] is False
        assert abs(t["measured"]["sinr_db"] - expected) < 1.5, (t["measured"]["sinr_db"], expected)
        assert t["measured"]["bler"] == 0.0
    net.close()


def test_every_twin_ap_is_rendered_by_the_one_ap_radio_on_disjoint_rb_groups(rig, monkeypatch):
    """Two twin APs, one AP radio: AP k -> ap_radios[k % 1], so every scheduled link of both APs is a link of
    sim0's plan; RRB r -> RBs [3r, 3r + 3), disjoint across links; unscheduled links are not rendered."""
    radios, _ = rig
    slots = _capture_run_slot(monkeypatch)
    config = DTNConfig(num_aps=2, num_devices=4, num_rrbs=4, slots_per_episode=2)
    net = _network(rig, config)
    net.reset(5)
    serving = net.cluster[0].clone()
    scheduled = net.rrb[0].clone()
    result = net.step(_actions(net, [(BPSK, R12)] * 4))
    assert len(slots) == 1 and len(slots[0]) == 1
    radio, plan, _ = slots[0][0]
    assert radio is radios[AP]
    rendered = {int(link.id): link.rbs for link in plan.links}
    expected = {n: tuple(range(3 * int(r), 3 * int(r) + 3)) for n, r in enumerate(scheduled.tolist()) if r >= 0}
    assert rendered == expected and expected
    assert len({rb for rbs in rendered.values() for rb in rbs}) == 3 * len(rendered)
    assert {int(serving[n]) for n in rendered} <= {0, 1}
    assert torch.equal(result.info["rrb"][0], scheduled)
    assert [t["link"] for t in net.transitions] == sorted(expected)
    net.close()


def test_a_stop_request_ends_the_episode_after_the_slot_with_every_transmitter_off(rig, monkeypatch):
    """should_stop is polled after each slot: returning True after the first one raises OtaInterrupted from step();
    the slot in flight was measured and recorded, and no AP radio is transmitting afterwards."""
    radios, _ = rig
    slots = _capture_run_slot(monkeypatch)
    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return True

    net = _network(rig, should_stop=should_stop)
    net.reset(3)
    _set_twin_snr(net, [20.0, 20.0, 20.0])
    with pytest.raises(OtaInterrupted):
        net.step(_actions(net, [(QPSK, R12)] * 3))
    assert len(polls) == 1 and len(slots) == 1
    assert slots[0][0][2] is True                   # the AP radio was transmitting during the slot
    assert not radios[AP].transmitting and not radios[DEVICE].transmitting
    rows, kpms = net.drain()
    assert sorted(r["link"] for r in rows) == [0, 1, 2] and all("sinr_db" in r["measured"] for r in rows)
    assert {k["name"] for k in kpms} == {"ota/sinr_db", "ota/evm", "ota/bler"}
    assert net.drain() == ([], [])


def test_a_slot_the_device_radio_cannot_acquire_is_a_radio_fault_not_zero_goodput(rig):
    """With the AP -> device link cut (the AP radio's signal never arrives), the slot is "no signal": step()
    raises SlotNotAcquired, a RadioFault (the runner's outage path), with one line naming the radios and the
    state, every transmitter off, and no transition recorded for the learner."""
    radios, _ = rig
    air = radios[AP].air
    net = _network(rig)
    net.reset(5)
    _set_twin_snr(net, [20.0, 20.0, 20.0])
    air.set_link(AP, DEVICE, path_loss_db=math.inf)
    try:
        with pytest.raises(SlotNotAcquired) as caught:
            net.step(_actions(net, [(QPSK, R12)] * 3))
    finally:
        air.set_link(AP, DEVICE, path_loss_db=_configured_path_loss(air))
    assert isinstance(caught.value, RadioFault)
    message = str(caught.value)
    assert "\n" not in message and f"no signal on {AP}->{DEVICE}" in message
    assert not radios[AP].transmitting
    assert net.drain() == ([], [])


def test_a_slot_predicted_too_weak_to_acquire_and_not_acquired_delivers_nothing_without_a_fault(rig):
    """The same cut link, but every link predicted far below the acquisition limit (twin SNR -15 dB: RBs x SINR
    well under ACQUISITION_RB_SNR): the slot is not acquired as predicted, which is the decisions' outcome, so
    step() returns zero goodput for the links instead of raising, and the stored rows say why (nulls, status)."""
    from testbed.ota import ACQUISITION_RB_SNR

    radios, _ = rig
    air = radios[AP].air
    net = _network(rig)
    net.reset(5)
    _set_twin_snr(net, [-15.0, -15.0, -15.0])
    air.set_link(AP, DEVICE, path_loss_db=math.inf)
    try:
        result = net.step(_actions(net, [(QPSK, R12)] * 3))
    finally:
        air.set_link(AP, DEVICE, path_loss_db=_configured_path_loss(air))
        net.close()
    assert 3 * net.rbs_per_rrb * 10 ** (-15 / 10) < ACQUISITION_RB_SNR
    assert float(result.reward.sum()) == 0.0
    rows, kpms = net.drain()
    assert sorted(r["link"] for r in rows) == [0, 1, 2]
    assert all(r["measured"]["sinr_db"] is None and r["measured"]["status"] == "no signal" for r in rows)
    assert kpms == []
    assert net.delivered_bits_total == 0


def _configured_path_loss(air) -> float:
    """The path loss the sim0 -> sim1 link had before the test cut it (the configured default)."""
    return air.config.link_params(AP, DEVICE).path_loss_db


def test_phi_state_round_trips_and_bad_mappings_are_refused(rig):
    """measured_phi is None before any evidence; the running estimate and slot counter survive state_dict();
    a plan that does not fit the carrier, a device radio that is also an AP, or a radio not open are refused."""
    radios, record = rig
    net = _network(rig)
    assert net.measured_phi() is None
    net.load_state_dict({"phi": (3.0, 2.0), "slot_counter": 7})
    assert net.measured_phi() == pytest.approx(0.5 * 3.0 / (0.5 * 2.0) - 1.0)
    other = _network(rig)
    other.load_state_dict(net.state_dict())
    assert other.measured_phi() == pytest.approx(net.measured_phi())
    assert other.state_dict()["slot_counter"] == 7
    ref = {AP: _snr_ref_db(record)}
    with pytest.raises(ValueError, match="do not fit"):
        OtaNetwork(DTNConfig(num_aps=1, num_devices=3, num_rrbs=9), radios, [AP], DEVICE, ref)
    with pytest.raises(ValueError, match="cannot also be an AP"):
        OtaNetwork(ONE_AP, radios, [AP, DEVICE], DEVICE, {**ref, DEVICE: 30.0})
    with pytest.raises(ValueError, match="not open"):
        OtaNetwork(ONE_AP, radios, ["sim7"], DEVICE, {"sim7": 30.0})


def test_a_colocated_capped_twin_predicts_weak_links_beside_strong_ones_and_the_geometric_one_does_not(rig):
    """Two twin APs, both rendered by the one AP radio: AP0's two devices are near it (twin SNR 45 dB, capped at the
    radio's range), AP1's are weak (15 dB) and far from AP0 (cross gain -60 dB). Over the air the weak links sit on
    the RB groups between the strong ones and hear their leakage at the strong links' level; eq. 14's geometric
    view hears that leakage through the -60 dB cross gain and is optimistic by about 2-3 dB. The twin that models the
    rendering (interference="colocated", max_snr_db = the calibrated SNR at full power) predicts the weak links
    within 1 dB (median)."""
    from twin.calibration_record import from_calibration

    radios, record = rig
    base = from_calibration(record, DTNConfig(num_aps=2, num_devices=4, num_rrbs=4, slots_per_episode=6,
                                                       shadowing=False, fading=False))
    error = {}
    for view, config in (("colocated", base.with_updates(interference="colocated", max_snr_db=_snr_ref_db(record))),
                         ("geometric", base)):
        net = _network(rig, config)
        net.reset(3)
        serving = torch.tensor([[0, 1, 0, 1]])
        net.cluster = serving.clone()
        p_max_w = 10 ** ((config.p_max_dbm - 30) / 10)
        own = torch.tensor([45.0, 15.0, 45.0, 15.0], dtype=torch.float64)
        serves = torch.nn.functional.one_hot(serving[0], 2).bool()
        snr_db = torch.where(serves, own.unsqueeze(-1), own.unsqueeze(-1) - 60)
        net.large_scale_gain = (10 ** (snr_db / 10) * config.noise_power_w / p_max_w).unsqueeze(0).to(net.dtype)
        net._refresh_gain()
        net.rrb = net._schedule()
        assert sorted(net.rrb[0].tolist()) == [0, 1, 2, 3]
        weak = []
        for _ in range(config.slots_per_episode):
            net.step(_actions(net, [(QPSK, R12)] * 4))
            weak += [t["measured"]["sinr_db"] - t["measured"]["twin_sinr_db"] for t in net.transitions
                     if t["link"] in (1, 3)]
            net.transitions.clear()
        net.close()
        assert len(weak) == 2 * config.slots_per_episode
        error[view] = float(torch.tensor(weak).median())
    assert abs(error["colocated"]) <= 1.0, error
    assert error["geometric"] <= -1.5, error
