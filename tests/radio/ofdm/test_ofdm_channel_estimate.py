"""The batched channel estimator against the per-link reference implementation it replaced.

``_reference_link`` below is the receiver's former per-link estimator (per reference symbol, per drift pair,
per window candidate: Cholesky solves and FFTs), kept here verbatim in its arithmetic as the definition of what the
batched one must compute. Both run on the same DFT output of received slots (several numerologies, RB counts per
link, contiguous and scattered RBs, with and without CFO, SCO and multipath; narrow plans, whose fit uses dense
matrices, and wide ones, whose fit uses DFTs) and must agree to rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.linalg

from radio.ofdm import Link, SlotPlan, build_slot
from tests.helpers.channels import frequency_offset, multipath, sample_clock_offset
from radio.ofdm.receiver import (
    MAX_SCO_PPM, RIDGE, _dft_symbols, _estimate_link_channels, _plan_fit, _window_candidates, synchronise,
)
from radio.ofdm.slot import REFERENCE_SYMBOLS, SYMBOLS_PER_SLOT, SlotGeometry, geometry
from _ofdm_testlib import cyclic_rx

RTOL = 1e-9


def _reference_operator(n_fft: int, w: int, wts: np.ndarray, bins: np.ndarray) -> tuple[Any, float]:
    d = np.arange(-w, w + 1)
    acc = np.bincount(bins % n_fft, weights=wts, minlength=n_fft).astype(np.complex128)
    r = np.fft.ifft(acc) * n_fft
    gram = r[(d[:, None] - d[None, :]) % n_fft]
    a = gram + RIDGE * float(np.sum(wts)) * np.eye(d.size)
    chol = scipy.linalg.cho_factor(a, lower=True)
    return chol, float(np.real(np.trace(scipy.linalg.cho_solve(chol, gram))))


def _reference_peak(j: np.ndarray, grid: np.ndarray) -> float:
    i = int(np.argmax(j))
    if 0 < i < grid.size - 1:
        denom = j[i - 1] - 2 * j[i] + j[i + 1]
        shift = 0.5 * (j[i - 1] - j[i + 1]) / denom if denom < 0 else 0.0
        return float(grid[i] + shift * (grid[1] - grid[0]))
    return float(grid[i])


def _reference_link(y: np.ndarray, geo: SlotGeometry, res: Any) -> tuple[np.ndarray, float, int, np.ndarray, float]:
    """One link's estimate as the former receiver computed it: (h [14, nsc], sigma2, taps, tau [14], slope)."""
    n_fft = geo.fft_size
    max_w = max(1, int(geo.cp.min()))
    max_drift = MAX_SCO_PPM * 1e-6 * geo.slot_length / SYMBOLS_PER_SLOT
    xp = np.where(res.pilot_mask, geo.pilots[:, res.bins], 0)
    signed = res.signed_bins
    refs = []
    for l in REFERENCE_SYMBOLS:
        m = res.pilot_mask[l]
        refs.append((l, m, signed[m], xp[l, m], np.abs(xp[l, m]) ** 2))
    grid = np.linspace(-max_drift, max_drift, 81)
    order = sorted(range(len(refs)), key=lambda i: refs[i][0])
    pairs = []
    for i, ia_ref in enumerate(order):
        for ib_ref in order[i + 1:]:
            a, b = refs[ia_ref][0], refs[ib_ref][0]
            common, ia, ib = np.intersect1d(refs[ia_ref][2], refs[ib_ref][2], assume_unique=True,
                                            return_indices=True)
            if common.size >= 4:
                mat = np.exp(2j * np.pi * np.outer(grid, common.astype(np.float64) * (b - a)) / n_fft)
                pairs.append((ia_ref, ib_ref, ia, ib, mat))
    k_all = np.concatenate([r[2] for r in refs]).astype(np.int64)
    w_all = np.concatenate([r[4] for r in refs]).astype(np.float64)
    n_p = k_all.size
    operators = []
    for w in _window_candidates(max_w):
        if 2 * w + 1 > n_p // 2 and w > 0:
            break
        operators.append((w, *_reference_operator(n_fft, w, w_all, k_all)))

    refs_mean = float(np.mean(REFERENCE_SYMBOLS))
    sym = np.arange(SYMBOLS_PER_SLOT, dtype=np.float64)
    lr = np.array(REFERENCE_SYMBOLS, dtype=np.float64)
    ls = [(k, y[l, m] / x) for l, m, k, x, _ in refs]
    if pairs:
        total = np.zeros(grid.size)
        for a, b, ia, ib, mat in pairs:
            total += np.abs(mat @ (ls[b][1][ib] * np.conj(ls[a][1][ia])))
        drift = _reference_peak(total, grid)
    else:
        drift = 0.0
    tau = drift * (sym - refs_mean)
    phis = [float(np.angle(np.sum(h * np.exp(2j * np.pi * k * tau[l] / n_fft))))
            for (l, *_), (k, h) in zip(refs, ls)]
    unwrapped = np.unwrap(np.array(phis))
    slope = float(np.linalg.lstsq(np.vstack([np.ones_like(lr), lr]).T, unwrapped, rcond=None)[0][1])
    phi = np.interp(sym, lr, unwrapped)
    tail = sym > lr[-1]
    phi[tail] = unwrapped[-1] + (sym[tail] - lr[-1]) * (unwrapped[-1] - unwrapped[-2]) / (lr[-1] - lr[-2])
    v_all = np.concatenate([h * np.exp(-1j * (phi[l] - 2.0 * np.pi * k * tau[l] / n_fft))
                            for (l, *_), (k, h) in zip(refs, ls)])
    wv = w_all * v_all
    acc = np.bincount(k_all % n_fft, weights=wv.real, minlength=n_fft) \
        + 1j * np.bincount(k_all % n_fft, weights=wv.imag, minlength=n_fft)
    rhs = np.fft.ifft(acc) * n_fft
    best = None
    for w, chol, trace in operators:
        d = np.arange(-w, w + 1)
        taps = np.zeros(n_fft, dtype=np.complex128)
        taps[d % n_fft] = scipy.linalg.cho_solve(chol, rhs[d % n_fft])
        spectrum = np.fft.fft(taps)
        rss = float(np.sum(w_all * np.abs(v_all - spectrum[k_all % n_fft]) ** 2))
        dof = max(n_p - trace, 1.0)
        gcv = rss / n_p / (dof / n_p) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, w, spectrum, rss, trace)
    _, w, spectrum, rss, trace = best
    rot = np.exp(1j * (phi[:, None] - 2.0 * np.pi * signed[None, :] * tau[:, None] / n_fft))
    h = spectrum[signed % n_fft][None, :] * rot
    return h, rss / max(n_p - trace - 4.0, 1.0), 2 * w + 1, tau, slope


