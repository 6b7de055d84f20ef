"""Link-level physics on numpy channels: EVM and SINR against the true SNR, zero BLER at high SNR, sync
robustness, multiple links and transmitters, ACI through a PA, WOLA and ACLR, two numerologies on one radio."""

import math

import numpy as np
import pytest

from _ofdm_testlib import cyclic_rx, noise_rms_for_snr
from radio.ofdm import Link, SlotPlan, build_slot, combine_waveforms, numerology, receive_slot
from calibration.measurements import aclr as measure_aclr
from tests.helpers.channels import awgn, frequency_offset, fractional_delay, multipath, rapp_pa, sample_clock_offset
from radio.ofdm.fec import CODE_RATES
from radio.ofdm.modulation import MODULATIONS


def full_band(name="lte5", mod="qpsk", rate="1/2", **kw):
    n = numerology(name)
    return SlotPlan(n, (Link("a", tuple(range(n.n_rb)), mod, rate),), **kw)


def test_noiseless_evm_is_zero_and_everything_decodes():
    plan = full_band("lte3", "256qam", "5/6")
    tx = build_slot(plan)
    rep = receive_slot(cyclic_rx(tx, None, offset=100), plan, reference=tx).links[0]
    assert rep.evm < 1e-3
    assert rep.bler == 0.0 and rep.delivered_bits == tx.links[0].layout.info_bits > 0


@pytest.mark.parametrize("snr_db", [5.0, 10.0, 20.0, 30.0, 35.0])
def test_evm_and_sinr_follow_awgn_snr(snr_db):
    # Three slots (about 10,000 data REs) so the noise sample itself is known to +-0.05 dB.
    plan = full_band("lte5")
    rng = np.random.default_rng(int(snr_db))
    reps = []
    for slot in range(3):
        tx = build_slot(plan, slot)
        reps.append(receive_slot(cyclic_rx(tx, rng, snr_db, offset=1234 * slot), plan, slot, reference=tx,
                                 decode=False).links[0])
    evm = math.sqrt(np.mean([r.evm ** 2 for r in reps]))
    # EVM of AWGN at SNR x is 10^(-x/20): within 0.3 dB, channel-estimation error included.
    assert 20 * math.log10(evm) == pytest.approx(-snr_db, abs=0.3)
    for r in reps:
        assert r.sinr_db == pytest.approx(snr_db, abs=0.5)
        assert r.sinr_pilot_db == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_every_mcs_is_error_free_at_high_snr(mod):
    plan = SlotPlan("lte1.4", tuple(Link(f"r{i}", (2 * i, 2 * i + 1), mod, rate)
                                    for i, rate in enumerate(["1/2", "3/4", "5/6"])))
    tx = build_slot(plan)
    rep = receive_slot(cyclic_rx(tx, np.random.default_rng(5), 38.0, offset=77), plan, reference=tx)
    for link in rep.links:
        assert link.bler == 0.0, (mod, link.link_id)
        assert link.delivered_bits == link.offered_bits > 0


