"""Phase noise: the receiver tracks the common phase of every symbol (PTRS/DMRS, refined CFO), so what is left
is the inter-carrier interference of the phase wander inside each symbol, as for a genie receiver that knows the
channel and each symbol's mean phase."""

import math

import numpy as np
import pytest

from _ofdm_testlib import noise_rms_for_snr
from radio.ofdm import Link, SlotPlan, build_slot, geometry, receive_slot
from tests.helpers.channels import awgn


def _wiener_phase(n: int, std_per_symbol: float, samples_per_symbol: float, rng) -> np.ndarray:
    """Brownian phase (rad) with ``std_per_symbol`` rad of standard deviation per OFDM symbol."""
    return np.cumsum(rng.standard_normal(n) * std_per_symbol / math.sqrt(samples_per_symbol))


def _genie_sinr_db(y: np.ndarray, tx, start: int) -> float:
    """Perfect timing and channel, each symbol's own mean phase removed: error power over the data REs."""
    plan, geo = tx.plan, geometry(tx.plan)
    res = geo.links[0]
    n = geo.fft_size
    err = ref = 0.0
    for l in range(14):
        m = res.data_mask[l]
        if not m.any():
            continue
        s0 = start + geo.symbol_start[l] + geo.cp[l]
        y_l = np.fft.fft(y[s0:s0 + n])[res.bins[m]] / math.sqrt(n) / tx.re_scale
        x_l = tx.grid[l, res.bins[m]]
        y_l *= np.exp(-1j * np.angle(np.sum(y_l * np.conj(x_l))))
        err += float(np.sum(np.abs(y_l - x_l) ** 2))
        ref += float(np.sum(np.abs(x_l) ** 2))
    return 10 * math.log10(ref / err)


@pytest.mark.parametrize("std_deg", [1.0, 4.0, 8.0])
def test_common_phase_is_tracked_like_a_genie(std_deg):
    plan = SlotPlan("lte5", (Link("a", tuple(range(25)), "64qam", "3/4"),))
    tx = build_slot(plan)
    rng = np.random.default_rng(int(std_deg))
    x = np.tile(tx.waveform.astype(complex), 2)
    phase = _wiener_phase(x.size, np.deg2rad(std_deg), plan.slot_length / 14, rng)
    y = awgn(x * np.exp(1j * phase), noise_rms_for_snr(tx, 35.0), rng)
    rep = receive_slot(y, plan, reference=tx)
    link = rep.links[0]
    genie = _genie_sinr_db(y, tx, rep.sync.start)
    # The receiver's per-symbol phase comes from the PTRS/DMRS alone (a small share of the REs the genie uses)
    # and is Wiener-shrunk by its estimation noise: at 35 dB SNR that costs at most a few tenths of a dB.
    assert link.sinr_db == pytest.approx(genie, abs=0.4)
    # Untracked, a random walk would wander by std_deg * sqrt(14) over the slot: far worse than this (where that
    # is below the 35 dB noise floor at all).
    untracked_db = -10 * math.log10(np.deg2rad(std_deg) ** 2 * 14 / 3)
    assert link.sinr_db > min(untracked_db + 6.0, 33.0)
    assert link.bler == 0.0 or std_deg >= 8.0
