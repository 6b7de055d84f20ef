"""Measurement primitives against physics: AWGN EVM, the 3GPP EVM window, ACLR of known spectra, ACIR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.measurements import aclr, acir_db, acs_db, evm_3gpp, evm_window_offsets, rms_evm


def qam16(rng, n):
    levels = np.array([-3, -1, 1, 3]) / math.sqrt(10)
    return rng.choice(levels, n) + 1j * rng.choice(levels, n)


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0])
def test_evm_of_awgn_at_snr_x_is_10_to_minus_x_over_20(snr_db):
    rng = np.random.default_rng(int(snr_db))
    s = qam16(rng, 200_000)
    noise = (rng.standard_normal(s.size) + 1j * rng.standard_normal(s.size)) / math.sqrt(2)
    r = (0.3 - 0.7j) * (s + 10 ** (-snr_db / 20) * noise)
    assert rms_evm(r, s) == pytest.approx(10 ** (-snr_db / 20), rel=0.01)


def test_evm_window_offsets_match_the_3gpp_table_positions():
    assert evm_window_offsets(36, 32) == (2, 34)   # LTE 5 MHz, normal CP, W = 32
    assert evm_window_offsets(9, 5) == (3, 6)      # LTE 1.4 MHz, W = 5 (odd: alpha = 1)
    with pytest.raises(ValueError, match="allowed 1 to the CP length 36"):
        evm_window_offsets(36, 40)


def _ofdm_frame(rng, n_fft=512, n_sc=300, n_sym=14, cp=36, pilot_every=6):
    bins = np.r_[np.arange(n_fft - n_sc // 2, n_fft), np.arange(1, n_sc // 2 + 1)]
    ideal = qam16(rng, n_sym * n_sc).reshape(n_sym, n_sc)
    pilot = np.zeros_like(ideal, bool)
    pilot[::4, ::pilot_every] = True
    ideal[pilot] = (1 + 1j) / math.sqrt(2)
    starts, out = [], []
    pos = 0
    for l in range(n_sym):
        spec = np.zeros(n_fft, complex)
        spec[bins] = ideal[l]
        t = np.fft.ifft(spec) * math.sqrt(n_fft)
        out.append(np.r_[t[-cp:], t])
        starts.append(pos)
        pos += cp + n_fft
    return np.concatenate(out), starts, [cp] * n_sym, n_fft, bins, ideal, ~pilot, pilot


def test_3gpp_evm_is_zero_for_a_clean_frame_and_tracks_awgn():
    rng = np.random.default_rng(3)
    x, starts, cps, n, bins, ideal, data, pilot = _ofdm_frame(rng)
    assert evm_3gpp(x, starts, cps, n, bins, ideal, data, pilot, 32).evm < 1e-9
    snr = 25.0  # per resource element: unit-power REs, and the unitary FFT keeps the noise variance per bin
    noisy = x + math.sqrt(10 ** (-snr / 10) / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
    assert evm_3gpp(noisy, starts, cps, n, bins, ideal, data, pilot, 32).evm == pytest.approx(10 ** (-snr / 20),
                                                                                             rel=0.08)


def test_3gpp_evm_window_extremities_see_a_timing_error_differently():
    rng = np.random.default_rng(4)
    x, starts, cps, n, bins, ideal, data, pilot = _ofdm_frame(rng)
    late = np.r_[np.zeros(20), x[:-20]]  # the frame arrives 20 samples after the assumed timing
    r = evm_3gpp(late, starts, cps, n, bins, ideal, data, pilot, 32)
    # Early window: starts 2 samples into the assumed CP = 18 samples into the previous symbol (ISI).
    # Late window: starts 34 - 20 = 14 samples into the real CP: ISI-free, the equaliser absorbs the delay.
    assert r.evm_high < 1e-6 and r.evm_low > 0.1 and r.evm == r.evm_low
    early = evm_3gpp(x, starts, cps, n, bins, ideal, data, pilot, 32)
    assert early.evm < 1e-6


def test_aclr_of_a_known_spectrum():
    rng = np.random.default_rng(5)
    rate, n = 30.72e6, 2 ** 18
    f = np.fft.fftfreq(n, 1 / rate)
    spec = np.zeros(n, complex)
    wanted = np.abs(f) <= 2.25e6
    adj1 = (f > 2.75e6) & (f < 7.25e6)
    adj2 = (f < -7.75e6) & (f > -12.25e6)
    spec[wanted] = rng.standard_normal(wanted.sum()) + 1j * rng.standard_normal(wanted.sum())
    spec[adj1] = 10 ** (-30 / 20) * (rng.standard_normal(adj1.sum()) + 1j * rng.standard_normal(adj1.sum()))
    spec[adj2] = 10 ** (-45 / 20) * (rng.standard_normal(adj2.sum()) + 1j * rng.standard_normal(adj2.sum()))
    x = np.fft.ifft(spec)
    r = aclr(x, rate, 5e6, 4.5e6, nfft=8192)
    assert r.aclr1_high == pytest.approx(30, abs=0.3)
    assert r.aclr2_low == pytest.approx(45, abs=0.3)
    assert r.aclr1 == r.aclr1_high and r.aclr2 == r.aclr2_low
    with pytest.raises(ValueError, match="allowed: rate >= 14.5 MS/s"):
        aclr(x[:1000], 7.68e6, 5e6, 4.5e6)


def test_acir_is_the_harmonic_combination():
    assert acir_db(45, 33) == pytest.approx(32.73, abs=0.01)  # the reference's DL example
    assert acir_db(30, 30) == pytest.approx(30 - 10 * math.log10(2))
    assert acs_db(1.0, 1e-3) == pytest.approx(30)