@pytest.mark.parametrize("name,cfo_scs,ppm,offset", [
    ("lte5", 0.4, 20.0, 3000), ("lte5", -0.4, -20.0, 17), ("nr20-30k", 0.37, 20.0, 20000),
    ("lte20", -0.4, 20.0, 45000), ("lte1.4", 0.25, -20.0, 1919),
])
def test_sync_survives_cfo_timing_and_clock_offset(name, cfo_scs, ppm, offset):
    plan = full_band(name, "16qam", "3/4")
    tx = build_slot(plan)
    rng = np.random.default_rng(7)
    x = np.concatenate([np.zeros(offset), np.tile(tx.waveform.astype(complex), 3)])
    x = fractional_delay(x, 0.37)
    x = sample_clock_offset(x, ppm)
    x = frequency_offset(x, cfo_scs * plan.numerology.scs_hz, plan.rate_hz, phase=1.0)
    x = awgn(x, noise_rms_for_snr(tx, 22.0), rng)[: 2 * plan.slot_length + offset % plan.slot_length]
    rep = receive_slot(x, plan, reference=tx)
    assert rep.sync.cfo_hz == pytest.approx(cfo_scs * plan.numerology.scs_hz, abs=0.005 * plan.numerology.scs_hz)
    assert (rep.sync.start - offset) % plan.slot_length in (0, 1, 2, plan.slot_length - 1)
    # The clock offset is estimated well enough that the phase error it leaves at the band edge over a slot
    # stays under 0.05 rad (narrow carriers barely see 20 ppm at all).
    n = plan.numerology
    edge_phase = abs(rep.sync.sco_ppm - ppm) * 1e-6 * plan.slot_length * math.pi * n.n_subcarriers / n.fft_size
    assert edge_phase < 0.05
    link = rep.links[0]
    assert link.bler == 0.0
    assert link.sinr_db > 20.0


def test_integer_cfo_beyond_one_subcarrier_is_found():
    plan = full_band("lte3", "qpsk", "1/2")
    tx = build_slot(plan)
    x = frequency_offset(cyclic_rx(tx, np.random.default_rng(8), 15.0, offset=500), 2.7 * 15e3, plan.rate_hz)
    rep = receive_slot(x, plan, reference=tx, max_cfo_scs=3.5)
    assert rep.sync.cfo_hz == pytest.approx(2.7 * 15e3, abs=75)
    assert rep.links[0].bler == 0.0


def test_multipath_inside_the_cp_decodes_and_uses_more_channel_taps():
    plan = full_band("lte5", "16qam", "1/2")
    tx = build_slot(plan)
    rng = np.random.default_rng(9)
    flat = receive_slot(cyclic_rx(tx, rng, 25.0), plan, reference=tx).links[0]
    x = multipath(np.tile(tx.waveform.astype(complex), 2), [0.0, 4.3, 11.6], [1.0, 0.6j, -0.3])
    rep = receive_slot(awgn(x, noise_rms_for_snr(tx, 25.0), rng), plan, reference=tx).links[0]
    assert rep.bler == 0.0
    assert rep.channel_taps > flat.channel_taps


def test_links_at_different_powers_on_interleaved_rbs_decode_independently():
    strong = Link("strong", tuple(range(0, 25, 2)), "64qam", "3/4", power_db=0.0)
    weak = Link("weak", tuple(range(1, 25, 2)), "qpsk", "1/2", power_db=-15.0)
    plan = SlotPlan("lte5", (strong, weak))
    tx = build_slot(plan)
    rep = receive_slot(cyclic_rx(tx, np.random.default_rng(10), 28.0, offset=999), plan, reference=tx)
    s, w = rep.link("strong"), rep.link("weak")
    assert s.bler == 0.0 and w.bler == 0.0
    assert s.sinr_db == pytest.approx(28.0, abs=0.6)
    assert w.sinr_db == pytest.approx(13.0, abs=0.6)
    assert s.rx_power_db - w.rx_power_db == pytest.approx(15.0, abs=0.3)


def _two_ap_rx(plan_a, plan_b, tx_a, tx_b, *, interferer_gain_db, snr_db, rng, pa_backoff_db=None):
    """Weak AP A plus AP B 'interferer_gain_db' stronger, B through a Rapp PA at the given back-off, different
    timing and carrier phase per AP."""
    a = np.tile(tx_a.waveform.astype(complex), 3)
    b = np.tile(tx_b.waveform.astype(complex), 3)
    if pa_backoff_db is not None:
        b = rapp_pa(b * 10 ** ((plan_b.backoff_db - pa_backoff_db) / 20), 1.0, 2.0) * 10 ** (
            (pa_backoff_db - plan_b.backoff_db) / 20)
    b = np.roll(frequency_offset(b, 0.0, plan_b.rate_hz, phase=0.7), 9) * 10 ** (interferer_gain_db / 20)
    x = awgn(a + b, noise_rms_for_snr(tx_a, snr_db), rng)
    return x[2000: 2000 + 2 * plan_a.slot_length]


