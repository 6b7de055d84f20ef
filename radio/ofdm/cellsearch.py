"""Cell search on recordings: LTE (PSS/SSS -> physical cell id, frame timing, CFO, CRS channel estimate and
reference-signal EVM) and NR (SSB PSS/SSS -> cell id), plus generators of synthetic LTE and NR test signals.

LTE search works at 1.92 MS/s (FFT 128) on the central 6 RBs, which every LTE bandwidth carries with the same
PSS/SSS and the same CRS values (the CRS sequence is centred on the carrier), so recordings at other rates are
resampled (polyphase) first. Steps: PSS time correlation for the 3 roots and a set of frequency hypotheses
(0.5 SCS steps up to ``max_cfo_hz``) -> PSS position and N_ID^(2); fractional CFO from the CP correlation of
every symbol (range +-SCS/2) combined with the hypothesis for the integer part; SSS (one symbol before the PSS,
FDD) equalised by the PSS channel and correlated with the 168 x 2 (subframe 0/5) sequences, summed over every
PSS in the recording -> N_ID^(1) and the frame start; CRS of port 0 in every whole slot -> least-squares channel,
averaged over time per subcarrier (per-symbol common phase removed), interpolated in frequency; RS EVM with
leave-one-out averaging so a CRS RE is not equalised by its own estimate.

NR search: for SCS 15 and 30 kHz the recording is resampled to 256 x SCS; PSS (3 m-sequences, 127 subcarriers)
correlation with frequency hypotheses -> N_ID^(2); SSS two symbols later, equalised by the PSS -> N_ID^(1) among
336; cell id ``3 N_ID^(1) + N_ID^(2)``. The SSB is assumed centred in the recording.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.signal

from radio.errors import RecordingError
from radio.ofdm.sequences import (
    lte_crs, lte_crs_subcarriers, lte_pss, lte_sss, nr_pss, nr_sss,
)

LTE_RATE = 1.92e6
"""Sample rate of the LTE search (S/s)."""
LTE_FFT = 128
LTE_CP = (10, 9)
LTE_SCS = 15e3
LTE_SLOT = 960
"""Samples per 0.5 ms slot at 1.92 MS/s."""
LTE_FRAME = 19200
"""Samples per 10 ms frame at 1.92 MS/s."""
NR_FFT = 256
NR_CP = 18


@dataclass
class Recording:
    """Samples and metadata read from a SigMF file."""

    samples: np.ndarray
    """complex64 ``[n]``."""
    sample_rate_hz: float
    """Sample rate (S/s)."""
    center_freq_hz: float | None
    """Centre frequency of the first capture, if recorded."""
    path: str
    """The metadata file."""
    description: str = ""
    """``core:description``."""


def read_sigmf(path: str) -> Recording:
    """Read a SigMF recording (``.sigmf-meta``, ``.sigmf-data`` or the base name).

    Raises :class:`~radio.errors.RecordingError` when a file is missing, the metadata is malformed, the data does
    not match it (size, checksum), or the recording has no samples.
    """
    from sigmf import sigmffile
    from sigmf.error import SigMFError

    base = str(path)
    for ext in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    meta, data = base + ".sigmf-meta", base + ".sigmf-data"
    for f in (meta, data):
        if not os.path.isfile(f):
            raise RecordingError(f"recording file {f} is missing; a SigMF recording needs both {meta} and {data}")
    try:
        handle = sigmffile.fromfile(meta)
        samples = np.asarray(handle.read_samples()).astype(np.complex64).reshape(-1)
        rate = handle.get_global_field("core:sample_rate")
        captures = handle.get_captures()
        desc = handle.get_global_field("core:description") or ""
    except SigMFError as e:
        raise RecordingError(f"{meta}: not a valid SigMF recording ({type(e).__name__}: {e})") from e
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{meta}: cannot read the recording ({type(e).__name__}: {e})") from e
    if rate is None or not float(rate) > 0:
        raise RecordingError(f"{meta}: core:sample_rate is {rate!r}; allowed: a positive number")
    if samples.size == 0:
        raise RecordingError(f"{meta}: the recording holds no samples")
    if not np.all(np.isfinite(samples.view(np.float32))):
        raise RecordingError(f"{meta}: the recording holds NaN or infinite samples")
    fc = captures[0].get("core:frequency") if captures else None
    return Recording(samples, float(rate), None if fc is None else float(fc), meta, str(desc))


def resample(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Polyphase resampling from ``rate_in`` to ``rate_out`` (ratio approximated within 1e-6). complex128."""
    x = np.asarray(x, dtype=np.complex128)
    if abs(rate_in - rate_out) < 1e-6 * rate_out:
        return x
    frac = Fraction(rate_out / rate_in).limit_denominator(1000)
    if abs(float(frac) - rate_out / rate_in) > 1e-6 * rate_out / rate_in:
        frac = Fraction(rate_out / rate_in).limit_denominator(100000)
    return scipy.signal.resample_poly(x, frac.numerator, frac.denominator)


