"""Soft demapping against the definition of the log-APP LLR, from very noisy to noise-free symbols."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from radio.ofdm.modulation import MODULATIONS, constellation, demap_llr


def _brute_force_llr(y: np.ndarray, noise_var: np.ndarray, modulation: str) -> np.ndarray:
    """float64 ``[n * m]``: ``log sum_{x: b=1} exp(-|y-x|^2/N0) - log sum_{x: b=0} ...`` over the 2-D points."""
    m = MODULATIONS[modulation]
    pts = constellation(modulation)
    labels = (np.arange(pts.size)[:, None] >> (m - 1 - np.arange(m))[None, :]) & 1
    if m == 1:
        # BPSK's imaginary part is noise alone: the real part sees half the complex variance.
        metric = -(y.real[:, None] - pts.real[None, :]) ** 2 / noise_var[:, None]
    else:
        metric = -np.abs(y[:, None] - pts[None, :]) ** 2 / noise_var[:, None]
    out = np.empty((y.size, m))
    for j in range(m):
        ones = labels[:, j] == 1
        out[:, j] = logsumexp(metric[:, ones], axis=1) - logsumexp(metric[:, ~ones], axis=1)
    return out.reshape(-1)


@pytest.mark.parametrize("modulation", list(MODULATIONS))
@pytest.mark.parametrize("snr_db", [-10.0, 5.0, 20.0, 60.0, 95.0])
def test_llrs_are_the_exact_log_app(modulation: str, snr_db: float) -> None:
    rng = np.random.default_rng(int(snr_db) + 100 * MODULATIONS[modulation])
    n = 3000
    sent = constellation(modulation)[rng.integers(0, 2 ** MODULATIONS[modulation], n)]
    # Per-symbol noise variances around the nominal one (as equalised REs of a frequency-selective channel have).
    noise_var = 10 ** (-snr_db / 10) * rng.uniform(0.3, 3.0, n)
    y = sent + np.sqrt(noise_var / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    got = demap_llr(y, noise_var, modulation)
    want = _brute_force_llr(y, noise_var, modulation)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-5)
