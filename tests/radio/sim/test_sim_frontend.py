"""Front-end stages checked against their physics, one stage at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from radio.sim import RadioParams
from radio.sim import frontend as fe
from simsignals import RATE, db, periodic_ofdm, scaled, tone, tone_power


def test_rapp_pa_follows_the_formula_and_saturates() -> None:
    a = np.logspace(-3, 1, 200)
    y = fe.rapp_pa(a.astype(np.complex128), smoothness=2.0, sat_dbfs=-6.0)
    a_sat = 10 ** (-6 / 20)
    expected = a / (1 + (a / a_sat) ** 4) ** 0.25
    np.testing.assert_allclose(np.abs(y), expected, rtol=1e-12)
    assert np.abs(y).max() < a_sat
    # 1 dB compression of a Rapp PA with p = 2 sits where (a/A)^4 = 10^(2/10) - 1
    a1 = a_sat * (10 ** 0.2 - 1) ** 0.25
    assert db(abs(fe.rapp_pa(np.array([a1 + 0j]), 2.0, -6.0)[0]) ** 2 / a1 ** 2) == pytest.approx(-1.0, abs=1e-9)


def test_am_pm_reaches_its_value_at_saturation() -> None:
    a_sat = 10 ** (-3 / 20)
    y = fe.rapp_pa(np.array([a_sat + 0j, 1e-4 + 0j]), 3.0, -3.0, am_pm_deg=10.0)
    assert math.degrees(np.angle(y[0])) == pytest.approx(10.0)
    assert abs(math.degrees(np.angle(y[1]))) < 1e-5


def test_iq_imbalance_image_matches_the_closed_form() -> None:
    n = 4096
    x = tone(n, 300e3, 0.5).astype(np.complex128)
    y = fe.iq_imbalance(x, gain_db=0.5, phase_deg=3.0)
    image = tone_power(y, RATE, -300e3) / tone_power(y, RATE, 300e3)
    g, phi = 10 ** (0.5 / 20), math.radians(3.0)
    expected = (1 + g * g - 2 * g * math.cos(phi)) / (1 + g * g + 2 * g * math.cos(phi))
    assert image == pytest.approx(expected, rel=1e-9)


def test_quantizer_snr_is_6_db_per_bit_and_clipping_is_counted() -> None:
    n = 1 << 15
    x = tone(n, 123.4567e3, 0.99)  # complex tone just below full scale
    for bits in (8, 12):
        q, clipped = fe.quantize(x, bits)
        assert clipped == 0
        snr = db(np.mean(np.abs(x) ** 2) / np.mean(np.abs(q - x) ** 2))
        # Complex tone of amplitude ~1 over uniform noise of 2 * step^2 / 12: 6.02 b + 1.76 dB
        assert snr == pytest.approx(6.02 * bits + 1.76, abs=0.3)
    big = np.array([1.5 + 0j, 0.2 - 1.2j, 0.5 + 0.5j], np.complex64)
    q, clipped = fe.quantize(big, 12)
    assert clipped == 2
    assert q.real.max() <= 1.0 and q.imag.min() >= -1.0


def test_phase_noise_psd_matches_the_spec_at_the_offset() -> None:
    rng = np.random.default_rng(1)
    n, dbc, offset, corner = 1 << 18, -90.0, 100e3, 50e3
    theta = fe.phase_noise_stream(n, RATE, dbc, offset, corner, rng)
    f, psd = scipy.signal.welch(np.exp(1j * theta), fs=RATE, nperseg=4096, return_onesided=False)
    near = (np.abs(f - offset) < 15e3)
    assert db(float(np.mean(psd[near]))) == pytest.approx(dbc, abs=1.0)
    assert float(np.std(theta)) == pytest.approx(fe.phase_noise_rms_rad(dbc, offset, corner), rel=0.1)


def test_distortion_stream_has_the_exact_rms_and_stays_in_band() -> None:
    rng = np.random.default_rng(2)
    m = fe.distortion_stream(1 << 16, RATE, 0.05, rng)
    assert math.sqrt(float(np.mean(np.abs(m) ** 2))) == pytest.approx(0.05, rel=1e-9)
    x = periodic_ofdm(rng, 1 << 16)
    eta = x * m
    # The distortion follows the signal's spectrum: almost none of it lands beyond a 4.5 MHz channel.
    spec = np.abs(np.fft.fft(eta)) ** 2
    f = np.fft.fftfreq(eta.size, 1 / RATE)
    assert spec[np.abs(f) > 2.6e6].sum() / spec.sum() < 0.02
    assert abs(np.vdot(x, eta)) / np.vdot(x, x).real < 0.01  # uncorrelated with the signal


def test_lna_two_tone_products_have_3_to_1_slope_and_meet_at_iip3() -> None:
    n, f1, f2, iip3 = 7680, 1.0e6, 1.3e6, -10.0
    fund, im3 = [], []
    levels = np.arange(-40.0, -19.0, 4.0)
    for p_dbm in levels:
        amp = math.sqrt(fe.dbm_to_mw(p_dbm))
        x = tone(n, f1, amp) + tone(n, f2, amp)
        y = fe.lna_cubic(x.copy(), iip3)
        fund.append(db(tone_power(y, RATE, f1)))
        im3.append(db(tone_power(y, RATE, 2 * f1 - f2)))
        assert db(tone_power(y, RATE, 2 * f2 - f1)) == pytest.approx(im3[-1], abs=0.01)
    assert np.polyfit(levels, im3, 1)[0] == pytest.approx(3.0, abs=0.02)
    iip3_est = levels[0] + (fund[0] - im3[0]) / 2
    assert iip3_est == pytest.approx(iip3, abs=0.1)


def test_thermal_noise_is_kTB_plus_noise_figure() -> None:
    # kT at 290 K is -173.98 dBm/Hz
    assert fe.mw_to_dbm(fe.thermal_noise_mw(1.0, 0.0, 16.85)) == pytest.approx(-173.98, abs=0.01)
    assert fe.mw_to_dbm(fe.thermal_noise_mw(7.68e6, 6.0, 16.85)) == pytest.approx(-173.98 + 68.85 + 6, abs=0.01)


def test_tx_chain_oversampling_keeps_the_band_and_the_pa_adds_regrowth() -> None:
    rng = np.random.default_rng(3)
    x = scaled(periodic_ofdm(rng, 7680), -12.0)
    linear = RadioParams(tx_evm=0, pa_sat_dbfs=math.inf, iq_gain_db=0, iq_phase_deg=0, lo_leakage_dbc=-math.inf,
                         dac_bits=24)
    z = fe.tx_chain(x, linear, 0.0, 4)
    np.testing.assert_allclose(z[::4], x, atol=1e-6)  # exact band-limited interpolation
    compressed = fe.tx_chain(x, RadioParams(pa_sat_dbfs=-8.0, dac_bits=24), 0.0, 4)
    spec = np.abs(np.fft.fft(compressed)) ** 2
    f = np.fft.fftfreq(spec.size, 1 / (4 * RATE))
    regrowth_db = db(spec[np.abs(f) > 4e6].sum() / spec.sum())
    # Reference: the Rapp law applied by hand to the linear chain's output; the default TX EVM, IQ image and LO
    # leakage add under 0.3 dB beyond 4 MHz, and a chain without the PA leaks nothing there (-300 dB).
    a_sat, p = 10 ** (-8.0 / 20), RadioParams().pa_smoothness
    rapp = z / (1 + (np.abs(z) / a_sat) ** (2 * p)) ** (1 / (2 * p))
    rapp_spec = np.abs(np.fft.fft(rapp)) ** 2
    assert regrowth_db == pytest.approx(db(rapp_spec[np.abs(f) > 4e6].sum() / rapp_spec.sum()), abs=0.5)
    linear_spec = np.abs(np.fft.fft(z)) ** 2
    assert db(linear_spec[np.abs(f) > 4e6].sum() / linear_spec.sum()) < regrowth_db - 100