# ---------------------------------------------------------------------------------------------------------------
# LTE


@dataclass
class LteCell:
    """What the LTE search found."""

    cell_id: int
    """Physical cell id, ``3 N_ID^(1) + N_ID^(2)``."""
    n_id1: int
    """Cell-identity group (0..167), from the SSS."""
    n_id2: int
    """Identity within the group (0..2), from the PSS."""
    frame_start: int
    """Sample index (at the recording's rate) where a radio frame (subframe 0) starts, modulo the frame length."""
    cfo_hz: float
    """Carrier frequency offset (Hz)."""
    pss_metric: float
    """Normalised PSS correlation, 0..1."""
    sss_margin_db: float
    """SSS metric of the winner over the runner-up (dB)."""
    rs_evm: float
    """RMS EVM of the port-0 CRS REs of the central 6 RBs after equalisation (ratio)."""
    rs_snr_db: float
    """``-20 log10(rs_evm)``."""
    channel: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, complex))
    """complex128 ``[72]``: channel estimate on the central 72 subcarriers, lowest first."""
    crs_symbols: int = 0
    """CRS OFDM symbols used."""
    occupied_bw_hz: float | None = None
    """Bandwidth above -20 dB of the spectrum peak in the original recording (Hz)."""

    def as_dict(self) -> dict[str, Any]:
        mag = 20 * np.log10(np.maximum(np.abs(self.channel), 1e-12))
        return {"rat": "lte", "cell_id": self.cell_id, "n_id1": self.n_id1, "n_id2": self.n_id2,
                "frame_start": self.frame_start, "cfo_hz": self.cfo_hz, "pss_metric": self.pss_metric,
                "sss_margin_db": self.sss_margin_db, "rs_evm": self.rs_evm, "rs_evm_percent": 100 * self.rs_evm,
                "rs_snr_db": self.rs_snr_db, "crs_symbols": self.crs_symbols,
                "occupied_bw_hz": self.occupied_bw_hz,
                "channel_db": [round(float(v), 2) for v in mag],
                "channel_phase_rad": [round(float(v), 3) for v in np.angle(self.channel)]}


def _ofdm_body(values: np.ndarray, bins: np.ndarray, n_fft: int) -> np.ndarray:
    grid = np.zeros(n_fft, dtype=np.complex128)
    grid[bins % n_fft] = values
    return np.fft.ifft(grid) * math.sqrt(n_fft)


def _lte_bins_62() -> np.ndarray:
    n = np.arange(62)
    return n - 31 + (n >= 31)  # -31..-1, 1..31


def _freq_hypotheses(max_cfo_hz: float, scs: float) -> np.ndarray:
    steps = int(math.floor(max_cfo_hz / (scs / 2)))
    return np.arange(-steps, steps + 1) * (scs / 2)


