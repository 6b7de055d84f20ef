"""Spectrum measurements of waveforms: power spectral density and ACLR (square measurement filters).

ACLR as in TS 36.104 / 38.104: the filtered mean power in the assigned channel (a square filter of BW_Config =
12 N_RB SCS) over the same filter centred on the adjacent channel at +-BW (first) and +-2 BW (second).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal


def psd(samples: np.ndarray, fs: float, resolution_hz: float = 15e3) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (Hann, 50 % overlap) of complex ``samples`` ``[n]`` at ``fs`` S/s.

    Returns ``(freq_hz [m] float64 ascending, psd [m] float64 in power/Hz)``.
    """
    x = np.asarray(samples)
    nper = 2 ** int(math.ceil(math.log2(max(fs / resolution_hz, 16))))
    nper = min(nper, 2 ** int(math.log2(max(x.size // 4, 16))))
    f, p = scipy.signal.welch(x, fs=fs, nperseg=nper, return_onesided=False, detrend=False, window="hann")
    order = np.argsort(f)
    return f[order], p[order]


def band_power(freq: np.ndarray, density: np.ndarray, center_hz: float, bw_hz: float) -> float:
    """Power of ``density`` integrated over ``[center - bw/2, center + bw/2]`` (rectangle rule)."""
    df = float(freq[1] - freq[0])
    m = (freq >= center_hz - bw_hz / 2) & (freq < center_hz + bw_hz / 2)
    return float(np.sum(density[m]) * df)


def aclr_db(samples: np.ndarray, fs: float, bw_config_hz: float, channel_spacing_hz: float,
            center_hz: float = 0.0, resolution_hz: float = 15e3) -> dict[str, float]:
    """ACLR of a carrier centred at ``center_hz``: ``{"lower1", "upper1", "lower2", "upper2", "worst1",
    "worst2"}`` in dB (assigned over adjacent power), adjacent channels at +-1 and +-2 ``channel_spacing_hz``.

    The sample rate must cover the second adjacent channel (``fs > 2 (2 spacing + bw/2)``) or a ValueError names
    the rate needed.
    """
    need = 2 * (center_hz + 2 * channel_spacing_hz + bw_config_hz / 2)
    if fs < need - 1e-6:
        raise ValueError(f"fs = {fs:g} S/s cannot see the second adjacent channel; allowed: fs >= {need:g} S/s")
    f, p = psd(samples, fs, resolution_hz)
    main = band_power(f, p, center_hz, bw_config_hz)
    out = {}
    for name, k in (("lower1", -1), ("upper1", 1), ("lower2", -2), ("upper2", 2)):
        adj = band_power(f, p, center_hz + k * channel_spacing_hz, bw_config_hz)
        out[name] = 10 * math.log10(main / max(adj, 1e-300))
    out["worst1"] = min(out["lower1"], out["upper1"])
    out["worst2"] = min(out["lower2"], out["upper2"])
    return out
