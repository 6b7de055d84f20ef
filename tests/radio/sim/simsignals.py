"""Test signals and measurements for the simulated-radio tests, written independently of radio.sim."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from radio.guard import TxGuard

RATE = 7.68e6
LO = 2.45e9


def ideal_table(**overrides: Any) -> dict[str, Any]:
    """A [sim] table with every impairment switched off (ideal converters, linear PA and LNA, no phase noise,
    no distortion, no ppm error, no IQ imbalance, no LO leakage); thermal noise stays (it is physics)."""
    table: dict[str, Any] = {
        "tx_evm": 0.0, "rx_evm": 0.0, "pa_sat_dbfs": math.inf, "am_pm_deg": 0.0,
        "phase_noise_dbc_hz": -math.inf, "ppm": 0.0, "iq_gain_db": 0.0, "iq_phase_deg": 0.0,
        "lo_leakage_dbc": -math.inf, "lna_iip3_dbm": math.inf, "dac_bits": 24, "adc_bits": 24,
    }
    table.update(overrides)
    return table


def open_guard(max_gain_db: float = 0.0) -> TxGuard:
    """A guard allowing 2.3-2.6 GHz at TX gain <= max_gain_db."""
    return TxGuard.from_config({"allowed_bands": [[2.3e9, 2.6e9]], "max_tx_gain_db": max_gain_db})


def qam_symbols(rng: np.random.Generator, shape: tuple[int, ...], order: int = 64) -> np.ndarray:
    """Unit-power square QAM symbols, complex128 of ``shape``."""
    side = int(round(math.sqrt(order)))
    levels = np.arange(side) * 2.0 - (side - 1)
    sym = rng.choice(levels, shape) + 1j * rng.choice(levels, shape)
    return sym / math.sqrt(2.0 * (side * side - 1) / 3.0)


def cp_ofdm(rng: np.random.Generator, n_symbols: int, nfft: int = 512, n_used: int = 300,
            cp: int = 36) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LTE-5-like CP-OFDM at 7.68 MS/s: random 64QAM on ``n_used`` subcarriers around DC (DC unused).

    Returns (time signal complex128 [n_symbols * (nfft + cp)] at unit mean power, symbols complex128
    [n_symbols, n_used], used bin indices int [n_used])."""
    half = n_used // 2
    bins = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)]) % nfft
    sym = qam_symbols(rng, (n_symbols, n_used))
    grid = np.zeros((n_symbols, nfft), np.complex128)
    grid[:, bins] = sym
    body = np.fft.ifft(grid, axis=1) * math.sqrt(nfft * nfft / n_used)
    x = np.concatenate([body[:, -cp:], body], axis=1).reshape(-1)
    return x, sym, bins


def periodic_ofdm(rng: np.random.Generator, n: int, rate: float = RATE, bandwidth: float = 4.5e6) -> np.ndarray:
    """A periodic OFDM-like signal (one long symbol, no CP, so no symbol-edge sidelobes): random 64QAM on every
    FFT bin within +-bandwidth/2, complex128 [n] at unit mean power."""
    f = np.fft.fftfreq(n, 1.0 / rate)
    used = (np.abs(f) <= bandwidth / 2.0) & (f != 0)
    spec = np.zeros(n, np.complex128)
    spec[used] = qam_symbols(rng, (int(used.sum()),))
    x = np.fft.ifft(spec)
    return x / np.sqrt(np.mean(np.abs(x) ** 2))


def scaled(x: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """``x`` scaled to a mean power of ``rms_dbfs`` (0 dBFS = mean |x|^2 = 1), complex64."""
    return (x * 10.0 ** (rms_dbfs / 20.0) / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def tone(n: int, freq: float, amplitude: float, rate: float = RATE) -> np.ndarray:
    """complex64 [n] tone."""
    return (amplitude * np.exp(2j * np.pi * freq * np.arange(n) / rate)).astype(np.complex64)


def band_power(x: np.ndarray, rate: float, f_lo: float, f_hi: float) -> float:
    """Power of ``x`` in [f_lo, f_hi) from its periodogram (x should hold whole periods of a periodic signal):
    the mean-power share, same units as mean |x|^2."""
    spec = np.abs(np.fft.fft(x)) ** 2 / x.size ** 2
    f = np.fft.fftfreq(x.size, 1.0 / rate)
    return float(spec[(f >= f_lo) & (f < f_hi)].sum())


def tone_power(x: np.ndarray, rate: float, freq: float) -> float:
    """Power of the periodogram bin nearest ``freq`` (x should hold whole periods of the tone)."""
    spec = np.abs(np.fft.fft(x)) ** 2 / x.size ** 2
    k = int(round(freq * x.size / rate)) % x.size
    return float(spec[k])


def db(x: float) -> float:
    return 10.0 * math.log10(x)


def aclr_db(x: np.ndarray, rate: float, bw_meas: float = 4.5e6, offset: float = 5e6) -> tuple[float, float]:
    """(ACLR lower, ACLR upper) in dB of ``x`` with square measurement filters of ``bw_meas`` at 0 and +-offset."""
    main = band_power(x, rate, -bw_meas / 2, bw_meas / 2)
    lower = band_power(x, rate, -offset - bw_meas / 2, -offset + bw_meas / 2)
    upper = band_power(x, rate, offset - bw_meas / 2, offset + bw_meas / 2)
    return db(main / lower), db(main / upper)