def _best_sync(x: np.ndarray, templates: list[np.ndarray], fs: float, hyps: np.ndarray):
    """Max over templates and frequency hypotheses of the normalised correlation. Returns
    (metric, template index, hypothesis Hz, position of the template start, correlation array)."""
    n = templates[0].size
    energy = np.concatenate([[0.0], np.cumsum(np.abs(x) ** 2)])
    win = energy[n:] - energy[:-n]
    best = (-1.0, 0, 0.0, 0, None)
    t = np.arange(n)
    for f in hyps:
        for i, tpl in enumerate(templates):
            shifted = tpl * np.exp(2j * np.pi * f * t / fs)
            c = np.abs(scipy.signal.fftconvolve(x, np.conj(shifted[::-1]), mode="valid"))
            norm = c / np.sqrt(np.maximum(win[: c.size], 1e-30) * np.sum(np.abs(tpl) ** 2))
            k = int(np.argmax(norm))
            if norm[k] > best[0]:
                best = (float(norm[k]), i, float(f), k, norm)
    return best


def _cp_cfo(x: np.ndarray, starts: np.ndarray, cps: np.ndarray, n_fft: int, fs: float) -> float:
    """Fractional CFO from the CP of symbols whose CP starts at ``starts`` (range +-fs/(2 n_fft))."""
    acc = 0j
    for s, cp in zip(starts, cps):
        if s < 0 or s + cp + n_fft > x.size:
            continue
        a = x[s:s + cp]
        b = x[s + n_fft:s + n_fft + cp]
        acc += np.sum(b * np.conj(a))
    return float(np.angle(acc)) * fs / (2 * np.pi * n_fft)


