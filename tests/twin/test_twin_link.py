"""SER (exact vs Monte Carlo, printed eq. 17), PER, CQI mapping and the SINR of eq. 14 on a hand case."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from twin.link import (CQI_SINR_THRESHOLD_DB, cqi_from_sinr_db, packet_error_rate, ser_exact, ser_printed_eq17,
                       sinr_coupling, slot_sinr)


def _monte_carlo_ser(order: int, esn0: float, num_symbols: int, rng: np.random.Generator) -> float:
    """Symbol error rate of Gray square QAM (or BPSK) by simulating symbols and ML slicing."""
    if order == 2:
        symbols = rng.choice([-1.0, 1.0], num_symbols)
        noise = rng.normal(0, math.sqrt(1 / (2 * esn0)), num_symbols)         # real noise, N0/2 per dimension
        return float(np.mean(np.sign(symbols + noise) != symbols))
    side = int(round(math.sqrt(order)))
    levels = np.arange(-(side - 1), side, 2, dtype=float)
    scale = math.sqrt(2 * np.mean(levels ** 2))                              # Es = 1
    i = rng.integers(0, side, num_symbols)
    q = rng.integers(0, side, num_symbols)
    sigma = math.sqrt(1 / (2 * esn0)) * scale                                # per dimension, in level units
    ri = levels[i] + rng.normal(0, sigma, num_symbols)
    rq = levels[q] + rng.normal(0, sigma, num_symbols)

    def slice_(r):
        return np.clip(np.round((r + side - 1) / 2), 0, side - 1).astype(int)

    return float(np.mean((slice_(ri) != i) | (slice_(rq) != q)))


@pytest.mark.parametrize("order", [2, 4, 16, 64])
def test_exact_ser_matches_monte_carlo_at_1e_2(order):
    target = 1e-2
    esn0 = brentq(lambda g: float(ser_exact(torch.tensor(g, dtype=torch.float64), order)) - target, 1e-3, 1e5)
    rng = np.random.default_rng(order)
    simulated = _monte_carlo_ser(order, esn0, 1_000_000, rng)
    assert abs(simulated - target) / target < 0.05


def test_exact_ser_reference_values():
    db = lambda x: torch.tensor(10 ** (x / 10), dtype=torch.float64)  # noqa: E731
    assert float(ser_exact(db(15), 16)) == pytest.approx(1.78e-2, rel=0.01)
    assert float(ser_exact(db(20), 64)) == pytest.approx(5.03e-2, rel=0.01)
    assert float(ser_exact(db(10), 4)) == pytest.approx(1.57e-3, rel=0.01)


def test_printed_eq17_underestimates_by_orders_of_magnitude():
    db = lambda x: torch.tensor(10 ** (x / 10), dtype=torch.float64)  # noqa: E731
    assert float(ser_printed_eq17(db(15), 16)) == pytest.approx(3.7e-7, rel=0.03)
    assert float(ser_printed_eq17(db(20), 64)) == pytest.approx(7.9e-8, rel=0.03)
    assert float(ser_printed_eq17(db(10), 4)) == pytest.approx(3.9e-6, rel=0.03)
    for order, x in ((4, 10), (16, 15), (64, 20)):
        assert float(ser_exact(db(x), order)) > 100 * float(ser_printed_eq17(db(x), order))


def test_per_compounds_ber_over_the_packet_and_coding_gain_helps():
    sinr = torch.tensor([10 ** 0.8], dtype=torch.float64)
    order = torch.tensor([16])
    gains = (6.99, 3.98, 3.01)
    per = [float(packet_error_rate(sinr, order, torch.tensor([c]), 1000, gains)) for c in range(3)]
    assert per[0] < per[1] < per[2]                      # stronger code (rate 1/2) -> fewer packet errors
    g = 10 ** (6.99 / 10)
    ber = float(ser_exact(sinr * g, 16)) / 4
    assert per[0] == pytest.approx(1 - (1 - ber) ** 1000, rel=1e-9)


def test_cqi_mapping_uses_thresholds_inclusively():
    thresholds = torch.tensor(CQI_SINR_THRESHOLD_DB, dtype=torch.float64)
    assert cqi_from_sinr_db(thresholds).tolist() == list(range(1, 16))
    assert cqi_from_sinr_db(thresholds - 1e-6).tolist() == list(range(0, 15))
    assert int(cqi_from_sinr_db(torch.tensor(40.0))) == 15


def _hand_case():
    # Two APs, 4 RRBs owned 0,1,0,1. Device 0: AP0 on RRB0, device 1: AP1 on RRB1,
    # device 2: AP0 on RRB2, device 3 idle (served by AP1).
    gain = torch.tensor([[[1e-9, 2e-11], [3e-11, 4e-9], [5e-10, 6e-12], [7e-10, 8e-10]]], dtype=torch.float64)
    serving = torch.tensor([[0, 1, 0, 1]])
    rrb = torch.tensor([[0, 1, 2, -1]])
    owner = torch.tensor([0, 1, 0, 1])
    power = torch.tensor([[1.0, 0.5, 0.25, 0.8]], dtype=torch.float64)
    params = dict(kappa_t=0.1, kappa_r=0.05, acir1_db=20.0, acir2_db=30.0, noise_w=1e-12, phi_aci=0.2, phi_hwi=0.5)
    return gain, serving, rrb, owner, power, params


def test_sinr_eq14_hand_computed_case():
    gain, serving, rrb, owner, power, p = _hand_case()
    terms = slot_sinr(power, gain, serving, rrb, owner, **p)
    k2 = 0.1 ** 2 + 0.05 ** 2
    pbar_ap0 = (1.0 + 0.25) / 2          # AP0 transmits on two links, owns two RRBs
    pbar_ap1 = 0.5 / 2                   # device 3 is idle: only device 1's power counts
    # Link 0 (RRB0): RRB1 (AP1, 0.5 W) at +1; RRB2 is AP0's own -> orthogonal.
    aci0 = 1.2 * 0.5 * 2e-11 * 0.01
    hwi0 = 1.5 * k2 * pbar_ap0 * 1e-9
    # Link 1 (RRB1): RRB0 (1 W) and RRB2 (0.25 W), both AP0 at distance 1; RRB3 is empty.
    aci1 = 1.2 * (1.0 + 0.25) * 3e-11 * 0.01
    hwi1 = 1.5 * k2 * pbar_ap1 * 4e-9
    # Link 2 (RRB2): RRB1 (AP1, 0.5 W) at -1; RRB3 empty; RRB0 is AP0's own.
    aci2 = 1.2 * 0.5 * 6e-12 * 0.01
    hwi2 = 1.5 * k2 * pbar_ap0 * 5e-10
    expected = [1.0 * 1e-9 / (hwi0 + aci0 + 1e-12), 0.5 * 4e-9 / (hwi1 + aci1 + 1e-12),
                0.25 * 5e-10 / (hwi2 + aci2 + 1e-12), 0.0]
    assert terms.aci_w[0, :3].tolist() == pytest.approx([aci0, aci1, aci2], rel=1e-12)
    assert terms.hwi_w[0, :3].tolist() == pytest.approx([hwi0, hwi1, hwi2], rel=1e-12)
    assert terms.sinr[0].tolist() == pytest.approx(expected, rel=1e-12)


def test_colocated_view_hand_computed_case():
    # One receiver: each link's neighbours leak at their own received level (own serving gain), whichever AP sends
    # them (RRB2 is AP0's like RRB0, and leaks into link 0 at ACIR2); distortion is kappa^2 times the own level.
    gain, serving, rrb, owner, power, p = _hand_case()
    terms = slot_sinr(power, gain, serving, rrb, owner, colocated=True, **p)
    k2 = 0.1 ** 2 + 0.05 ** 2
    level = [1.0 * 1e-9, 0.5 * 4e-9, 0.25 * 5e-10]          # RRB0..2; RRB3 is empty
    aci = [1.2 * (level[1] * 0.01 + level[2] * 0.001), 1.2 * (level[0] + level[2]) * 0.01,
           1.2 * (level[1] * 0.01 + level[0] * 0.001)]
    hwi = [1.5 * k2 * x for x in level]
    assert terms.aci_w[0, :3].tolist() == pytest.approx(aci, rel=1e-12)
    assert terms.hwi_w[0, :3].tolist() == pytest.approx(hwi, rel=1e-12)
    assert terms.sinr[0, :3].tolist() == pytest.approx([s / (h + a + 1e-12) for s, h, a in zip(level, hwi, aci)],
                                                       rel=1e-12)
    assert terms.sinr[0, 3] == 0


def test_max_snr_caps_the_received_level_and_what_it_leaks():
    gain, serving, rrb, owner, power, p = _hand_case()
    cap = 1e-12 * 10 ** (25.0 / 10)                          # 25 dB over the noise: RRB0 and RRB1 exceed it
    terms = slot_sinr(power, gain, serving, rrb, owner, colocated=True, max_snr_db=25.0, **p)
    assert terms.signal_w[0, :3].tolist() == pytest.approx([cap, cap, 0.25 * 5e-10], rel=1e-12)
    assert float(terms.aci_w[0, 1]) == pytest.approx(1.2 * (cap + 0.25 * 5e-10) * 0.01, rel=1e-12)
    uncapped = slot_sinr(power, gain, serving, rrb, owner, **p)
    capped = slot_sinr(power, gain, serving, rrb, owner, max_snr_db=25.0, **p)
    assert torch.all(capped.signal_w <= cap * (1 + 1e-12)) and torch.all(capped.sinr <= uncapped.sinr)


def test_interference_view_is_validated():
    from twin import DTNConfig

    with pytest.raises(ValueError, match="interference='nearby'.*geometric, colocated"):
        DTNConfig(interference="nearby")


def test_second_adjacent_rrb_uses_acir2():
    # Three APs, RRBs owned 0,1,2: the victim on RRB0 hears RRB2 (AP2) through ACIR2 only.
    gain = torch.full((1, 2, 3), 1e-9, dtype=torch.float64)
    terms = slot_sinr(torch.tensor([[1.0, 1.0]], dtype=torch.float64), gain, torch.tensor([[0, 2]]),
                      torch.tensor([[0, 2]]), torch.tensor([0, 1, 2]), kappa_t=0.0, kappa_r=0.0, acir1_db=20.0,
                      acir2_db=40.0, noise_w=1e-12)
    assert terms.aci_w[0].tolist() == pytest.approx([1e-9 * 1e-4, 1e-9 * 1e-4], rel=1e-12)
    assert terms.hwi_w.abs().max() == 0


def test_hwi_ceiling_with_equal_powers():
    # Bjornson: with every RRB at the same power and no ACI, SINR -> 1 / (kappa_t^2 + kappa_r^2).
    gain = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    terms = slot_sinr(torch.tensor([[1e3, 1e3]], dtype=torch.float64), gain, torch.tensor([[0, 1]]),
                      torch.tensor([[0, 1]]), torch.tensor([0, 1]), kappa_t=0.08, kappa_r=0.06, acir1_db=30.0,
                      acir2_db=45.0, noise_w=1e-15)
    assert terms.sinr[0].tolist() == pytest.approx([1 / 0.01, 1 / 0.01], rel=1e-9)


def test_coupling_matrix_reproduces_slot_sinr():
    gain, serving, rrb, owner, power, p = _hand_case()
    terms = slot_sinr(power, gain, serving, rrb, owner, **p)
    noise = p.pop("noise_w")
    direct, coupling = sinr_coupling(gain, serving, rrb, owner, **p)
    active_power = power * (rrb >= 0)
    sinr = direct * active_power / (torch.einsum("bnm,bm->bn", coupling, active_power) + noise)
    assert torch.allclose(sinr, terms.sinr, rtol=1e-12)