def _received(plan: SlotPlan, *, snr_db: float, cfo_hz: float = 0.0, sco_ppm: float = 0.0,
              paths: tuple[tuple[float, complex], ...] = (), seed: int = 0) -> np.ndarray:
    """complex128 ``[14, N]``: the receiver's DFT of slot 3 of ``plan`` through the given impairments."""
    rng = np.random.default_rng(seed)
    tx = build_slot(plan, 3)
    x = cyclic_rx(tx, rng, offset=417)
    if paths:
        x = multipath(x, [d for d, _ in paths], [g for _, g in paths])
    if sco_ppm:
        x = sample_clock_offset(x, sco_ppm)
    if cfo_hz:
        x = frequency_offset(x, cfo_hz, plan.rate_hz, phase=0.7)
    x = x + tx.re_scale * 10 ** (-snr_db / 20) / math.sqrt(2) * (rng.standard_normal(x.size)
                                                                  + 1j * rng.standard_normal(x.size))
    sync = synchronise(x, plan)
    return _dft_symbols(x, plan, sync.start, sync.cfo_hz)


def _links(spec: list[tuple[int, ...]]) -> tuple[Link, ...]:
    mods = ("qpsk", "16qam", "64qam")
    return tuple(Link(str(i), rbs, mods[i % 3], "1/2", -float(i % 4)) for i, rbs in enumerate(spec))


CASES = {
    "lte5_8x3rb_awgn": (SlotPlan("lte5", _links([tuple(range(3 * i, 3 * i + 3)) for i in range(8)])),
                        dict(snr_db=28.0)),
    "lte5_8x3rb_cfo_sco": (SlotPlan("lte5", _links([tuple(range(3 * i, 3 * i + 3)) for i in range(8)]), tx_id=1),
                           dict(snr_db=22.0, cfo_hz=2100.0, sco_ppm=35.0, seed=1)),
    "lte5_full_band_flat": (SlotPlan("lte5", _links([tuple(range(25))])), dict(snr_db=40.0, seed=2)),
    "lte10_mixed_multipath": (
        SlotPlan("lte10", _links([(0,), (1, 2), tuple(range(3, 8)), tuple(range(19, 31)), (34, 36, 38, 40),
                                  tuple(range(44, 50))])),
        dict(snr_db=18.0, cfo_hz=-800.0, sco_ppm=-20.0,
             paths=((0.0, 1.0), (3.3, 0.5j), (11.7, -0.25 + 0.1j)), seed=3)),
    "nr30k_mixed_wola": (
        SlotPlan("nr20-30k", _links([tuple(range(0, 4)), tuple(range(4, 24)), (30,), tuple(range(40, 51))]),
                 wola_ramp=8, tx_id=2),
        dict(snr_db=15.0, cfo_hz=9000.0, sco_ppm=50.0, paths=((0.0, 1.0), (6.0, 0.6)), seed=4)),
    "nr15k_low_snr": (SlotPlan("nr10-15k", _links([(0, 1), tuple(range(10, 30)), (51,)])),
                      dict(snr_db=2.0, cfo_hz=300.0, seed=5)),
    "lte20_full_band_sco": (SlotPlan("lte20", _links([tuple(range(100))])),
                            dict(snr_db=30.0, sco_ppm=-45.0, paths=((0.0, 1.0), (9.0, 0.3)), seed=6)),
}


def test_cases_cover_the_dense_and_the_dft_fit() -> None:
    dense = {name: _plan_fit(geometry(plan)).delays is not None for name, (plan, _) in CASES.items()}
    assert set(dense.values()) == {True, False}, dense


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_estimate_matches_the_per_link_reference(name: str) -> None:
    plan, impairments = CASES[name]
    geo = geometry(plan)
    y_full = _received(plan, **impairments)
    got = _estimate_link_channels(y_full, geo)
    assert got.h.shape[0] == len(geo.links)
    for j, res in enumerate(geo.links):
        h, sigma2, taps, tau, slope = _reference_link(y_full[:, res.bins] / geo.re_scale, geo, res)
        assert got.taps[j] == taps
        np.testing.assert_allclose(got.h[j, :, :res.bins.size], h, rtol=RTOL, atol=RTOL * float(np.max(np.abs(h))))
        assert got.sigma2[j] == pytest.approx(sigma2, rel=RTOL)
        np.testing.assert_allclose(got.tau[j], tau, rtol=RTOL, atol=RTOL * MAX_SCO_PPM * 1e-6 * geo.slot_length)
        assert got.phase_slope[j] == pytest.approx(slope, rel=RTOL, abs=1e-12)
        assert got.n_pilots[j] == sum(np.count_nonzero(res.pilot_mask[l]) for l in REFERENCE_SYMBOLS)