def _lte_symbol_starts(frame_start: int, total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CP start, CP length and (slot, symbol) of every LTE symbol from frame_start - 1 frame on, at 1.92 MS/s."""
    starts, cps, ids = [], [], []
    for slot in range(-20, 40):
        base = frame_start + slot * LTE_SLOT
        pos = base
        for l in range(7):
            cp = LTE_CP[0] if l == 0 else LTE_CP[1]
            if 0 <= pos and pos + cp + LTE_FFT <= total:
                starts.append(pos)
                cps.append(cp)
                ids.append((slot % 20, l))
            pos += cp + LTE_FFT
    return np.array(starts, dtype=np.int64), np.array(cps, dtype=np.int64), np.array(ids, dtype=np.int64).reshape(-1, 2)


def _lte_pss_to_frame_offset() -> int:
    # PSS = symbol 6 of slot 0: its body starts after 6 whole symbols and its own CP.
    return LTE_CP[0] + LTE_FFT + 5 * (LTE_CP[1] + LTE_FFT) + LTE_CP[1]


def lte_cell_search(samples: np.ndarray, sample_rate_hz: float, *, max_cfo_hz: float = 22.5e3) -> LteCell:
    """Find an LTE cell in ``samples`` (complex, ``[n]``, at least one frame plus a symbol is best; 5 ms + 1
    symbol is the minimum). ``max_cfo_hz``: largest |CFO| searched. Raises ValueError when the recording is too
    short or no PSS stands out of the noise."""
    x = resample(samples, sample_rate_hz, LTE_RATE)
    if x.size < LTE_FRAME // 2 + 2 * (LTE_FFT + 10):
        raise ValueError(f"recording too short for LTE cell search: {x.size} samples at 1.92 MS/s; "
                         f"allowed at least {LTE_FRAME // 2 + 2 * (LTE_FFT + 10)} (5 ms + 2 symbols)")
    bins = _lte_bins_62()
    templates = [_ofdm_body(lte_pss(i), bins, LTE_FFT) for i in range(3)]
    metric, n_id2, f_hyp, t_pss, _ = _best_sync(x, templates, LTE_RATE, _freq_hypotheses(max_cfo_hz, LTE_SCS))
    if metric < 0.2:
        raise ValueError(f"no LTE PSS found (best normalised correlation {metric:.2f}, needs >= 0.2)")

    # Fractional CFO from the CP of every symbol, the integer part from the PSS hypothesis.
    offset = _lte_pss_to_frame_offset()
    starts, cps, _ = _lte_symbol_starts((t_pss - offset) % LTE_SLOT, x.size)
    frac = _cp_cfo(x, starts, cps, LTE_FFT, LTE_RATE)
    cfo = frac + round((f_hyp - frac) / LTE_SCS) * LTE_SCS
    x = x * np.exp(-2j * np.pi * cfo * np.arange(x.size) / LTE_RATE)
    metric, n_id2, _, t_pss, corr = _best_sync(x, templates, LTE_RATE, np.array([0.0]))

    # Every PSS in the recording (every 5 ms), then SSS hypotheses summed over them.
    pss_positions = [t for t in range(t_pss % (LTE_FRAME // 2), x.size - LTE_FFT + 1, LTE_FRAME // 2)]
    sss_offset = LTE_FFT + LTE_CP[1]
    scores = np.zeros((168, 2))
    used = 0
    for j, t in enumerate(pss_positions):
        if t - sss_offset < 0:
            continue
        y_pss = np.fft.fft(x[t:t + LTE_FFT])[bins % LTE_FFT] / math.sqrt(LTE_FFT)
        y_sss = np.fft.fft(x[t - sss_offset:t - sss_offset + LTE_FFT])[bins % LTE_FFT] / math.sqrt(LTE_FFT)
        h = y_pss / lte_pss(n_id2)
        z = y_sss * np.conj(h)
        parity = (j - pss_positions.index(t_pss)) % 2 if t_pss in pss_positions else j % 2
        for n1 in range(168):
            for sf in (0, 1):
                seq = lte_sss(n1, n_id2, bool((sf + parity) % 2))
                scores[n1, sf] += float(np.real(np.sum(z * seq)))
        used += 1
    if used == 0:
        raise ValueError("recording too short: no SSS before any PSS")
    flat = scores.reshape(-1)
    order = np.argsort(flat)[::-1]
    best, second = flat[order[0]], flat[order[1]]
    n_id1, sf = divmod(int(order[0]), 2)
    margin = 20 * math.log10(max(best, 1e-30) / max(second, 1e-30)) if second > 0 else float("inf")
    # sf == 0: the strongest PSS is in subframe 0.
    frame_start = (t_pss - offset - (0 if sf == 0 else LTE_FRAME // 2)) % LTE_FRAME
    cell_id = 3 * n_id1 + n_id2

    channel, evm, n_crs = _lte_crs_analysis(x, frame_start, cell_id)
    ratio = sample_rate_hz / LTE_RATE
    return LteCell(cell_id=cell_id, n_id1=n_id1, n_id2=n_id2, frame_start=int(round(frame_start * ratio)),
                   cfo_hz=float(cfo), pss_metric=float(metric), sss_margin_db=float(margin), rs_evm=evm,
                   rs_snr_db=-20 * math.log10(max(evm, 1e-15)), channel=channel, crs_symbols=n_crs,
                   occupied_bw_hz=occupied_bandwidth(samples, sample_rate_hz))


def _lte_crs_analysis(x: np.ndarray, frame_start: int, cell_id: int) -> tuple[np.ndarray, float, int]:
    n_rb = 6
    grid_bins = np.concatenate([np.arange(-36, 0), np.arange(1, 37)])
    starts, cps, ids = _lte_symbol_starts(frame_start, x.size)
    obs = []  # (k indices [12], LS values [12], received [12], reference [12])
    for s, cp, (slot, l) in zip(starts, cps, ids):
        if l not in (0, 4):
            continue
        y = np.fft.fft(x[s + cp:s + cp + LTE_FFT]) / math.sqrt(LTE_FFT)
        k = lte_crs_subcarriers(cell_id, int(l), n_rb)
        r = lte_crs(cell_id, int(slot), int(l), n_rb)
        yk = y[grid_bins[k] % LTE_FFT]
        obs.append((k, yk / r, yk, r))
    if len(obs) < 2:
        return np.zeros(72, complex), float("nan"), len(obs)
    # Common phase of each symbol against the mean (residual CFO, phase noise), then time averages per subcarrier.
    sums = np.zeros(72, complex)
    counts = np.zeros(72)
    for k, h, _, _ in obs:
        sums[k] += h
        counts[k] += 1
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0)
    phases = [float(np.angle(np.sum(h * np.conj(mean[k])))) for k, h, _, _ in obs]
    sums[:] = 0
    for (k, h, _, _), ph in zip(obs, phases):
        sums[k] += h * np.exp(-1j * ph)
    err, ref = 0.0, 0.0
    for (k, h, yk, r), ph in zip(obs, phases):
        # Leave this symbol out of its own equaliser.
        loo = (sums[k] - h * np.exp(-1j * ph)) / np.maximum(counts[k] - 1, 1)
        hk = _interp_complex(k, loo, k)
        z = yk / (hk * np.exp(1j * ph))
        err += float(np.sum(np.abs(z - r) ** 2))
        ref += float(np.sum(np.abs(r) ** 2))
    have = counts > 0
    kk = np.nonzero(have)[0]
    channel = _interp_complex(kk, sums[kk] / counts[kk], np.arange(72))
    return channel, math.sqrt(err / ref), len(obs)


def _interp_complex(k: np.ndarray, v: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.interp(at, k, v.real) + 1j * np.interp(at, k, v.imag)


def occupied_bandwidth(samples: np.ndarray, sample_rate_hz: float, floor_db: float = 20.0) -> float:
    """Span of the (median-smoothed) spectrum within ``floor_db`` of its peak, or within half the peak-to-noise
    distance when the noise floor is closer (Hz)."""
    x = np.asarray(samples)
    nper = int(min(1024, 2 ** int(math.log2(max(x.size // 8, 64)))))
    f, p = scipy.signal.welch(x, fs=sample_rate_hz, nperseg=nper, return_onesided=False, detrend=False)
    order = np.argsort(f)
    f, p = f[order], scipy.signal.medfilt(p[order], 5)
    peak_db = 10 * np.log10(p.max())
    noise_db = 10 * np.log10(max(np.percentile(p, 5), 1e-300))
    # Within floor_db of the peak, but never below halfway (in dB) to the noise floor of a noisy recording.
    threshold_db = peak_db - min(floor_db, (peak_db - noise_db) / 2)
    above = np.nonzero(10 * np.log10(np.maximum(p, 1e-300)) >= threshold_db)[0]
    return float(f[above[-1]] - f[above[0]] + (f[1] - f[0]))


# ---------------------------------------------------------------------------------------------------------------
# NR


@dataclass
class NrCell:
    """What the NR SSB search found."""

    cell_id: int
    """NR physical cell id ``3 N_ID^(1) + N_ID^(2)`` (0..1007)."""
    n_id1: int
    """0..335, from the SSS."""
    n_id2: int
    """0..2, from the PSS."""
    scs_hz: float
    """SSB subcarrier spacing found (15 or 30 kHz)."""
    pss_start: int
    """Sample index (recording rate) where the first detected PSS symbol's body starts."""
    cfo_hz: float
    """Carrier frequency offset (Hz)."""
    pss_metric: float
    """Normalised PSS correlation, 0..1."""
    sss_margin_db: float
    """SSS metric of the winner over the runner-up (dB)."""

    def as_dict(self) -> dict[str, Any]:
        return {"rat": "nr", "cell_id": self.cell_id, "n_id1": self.n_id1, "n_id2": self.n_id2,
                "scs_hz": self.scs_hz, "pss_start": self.pss_start, "cfo_hz": self.cfo_hz,
                "pss_metric": self.pss_metric, "sss_margin_db": self.sss_margin_db}


def _nr_bins() -> np.ndarray:
    return np.arange(127) - 64


@lru_cache(maxsize=None)
def _nr_sss_matrix(n_id2: int) -> np.ndarray:
    return np.stack([nr_sss(n1, n_id2) for n1 in range(336)])


def nr_cell_search(samples: np.ndarray, sample_rate_hz: float, *, scs_hz: tuple[float, ...] = (15e3, 30e3),
                   max_cfo_hz: float | None = None) -> NrCell:
    """Find an NR SSB (centred in the recording) and its cell id. ``max_cfo_hz`` defaults to 1.5 SCS.
    Raises ValueError when no PSS stands out."""
    best: tuple | None = None
    bins = _nr_bins()
    templates = [_ofdm_body(nr_pss(i), bins, NR_FFT) for i in range(3)]
    for scs in scs_hz:
        fs = scs * NR_FFT
        x = resample(samples, sample_rate_hz, fs)
        if x.size < 4 * (NR_FFT + NR_CP):
            continue
        hyps = _freq_hypotheses(1.5 * scs if max_cfo_hz is None else max_cfo_hz, scs)
        metric, n_id2, f_hyp, t_pss, _ = _best_sync(x[: x.size - 2 * (NR_FFT + NR_CP)], templates, fs, hyps)
        if best is None or metric > best[0]:
            best = (metric, scs, x, n_id2, f_hyp, t_pss)
    if best is None:
        raise ValueError("recording too short for an NR SSB search")
    metric, scs, x, n_id2, f_hyp, t_pss = best
    fs = scs * NR_FFT
    if metric < 0.2:
        raise ValueError(f"no NR PSS found (best normalised correlation {metric:.2f}, needs >= 0.2)")
    starts = t_pss - NR_CP + np.arange(4) * (NR_FFT + NR_CP)
    frac = _cp_cfo(x, starts, np.full(4, NR_CP), NR_FFT, fs)
    cfo = frac + round((f_hyp - frac) / scs) * scs
    x = x * np.exp(-2j * np.pi * cfo * np.arange(x.size) / fs)
    t_sss = t_pss + 2 * (NR_FFT + NR_CP)
    y_pss = np.fft.fft(x[t_pss:t_pss + NR_FFT])[bins % NR_FFT]
    y_sss = np.fft.fft(x[t_sss:t_sss + NR_FFT])[bins % NR_FFT]
    h = y_pss / nr_pss(n_id2)
    scores = np.real(_nr_sss_matrix(n_id2) @ (y_sss * np.conj(h)))
    order = np.argsort(scores)[::-1]
    n_id1 = int(order[0])
    margin = 20 * math.log10(max(scores[order[0]], 1e-30) / max(scores[order[1]], 1e-30)) if scores[order[1]] > 0 \
        else float("inf")
    return NrCell(cell_id=3 * n_id1 + n_id2, n_id1=n_id1, n_id2=n_id2, scs_hz=float(scs),
                  pss_start=int(round(t_pss * sample_rate_hz / fs)), cfo_hz=float(cfo), pss_metric=float(metric),
                  sss_margin_db=float(margin))


# ---------------------------------------------------------------------------------------------------------------
# Recording analysis and synthetic test signals


def analyze_recording(path: str, *, rat: str = "auto", max_cfo_hz: float = 22.5e3) -> dict[str, Any]:
    """Read a SigMF recording and run the cell search. ``rat``: ``lte``, ``nr`` or ``auto`` (LTE first, NR when
    no LTE cell is found or the NR PSS correlates better). Returns a JSON-ready dict. Raises RecordingError for a
    bad file and ValueError when no cell is found."""
    if rat not in ("auto", "lte", "nr"):
        raise ValueError(f"rat = {rat!r}; allowed: auto, lte, nr")
    rec = read_sigmf(path)
    head = {"file": rec.path, "sample_rate_hz": rec.sample_rate_hz, "samples": int(rec.samples.size),
            "duration_s": rec.samples.size / rec.sample_rate_hz, "center_freq_hz": rec.center_freq_hz}
    errors = []
    lte = nr = None
    if rat in ("auto", "lte"):
        try:
            lte = lte_cell_search(rec.samples, rec.sample_rate_hz, max_cfo_hz=max_cfo_hz)
        except ValueError as e:
            errors.append(f"LTE: {e}")
    if rat == "nr" or (rat == "auto" and (lte is None or lte.pss_metric < 0.5)):
        try:
            nr = nr_cell_search(rec.samples, rec.sample_rate_hz)
        except ValueError as e:
            errors.append(f"NR: {e}")
    cell = lte
    if nr is not None and (lte is None or nr.pss_metric > lte.pss_metric):
        cell = nr
    if cell is None:
        raise ValueError("no cell found: " + "; ".join(errors))
    return {**head, **cell.as_dict()}


def synth_lte_downlink(cell_id: int, n_rb: int = 6, *, sample_rate_hz: float | None = None, n_frames: float = 1.0,
                       rng: np.random.Generator | None = None, frame_offset: int = 0) -> tuple[np.ndarray, float]:
    """Synthetic LTE FDD downlink: PSS/SSS, port-0 CRS and random QPSK on every other RE, normal CP.

    Returns ``(samples complex128 [n], sample_rate_hz)``; the rate defaults to 15 kHz x the standard FFT. The
    first sample is ``frame_offset`` samples into a frame (subframe 0 starts at ``-frame_offset``).
    """
    from radio.ofdm.numerology import LTE_TABLE

    rng = rng or np.random.default_rng(0)
    fft = next(f for (_, nr, f) in LTE_TABLE.values() if nr == n_rb)
    fs = sample_rate_hz or 15e3 * fft
    nfft = int(round(fs / 15e3))
    if abs(fs / 15e3 - nfft) > 1e-9 or nfft < 12 * n_rb + 2 or (144 * nfft) % 2048:
        raise ValueError(f"sample_rate_hz = {fs:g}; allowed: 15 kHz x an FFT size that covers {n_rb} RBs and gives "
                         f"integer CP lengths (e.g. {15e3 * fft:g}); resample for other rates")
    cp0, cp1 = 160 * nfft // 2048, 144 * nfft // 2048
    half = 6 * n_rb
    grid_bins = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])
    n_id1, n_id2 = divmod(cell_id, 3)
    n_slots = int(math.ceil(n_frames * 20)) + 20
    out = []
    for ns in range(n_slots):
        slot = ns % 20
        for l in range(7):
            re = (rng.choice([-1, 1], 12 * n_rb) + 1j * rng.choice([-1, 1], 12 * n_rb)) / math.sqrt(2)
            if l in (0, 4):
                k = lte_crs_subcarriers(cell_id, l, n_rb)
                re[k] = lte_crs(cell_id, slot, l, n_rb)
            if slot in (0, 10) and l in (5, 6):
                centre = half - 31 + np.arange(62)
                re[half - 36:half + 36] = 0
                re[centre] = lte_pss(n_id2) if l == 6 else lte_sss(n_id1, n_id2, slot == 10)
            body = _ofdm_body(re, grid_bins, nfft)
            cp = cp0 if l == 0 else cp1
            out.append(np.concatenate([body[-cp:], body]))
    x = np.concatenate(out)
    total = int(round(n_frames * 0.01 * fs))
    return x[frame_offset:frame_offset + total], fs