def test_aci_from_a_stronger_ap_through_a_pa_shrinks_with_back_off():
    plan_a = SlotPlan("lte5", (Link("weak", tuple(range(0, 12)), "16qam", "1/2"),), tx_id=0)
    plan_b = SlotPlan("lte5", (Link("loud", tuple(range(12, 25)), "64qam", "3/4"),), tx_id=1)
    tx_a, tx_b = build_slot(plan_a), build_slot(plan_b)
    rng = np.random.default_rng(11)
    sinr = {}
    adjacent = {}
    for backoff in (None, 5.0, 11.0):
        x = _two_ap_rx(plan_a, plan_b, tx_a, tx_b, interferer_gain_db=30.0 if backoff else -300.0, snr_db=30.0,
                       rng=rng, pa_backoff_db=backoff)
        rep = receive_slot(x, plan_a, reference=tx_a, decode=False).links[0]
        sinr[backoff] = rep.sinr_db
        adjacent[backoff] = rep.adjacent
    drop_hard = sinr[None] - sinr[5.0]
    drop_soft = sinr[None] - sinr[11.0]
    assert drop_hard > 5.0            # PA regrowth of a 30 dB stronger neighbour buries the weak link
    assert drop_soft < drop_hard - 3.0  # more back-off, less regrowth
    # The weak link's upper adjacent group is the loud AP: about 30 dB above it.
    upper = [a for a in adjacent[5.0] if a.offset == 1][0]
    assert upper.relative_db == pytest.approx(30.0, abs=1.5)


def _lte5_bins(rbs) -> np.ndarray:
    """FFT bins (signed, DC = 0, unused) of LTE-5's RBs ``rbs``: 150 subcarriers below DC, 150 above."""
    carriers = np.concatenate([np.arange(12 * rb, 12 * rb + 12) for rb in rbs])
    return np.where(carriers < 150, carriers - 150, carriers - 149)


def _dirichlet_power(offset_bins: np.ndarray, n_fft: int) -> np.ndarray:
    """Share of a tone's power an ``n_fft``-point DFT puts on a bin ``offset_bins`` (fractional) away from it."""
    x = np.asarray(offset_bins, dtype=float)
    return np.sin(np.pi * x) ** 2 / (n_fft ** 2 * np.sin(np.pi * x / n_fft) ** 2)


def test_adjacent_power_report_sees_a_neighbours_leakage():
    # A lone link with empty RBs around: the adjacent groups read its out-of-band leakage, which a CFO-shifted
    # (non-orthogonal) neighbour raises.
    plan = SlotPlan("lte5", (Link("mid", tuple(range(10, 15)), "qpsk", "1/2"),))
    tx = build_slot(plan)
    rng = np.random.default_rng(12)
    clean = receive_slot(cyclic_rx(tx, rng, 50.0), plan, reference=tx, decode=False).links[0]
    inner = {a.offset: a.relative_db for a in clean.adjacent}
    assert inner[-1] < -40 and inner[1] < -40
    neighbour = SlotPlan("lte5", (Link("n", tuple(range(15, 20)), "qpsk", "1/2", power_db=10.0),), tx_id=1)
    txn = build_slot(neighbour)
    x = np.tile(tx.waveform.astype(complex), 2) + frequency_offset(
        np.tile(txn.waveform.astype(complex), 2), 0.3 * 15e3, plan.rate_hz)
    rep = receive_slot(awgn(x, noise_rms_for_snr(tx, 50.0), rng), plan, reference=tx, decode=False).links[0]
    got = {a.offset: a.relative_db for a in rep.adjacent}
    # Reference: inside the DFT window a subcarrier offset by eps bins puts |D(d + eps)|^2 of its power on a bin d
    # away, D the Dirichlet kernel; summed over the neighbour's 60 subcarriers at +10 dB.
    link_bins, neighbour_bins = _lte5_bins(range(10, 15)), _lte5_bins(range(15, 20))
    ici = 10.0 * _dirichlet_power(neighbour_bins[None, :] - link_bins[:, None] + 0.3, 512).sum(axis=1).mean()
    kept = 10.0 * _dirichlet_power(neighbour_bins[None, :] - neighbour_bins[:, None] + 0.3, 512).sum(axis=1).mean()
    assert got[1] == pytest.approx(10 * math.log10(kept), abs=0.3)
    # The receiver's SINR (50 dB SNR, channel-estimation loss and all) within 0.5 dB of 1 / (ICI + 1/SNR).
    assert rep.sinr_db == pytest.approx(-10 * math.log10(ici + 1e-5), abs=0.5)


