"""Numpy channel and front-end models for testing the PHY without a radio backend (test helpers, moved out of
``radio.ofdm``: no package code uses them).

Every function takes complex baseband samples (shape ``[n]``) at ``fs`` samples/s and returns a new complex128
array; random ones take a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math

import numpy as np


def awgn(x: np.ndarray, noise_rms: float, rng: np.random.Generator) -> np.ndarray:
    """Add complex white Gaussian noise of RMS ``noise_rms`` per sample (variance ``noise_rms^2``)."""
    x = np.asarray(x, dtype=np.complex128)
    return x + noise_rms / math.sqrt(2.0) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))


def frequency_offset(x: np.ndarray, cfo_hz: float, fs: float, phase: float = 0.0) -> np.ndarray:
    """Multiply by ``exp(j (2 pi cfo n / fs + phase))``."""
    n = np.arange(np.asarray(x).size)
    return np.asarray(x, dtype=np.complex128) * np.exp(1j * (2.0 * np.pi * cfo_hz * n / fs + phase))


def _sinc_interpolate(x: np.ndarray, positions: np.ndarray, half_taps: int = 24) -> np.ndarray:
    """Band-limited (Kaiser-windowed sinc) interpolation of ``x`` at fractional sample ``positions``."""
    base = np.floor(positions).astype(np.int64)
    frac = positions - base
    offs = np.arange(-half_taps + 1, half_taps + 1)
    idx = base[:, None] + offs[None, :]
    t = offs[None, :] - frac[:, None]
    win = np.kaiser(2 * half_taps + 1, 8.0)
    wpos = np.clip(t + half_taps, 0, 2 * half_taps)
    wv = np.interp(wpos, np.arange(2 * half_taps + 1), win)
    kernel = np.sinc(t) * wv
    valid = (idx >= 0) & (idx < x.size)
    vals = np.where(valid, x[np.clip(idx, 0, x.size - 1)], 0)
    return np.sum(vals * kernel, axis=1)


def fractional_delay(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """Delay by a (fractional) number of samples, cyclically (FFT phase ramp): suits cyclic buffers."""
    x = np.asarray(x, dtype=np.complex128)
    f = np.fft.fftfreq(x.size)
    return np.fft.ifft(np.fft.fft(x) * np.exp(-2j * np.pi * f * delay_samples))


def multipath(x: np.ndarray, delays_samples: list[float], gains: list[complex]) -> np.ndarray:
    """Tapped delay line with fractional delays, applied cyclically: ``sum_i g_i x(n - d_i)``."""
    x = np.asarray(x, dtype=np.complex128)
    f = np.fft.fftfreq(x.size)
    h = sum(g * np.exp(-2j * np.pi * f * d) for d, g in zip(delays_samples, gains))
    return np.fft.ifft(np.fft.fft(x) * h)


def sample_clock_offset(x: np.ndarray, ppm: float) -> np.ndarray:
    """Resample as a receiver whose clock runs ``ppm`` fast would: output sample ``m`` is the input at time
    ``m (1 - ppm 1e-6)`` (input samples). Output length: as many samples as the input covers."""
    x = np.asarray(x, dtype=np.complex128)
    step = 1.0 - ppm * 1e-6
    count = int(math.floor((x.size - 1) / step)) + 1
    return _sinc_interpolate(x, np.arange(count) * step)


def rapp_pa(x: np.ndarray, saturation: float, smoothness: float = 2.0, gain: float = 1.0) -> np.ndarray:
    """Rapp solid-state PA (AM/AM only): ``|y| = G|x| / (1 + (G|x|/A_sat)^(2p))^(1/(2p))``, phase unchanged."""
    x = np.asarray(x, dtype=np.complex128)
    a = gain * np.abs(x)
    p = smoothness
    out_mag = a / (1.0 + (a / saturation) ** (2 * p)) ** (1.0 / (2 * p))
    return np.where(np.abs(x) > 0, x / np.maximum(np.abs(x), 1e-300) * out_mag, 0)