def synth_nr_ssb(cell_id: int, scs_hz: float = 30e3, *, sample_rate_hz: float | None = None, n_bursts: int = 2,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """Synthetic NR signal with SS/PBCH blocks centred at DC: PSS (symbol 0), SSS (symbol 2), random QPSK in the
    PBCH REs, a few random-QPSK symbols around, normal CP. Returns ``(samples complex128 [n], sample_rate_hz)``;
    the rate defaults to 512 x SCS."""
    rng = rng or np.random.default_rng(0)
    fs = sample_rate_hz or 512 * scs_hz
    nfft = int(round(fs / scs_hz))
    if abs(fs / scs_hz - nfft) > 1e-9 or nfft < 256 or (144 * nfft) % 2048:
        raise ValueError(f"sample_rate_hz = {fs:g}; allowed: SCS x an FFT size >= 256 with an integer CP")
    cp = 144 * nfft // 2048
    n_id1, n_id2 = divmod(cell_id, 3)
    ssb_bins = np.arange(240) - 120
    out = []
    for _ in range(n_bursts):
        for l in range(14):
            re = np.zeros(240, dtype=np.complex128)
            if 2 <= l <= 5:
                s = l - 2
                re[:] = (rng.choice([-1, 1], 240) + 1j * rng.choice([-1, 1], 240)) / math.sqrt(2)
                if s in (0, 2):
                    re[:] = 0
                    re[56:183] = nr_pss(n_id2) if s == 0 else nr_sss(n_id1, n_id2)
                    if s == 2:
                        re[:48] = (rng.choice([-1, 1], 48) + 1j * rng.choice([-1, 1], 48)) / math.sqrt(2)
                        re[192:] = (rng.choice([-1, 1], 48) + 1j * rng.choice([-1, 1], 48)) / math.sqrt(2)
            body = _ofdm_body(re, ssb_bins, nfft)
            out.append(np.concatenate([body[-cp:], body]))
    return np.concatenate(out), fs