def test_wola_improves_aclr_and_still_decodes():
    def aclr(ramp):
        plan = full_band("lte5", "64qam", "3/4", sample_rate_hz=30.72e6, wola_ramp=ramp)
        x = np.concatenate([build_slot(plan, i).waveform for i in range(3)])
        return measure_aclr(x, plan.rate_hz, 5e6, 4.5e6).aclr1, plan
    plain, _ = aclr(0)
    windowed, plan = aclr(32)
    assert plain == pytest.approx(35.6, abs=2.0)  # plain CP-OFDM, reference section 8.4
    assert windowed > plain + 8.0
    tx = build_slot(plan)
    rep = receive_slot(cyclic_rx(tx, np.random.default_rng(13), 30.0, offset=4321), plan, reference=tx).links[0]
    assert rep.bler == 0.0 and rep.sinr_db > 28.0


def test_backoff_keeps_the_dac_unclipped_and_scales_power():
    plan = full_band("lte10", "256qam", "5/6")
    tx = build_slot(plan)
    assert tx.peak_to_full_scale_db < 0.0
    rms = math.sqrt(float(np.mean(np.abs(tx.waveform) ** 2)))
    assert 20 * math.log10(rms) == pytest.approx(-12.0, abs=0.3)


def test_two_numerologies_side_by_side_on_one_radio():
    fs = 15.36e6
    lte = SlotPlan("lte5", (Link("lte", tuple(range(25)), "16qam", "1/2"),), sample_rate_hz=fs,
                   center_offset_hz=-3.6e6, backoff_db=15.0)
    nr = SlotPlan("nr5-30k", (Link("nr", tuple(range(11)), "16qam", "1/2"),), sample_rate_hz=fs,
                  center_offset_hz=3.6e6, backoff_db=15.0, tx_id=1)
    tl, tn = build_slot(lte), build_slot(nr)
    wave = combine_waveforms([tl.waveform, tn.waveform])
    assert wave.size == lte.slot_length == 2 * nr.slot_length
    x = awgn(np.tile(wave.astype(complex), 2)[333:], noise_rms_for_snr(tl, 30.0), np.random.default_rng(14))
    for plan, ref in ((lte, tl), (nr, tn)):
        rep = receive_slot(x, plan, reference=ref).links[0]
        assert rep.bler == 0.0 and rep.sinr_db > 25.0, plan.numerology.name


def test_bad_plans_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="allowed 0 to 5"):
        SlotPlan("lte1.4", (Link("a", (5, 6)),))
    with pytest.raises(ValueError, match="both use RB 3"):
        SlotPlan("lte1.4", (Link("a", (2, 3)), Link("b", (3, 4))))
    with pytest.raises(ValueError, match="allowed: bpsk"):
        Link("a", (1,), "8psk")
    with pytest.raises(ValueError, match="multiple of the 15000"):
        SlotPlan("lte5", (Link("a", (1,)),), sample_rate_hz=15.36e6, center_offset_hz=1e3)
