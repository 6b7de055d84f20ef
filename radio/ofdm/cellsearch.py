"""Cell search on recordings: LTE (PSS/SSS -> physical cell id, frame timing, CFO, CRS channel estimate and
reference-signal EVM) and NR (SSB PSS/SSS anywhere in the recorded band -> cell id, SSB frequency), plus
generators of synthetic LTE and NR test signals.

Detection statistic. Both searches test, for every hypothesis (timing, frequency, PSS root), the normalised PSS
correlation on the L PSS subcarriers of one FFT window (L = 62 LTE, 127 NR)::

    rho = |sum_k Y[k] conj(d[k])|^2 / (L sum_k |Y[k]|^2)

after the recording has been whitened (divided, bin by bin, by the square root of its averaged power spectrum),
so that noise of any stationary spectrum, and the other RAT's OFDM signal, gives nearly i.i.d. circular Gaussian
bins Y. For i.i.d. circular Gaussian bins rho ~ Beta(1, L - 1) whatever the noise power, i.e.
``P(rho > g) = (1 - g)^(L-1)``; summing numerator and denominator over K windows (LTE: the same timing every
5 ms) gives Beta(K, K (L - 1)). A search over M hypotheses reports a PSS only when its peak clears the threshold
g with ``M P(rho > g) = alpha`` (union bound: adjacent hypotheses are correlated, so the real false-alarm rate is
lower). alpha = 0.5 % for each RAT's search, so noise searched for both LTE and NR yields a cell in at most 1 % of
recordings (:data:`FALSE_ALARM_PER_RECORDING`).

The SSS, equalised by the PSS channel estimate (z_k = Y_sss[k] conj(H_k)), is scored for each hypothesis s. LTE
(continuous carrier phase, TS 36.211 6.13): ``u = Re(sum z_k s_k) / sqrt(sum |z_k|^2 / 2)``; with circular
Gaussian z (no SSS), u^2 / (2 L) ~ Beta(1/2, L - 1/2). NR resets the carrier phase at every symbol (TS 38.211
5.4), so the PSS-to-SSS phase is unknown to a receiver that does not know the carrier's centre: the score is
``|sum z_k s_k|^2 / (L sum |z_k|^2)``, Beta(1, L - 1) like the PSS. The SSS threshold makes the tail, times the
number of SSS hypotheses (LTE 168 x 2 subframes, NR 336), equal to :data:`SSS_FALSE_ALARM`. A cell is reported
only when both the PSS and the SSS clear their thresholds; otherwise :class:`NoCellFound` carries the best
candidate's numbers.

LTE search (FDD, normal CP) works at 1.92 MS/s (FFT 128) on the central 6 RBs, which every LTE bandwidth carries
with the same PSS/SSS and the same CRS values, so recordings at other rates are resampled (polyphase) first. Any
recording holding one SSS and the PSS after it (265 samples at 1.92 MS/s; a 5 ms half-frame plus two symbols
always does) is enough. Frequency hypotheses are half-subcarrier steps (7.5 kHz) up to ``max_cfo_hz``; the
fractional CFO then comes from the CP correlation of every symbol. The SSS hypotheses cover N_ID^(1) and whether
the PSS is in subframe 0 or 5, summed over every PSS in the recording (at most the first 40 ms are searched).
CRS of port 0 in every whole slot -> least-squares channel, averaged over time per subcarrier (per-symbol common
phase removed), interpolated in frequency; RS EVM with leave-one-out averaging so a CRS RE is not equalised by
its own estimate.

NR search, for SCS 15 and 30 kHz: the whitened recording is cut (in the FFT domain) into overlapping channels of
256 x SCS; in each, every window position is transformed once per half-subcarrier hypothesis, and the PSS
correlation for every subcarrier offset of the SSB comes from one FFT of the window times the PSS template.
Every SSB position whose 127 PSS subcarriers lie inside the recorded band is searched, so the SSB may sit
anywhere on the synchronisation raster. The fractional frequency is refined by the CP correlation of the 4 SSB
symbols; the SSS two symbols after the PSS gives N_ID^(1) among 336; cell id ``3 N_ID^(1) + N_ID^(2)``. A
frequency offset of the whole recording and the SSB's place in the carrier are the same shift: the search
reports their sum, the SSB centre (subcarrier 120, the SS_REF of the GSCN raster) relative to the recording
centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.fft
import scipy.signal
import scipy.special

from radio.ofdm.sequences import (
    lte_crs, lte_crs_subcarriers, lte_pss, lte_sss, nr_pss, nr_sss,
)
from radio.recording import read_sigmf

LTE_RATE = 1.92e6
"""Sample rate of the LTE search (S/s)."""
LTE_FFT = 128
LTE_CP = (10, 9)
LTE_SCS = 15e3
LTE_SLOT = 960
"""Samples per 0.5 ms slot at 1.92 MS/s."""
LTE_FRAME = 19200
"""Samples per 10 ms frame at 1.92 MS/s."""
LTE_HALF_FRAME = LTE_FRAME // 2
"""PSS period (5 ms) in samples at 1.92 MS/s."""
LTE_SSS_TO_PSS = LTE_FFT + LTE_CP[1]
"""FDD: the SSS body starts this many samples (1.92 MS/s) before the PSS body."""
LTE_MIN_SAMPLES = LTE_SSS_TO_PSS + LTE_FFT
"""Fewest samples at 1.92 MS/s that can hold an SSS and the PSS after it."""
LTE_MAX_SEARCH_S = 0.04
"""The LTE search uses at most this much of a recording (s)."""
LTE_MAX_CFO_HZ = 200e3
"""Largest ``max_cfo_hz`` the LTE search accepts: the PSS must stay inside the 1.92 MS/s band."""
NR_FFT = 256
NR_CP = 18
NR_PSS_BINS = np.arange(127) - 64
"""PSS subcarriers relative to the SSB centre (SSB subcarrier 120 = SS_REF): SSB subcarriers 56..182."""
NR_TIMING_HOP = 1
"""Timing step of the NR PSS search at 256 x SCS. A step of 2 would halve the work but lose up to 3.9 dB (a
one-sample error turns the PSS's 127 subcarriers through a whole phase turn), enough for the 43-subcarrier
alias of another root to win at low SNR."""
NR_MAX_SUBCARRIER_SHIFT = 60.5
"""Largest SSB offset (subcarriers) from one search channel's centre; channels overlap to cover the band."""

FALSE_ALARM_PER_RECORDING = 0.01
"""Target probability that a recording without a cell of the searched RAT yields one."""
PSS_FALSE_ALARM_PER_RAT = FALSE_ALARM_PER_RECORDING / 2
"""PSS false-alarm probability of one RAT's whole search (LTE and NR both run on a recording without LTE)."""
SSS_FALSE_ALARM = 0.01
"""Probability that an SSS clears its threshold when the window holds no SSS, all SSS hypotheses together."""

_CHUNK = 2048


class NoCellFound(ValueError):
    """The search found no PSS/SSS clearing its false-alarm threshold. ``candidate``: the best candidate's numbers
    (JSON-ready); ``result``: for :func:`analyze_recording`, the whole JSON-ready "no cell" report."""

    def __init__(self, message: str, candidate: dict[str, Any] | None = None,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.candidate = candidate or {}
        self.result = result or {}


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
# Detection statistics


def whitened_spectrum(x: np.ndarray, segment: int) -> np.ndarray:
    """FFT of ``x`` (complex ``[n]``) divided bin by bin by the square root of its power spectral density, estimated
    by averaging ``|FFT_segment|^2`` over consecutive non-overlapping segments (the whole recording when shorter)
    and smoothing over 5 neighbouring bins. complex128 ``[n]``, numpy FFT order. Bins with no power stay zero."""
    x = np.asarray(x, dtype=np.complex128)
    n = x.size
    seg = min(segment, n)
    count = n // seg
    psd = np.mean(np.abs(scipy.fft.fft(x[: count * seg].reshape(count, seg), axis=1)) ** 2, axis=0)
    psd = _circular_mean(psd, 5)
    coarse = np.round(np.fft.fftfreq(n) * seg).astype(np.int64) % seg
    level = psd[coarse]
    floor = 1e-12 * max(float(psd.max()), 1e-300)
    spectrum = scipy.fft.fft(x)
    return np.where(level > floor, spectrum / np.sqrt(np.maximum(level, floor)), 0)


def _circular_mean(v: np.ndarray, width: int) -> np.ndarray:
    if v.size < width:
        return np.full_like(v, v.mean())
    kernel = np.ones(width) / width
    half = width // 2
    return np.convolve(np.concatenate([v[-half:], v, v[:half]]), kernel, mode="valid")


def pss_threshold(hypotheses: int, length: int, windows: int = 1, false_alarm: float = PSS_FALSE_ALARM_PER_RAT
                  ) -> float:
    """Threshold on ``rho`` (see the module docstring) for ``windows`` summed windows of ``length`` PSS
    subcarriers, so that the largest of ``hypotheses`` noise-only values exceeds it with probability at most
    ``false_alarm`` (union bound on Beta(K, K (L - 1)))."""
    q = false_alarm / max(hypotheses, 1)
    a, b = windows, windows * (length - 1)
    return float(1.0 - scipy.special.betaincinv(b, a, q))


def pss_tail(rho: float | np.ndarray, length: int, windows: int = 1) -> np.ndarray:
    """``P(rho' > rho)`` for noise-only rho' ~ Beta(K, K (L - 1)), K = ``windows``, L = ``length``."""
    return scipy.special.betainc(windows * (length - 1), windows, 1.0 - np.asarray(rho, dtype=float))


def sss_threshold(hypotheses: int, length: int, false_alarm: float = SSS_FALSE_ALARM) -> float:
    """Threshold on the LTE SSS score ``u`` (module docstring) over ``length`` equalised subcarriers so that the best of
    ``hypotheses`` SSS candidates clears it, when no SSS is present, with probability at most ``false_alarm``."""
    q = 2.0 * false_alarm / max(hypotheses, 1)
    x = 1.0 - scipy.special.betaincinv(length - 0.5, 0.5, q)
    return float(math.sqrt(2.0 * length * x))


def _sss_norm(z: np.ndarray) -> float:
    """Normaliser ``sqrt(sum |z|^2 / 2)`` of the SSS score of the equalised SSS subcarriers ``z`` (any shape)."""
    return math.sqrt(max(0.5 * float(np.sum(np.abs(z) ** 2)), 1e-300))


def _margin_db(scores: np.ndarray) -> float:
    order = np.argsort(scores)[::-1]
    best, second = float(scores[order[0]]), float(scores[order[1]])
    return 20 * math.log10(max(best, 1e-30) / second) if second > 0 else float("inf")


def _window_spectra(x: np.ndarray, start: int, count: int, n_fft: int, weight: np.ndarray | None,
                    hop: int = 1) -> np.ndarray:
    """FFT of ``x[t:t+n_fft] * weight`` for t = start, start + hop, ... < start + count:
    complex ``[ceil(count / hop), n_fft]``."""
    windows = np.lib.stride_tricks.sliding_window_view(x[start:start + count + n_fft - 1], n_fft)[::hop]
    if weight is not None:
        windows = windows * weight
    return scipy.fft.fft(windows, axis=1)


def _ofdm_body(values: np.ndarray, bins: np.ndarray, n_fft: int) -> np.ndarray:
    grid = np.zeros(n_fft, dtype=np.complex128)
    grid[bins % n_fft] = values
    return np.fft.ifft(grid) * math.sqrt(n_fft)


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
    """PSS detection statistic rho (module docstring), 0..1: about SNR / (1 + SNR) per PSS subcarrier."""
    sss_margin_db: float
    """SSS score of the winner over the runner-up (dB)."""
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
    pss_threshold: float = float("nan")
    """Threshold ``pss_metric`` had to clear (false-alarm probability :data:`PSS_FALSE_ALARM_PER_RAT`)."""
    pss_windows: int = 1
    """PSS occurrences (5 ms apart) summed into ``pss_metric``."""
    hypotheses: int = 0
    """PSS hypotheses searched (timings x frequencies x roots)."""
    sss_metric: float = float("nan")
    """SSS score ``u`` of the winner (module docstring)."""
    sss_threshold: float = float("nan")
    """Threshold ``sss_metric`` had to clear (:data:`SSS_FALSE_ALARM`)."""

    def as_dict(self) -> dict[str, Any]:
        mag = 20 * np.log10(np.maximum(np.abs(self.channel), 1e-12))
        return {"rat": "lte", "cell_id": self.cell_id, "n_id1": self.n_id1, "n_id2": self.n_id2,
                "frame_start": self.frame_start, "cfo_hz": self.cfo_hz, "pss_metric": self.pss_metric,
                "pss_threshold": self.pss_threshold, "pss_windows": self.pss_windows,
                "hypotheses": self.hypotheses, "sss_metric": self.sss_metric, "sss_threshold": self.sss_threshold,
                "sss_margin_db": self.sss_margin_db, "rs_evm": self.rs_evm, "rs_evm_percent": 100 * self.rs_evm,
                "rs_snr_db": self.rs_snr_db, "crs_symbols": self.crs_symbols,
                "occupied_bw_hz": self.occupied_bw_hz,
                "channel_db": [round(float(v), 2) for v in mag],
                "channel_phase_rad": [round(float(v), 3) for v in np.angle(self.channel)]}


def _lte_bins_62() -> np.ndarray:
    n = np.arange(62)
    return n - 31 + (n >= 31)  # -31..-1, 1..31


def _freq_hypotheses(max_cfo_hz: float, scs: float) -> np.ndarray:
    steps = int(math.floor(max_cfo_hz / (scs / 2) + 1e-9))
    return np.arange(-steps, steps + 1) * (scs / 2)


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


def _lte_pss_search(xw: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    """Every PSS timing (modulo 5 ms, SSS inside the recording), root and frequency offset (``offsets`` in
    subcarriers, multiples of 1/2) on the whitened 1.92 MS/s ``xw``; windows 5 ms apart are summed."""
    bins = _lte_bins_62()
    pss = np.stack([lte_pss(i) for i in range(3)])
    first = LTE_SSS_TO_PSS
    positions = xw.size - LTE_FFT - first + 1
    n_phase = min(LTE_HALF_FRAME, positions)
    windows = np.bincount(np.arange(positions) % LTE_HALF_FRAME, minlength=n_phase)[:n_phase]
    num = np.zeros((n_phase, 3, offsets.size))
    energy = np.zeros((n_phase, offsets.size))
    n = np.arange(LTE_FFT)
    for frac in (0.0, 0.5):
        chosen = [h for h, o in enumerate(offsets) if abs(o - math.floor(o) - frac) < 1e-9]
        if not chosen:
            continue
        rotation = np.exp(-2j * np.pi * frac * n / LTE_FFT)
        for c0 in range(0, positions, _CHUNK):
            count = min(_CHUNK, positions - c0)
            spectra = _window_spectra(xw, first + c0, count, LTE_FFT, rotation)
            phase = (c0 + np.arange(count)) % LTE_HALF_FRAME  # distinct within a chunk (_CHUNK < 5 ms)
            for h in chosen:
                y = spectra[:, (bins + int(math.floor(offsets[h]))) % LTE_FFT]
                num[phase, :, h] += np.abs(y @ np.conj(pss).T) ** 2
                energy[phase, h] += np.sum(np.abs(y) ** 2, axis=1)
    rho = num / (bins.size * np.maximum(energy, 1e-300))[:, None, :]
    hypotheses = int(rho.size)
    best: dict[str, Any] | None = None
    for k in np.unique(windows):
        rows = np.nonzero(windows == k)[0]
        sub = rho[rows]
        i, root, h = np.unravel_index(int(np.argmax(sub)), sub.shape)
        value = float(sub[i, root, h])
        tail = float(pss_tail(value, bins.size, int(k)))
        key = (tail, -value)
        if best is None or key < best["key"]:
            best = {"key": key, "rho": value, "windows": int(k), "t_pss": first + int(rows[i]), "n_id2": int(root),
                    "offset": float(offsets[h]), "tail": tail}
    assert best is not None
    best["threshold"] = pss_threshold(hypotheses, bins.size, best["windows"])
    best["hypotheses"] = hypotheses
    best["detected"] = best["tail"] * hypotheses <= PSS_FALSE_ALARM_PER_RAT
    return best


def lte_cell_search(samples: np.ndarray, sample_rate_hz: float, *, max_cfo_hz: float = 22.5e3) -> LteCell:
    """Find an LTE cell (FDD, normal CP) in ``samples`` (complex ``[n]`` at ``sample_rate_hz`` S/s). The recording
    must hold one SSS and the PSS after it: a 5 ms half-frame plus two symbols always does; more PSS periods (up
    to 40 ms) add up. ``max_cfo_hz``: largest |CFO| searched (0..200 kHz, half-subcarrier hypotheses).

    Raises :class:`NoCellFound` when the PSS or the SSS does not clear its false-alarm threshold (module
    docstring), ValueError for a recording too short to hold an SSS and a PSS or a bad ``max_cfo_hz``."""
    if not 0 <= max_cfo_hz <= LTE_MAX_CFO_HZ:
        raise ValueError(f"max_cfo_hz = {max_cfo_hz:g}; allowed: 0 to {LTE_MAX_CFO_HZ:g} Hz")
    if not sample_rate_hz > 0:
        raise ValueError(f"sample_rate_hz = {sample_rate_hz!r}; allowed: a positive rate")
    keep = int(math.ceil((LTE_MAX_SEARCH_S + 0.0005) * sample_rate_hz))
    samples = np.asarray(samples)[:keep]
    x = resample(samples, sample_rate_hz, LTE_RATE)
    if x.size < LTE_MIN_SAMPLES:
        raise ValueError(f"recording too short for an LTE cell search: {x.size} samples at 1.92 MS/s "
                         f"({1e3 * x.size / LTE_RATE:.3f} ms); allowed: at least {LTE_MIN_SAMPLES} (an SSS and the "
                         f"PSS after it; 5 ms + 2 symbols always holds one)")
    if not np.any(x):
        raise NoCellFound("no LTE cell: the recording is all zeros", {"rat": "lte"})
    xw = scipy.fft.ifft(whitened_spectrum(x, LTE_FFT))
    offsets = _freq_hypotheses(max_cfo_hz, LTE_SCS) / LTE_SCS
    pss = _lte_pss_search(xw, offsets)
    candidate = {"rat": "lte", "n_id2": pss["n_id2"], "pss_metric": pss["rho"], "pss_threshold": pss["threshold"],
                 "pss_windows": pss["windows"], "hypotheses": pss["hypotheses"],
                 "cfo_hz": pss["offset"] * LTE_SCS}
    if not pss["detected"]:
        raise NoCellFound(f"no LTE PSS: best rho {pss['rho']:.3f} (N_ID2 {pss['n_id2']}, {pss['windows']} PSS "
                          f"windows) is below the threshold {pss['threshold']:.3f} for a false-alarm probability of "
                          f"{PSS_FALSE_ALARM_PER_RAT:g} over {pss['hypotheses']} hypotheses", candidate)
    n_id2, t_pss = pss["n_id2"], pss["t_pss"]

    # Fractional CFO from the CP of every symbol, the integer part from the PSS hypothesis.
    offset = _lte_pss_to_frame_offset()
    starts, cps, _ = _lte_symbol_starts((t_pss - offset) % LTE_SLOT, x.size)
    frac = _cp_cfo(x, starts, cps, LTE_FFT, LTE_RATE)
    f_hyp = pss["offset"] * LTE_SCS
    cfo = frac + round((f_hyp - frac) / LTE_SCS) * LTE_SCS
    rotation = np.exp(-2j * np.pi * cfo * np.arange(x.size) / LTE_RATE)
    x, xw = x * rotation, xw * rotation

    # The half-subcarrier hypothesis grid can put the peak a sample off: retime without frequency error.
    bins = _lte_bins_62()
    d = lte_pss(n_id2)

    def pss_rho(t: int) -> float:
        ts = np.arange(t, x.size - LTE_FFT + 1, LTE_HALF_FRAME)
        y = scipy.fft.fft(np.stack([xw[s:s + LTE_FFT] for s in ts]), axis=1)[:, bins % LTE_FFT]
        return float(np.sum(np.abs(y @ np.conj(d)) ** 2) / (bins.size * np.sum(np.abs(y) ** 2)))

    near = [t for t in range(t_pss - 2, t_pss + 3) if t >= LTE_SSS_TO_PSS and t + LTE_FFT <= x.size]
    t_pss = max(near, key=pss_rho)

    # Every PSS in the recording (every 5 ms), then SSS hypotheses summed over them; even occurrences share the
    # subframe of the first.
    occurrences = np.arange(t_pss, x.size - LTE_FFT + 1, LTE_HALF_FRAME)
    y_pss = scipy.fft.fft(np.stack([xw[t:t + LTE_FFT] for t in occurrences]), axis=1)[:, bins % LTE_FFT]
    y_sss = scipy.fft.fft(np.stack([xw[t - LTE_SSS_TO_PSS:t - LTE_SSS_TO_PSS + LTE_FFT] for t in occurrences]),
                          axis=1)[:, bins % LTE_FFT]
    z = y_sss * np.conj(y_pss * np.conj(d))
    seq0 = np.stack([lte_sss(n1, n_id2, False) for n1 in range(168)])
    seq5 = np.stack([lte_sss(n1, n_id2, True) for n1 in range(168)])
    even, odd = z[0::2].sum(axis=0), z[1::2].sum(axis=0)  # odd is 0 with a single PSS
    # column 0: the first PSS is in subframe 0; column 1: in subframe 5.
    scores = np.stack([np.real(seq0 @ even + seq5 @ odd), np.real(seq5 @ even + seq0 @ odd)], axis=1) / _sss_norm(z)
    sss_th = sss_threshold(scores.size, z.size)
    flat = scores.reshape(-1)
    n_id1, sf = divmod(int(np.argmax(flat)), 2)
    sss_u = float(flat.max())
    margin = _margin_db(flat)
    if sss_u < sss_th:
        candidate.update(n_id1=n_id1, sss_metric=sss_u, sss_threshold=sss_th, sss_margin_db=margin,
                         cfo_hz=float(cfo))
        raise NoCellFound(f"no LTE SSS: PSS N_ID2 {n_id2} found (rho {pss['rho']:.3f} >= {pss['threshold']:.3f}) "
                          f"but the best SSS score {sss_u:.2f} (N_ID1 {n_id1}) is below the threshold {sss_th:.2f}",
                          candidate)
    frame_start = (t_pss - offset - (0 if sf == 0 else LTE_HALF_FRAME)) % LTE_FRAME
    cell_id = 3 * n_id1 + n_id2

    channel, evm, n_crs = _lte_crs_analysis(x, frame_start, cell_id)
    ratio = sample_rate_hz / LTE_RATE
    return LteCell(cell_id=cell_id, n_id1=n_id1, n_id2=n_id2, frame_start=int(round(frame_start * ratio)),
                   cfo_hz=float(cfo), pss_metric=pss["rho"], sss_margin_db=float(margin), rs_evm=evm,
                   rs_snr_db=-20 * math.log10(max(evm, 1e-15)), channel=channel, crs_symbols=n_crs,
                   occupied_bw_hz=occupied_bandwidth(samples, sample_rate_hz), pss_threshold=pss["threshold"],
                   pss_windows=pss["windows"], hypotheses=pss["hypotheses"], sss_metric=sss_u,
                   sss_threshold=sss_th)


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
    """Sample index (recording rate) where the detected PSS symbol's body starts."""
    ssb_offset_hz: float
    """Frequency of the SSB centre (subcarrier 120, SS_REF) relative to the recording centre (Hz): the SSB's place
    in the carrier plus any carrier frequency offset."""
    pss_metric: float
    """PSS detection statistic rho (module docstring), 0..1."""
    sss_margin_db: float
    """SSS score of the winner over the runner-up (dB)."""
    pss_threshold: float = float("nan")
    """Threshold ``pss_metric`` had to clear (false-alarm probability :data:`PSS_FALSE_ALARM_PER_RAT`)."""
    hypotheses: int = 0
    """PSS hypotheses searched (timings x SSB frequencies x roots, both SCS)."""
    sss_metric: float = float("nan")
    """SSS statistic of the winner: ``|sum z_k s_k|^2 / (L sum |z_k|^2)``, 0..1 (module docstring)."""
    sss_threshold: float = float("nan")
    """Threshold ``sss_metric`` had to clear (:data:`SSS_FALSE_ALARM`)."""

    @property
    def cfo_hz(self) -> float:
        """The SSB's frequency offset from the recording centre (Hz): the CFO when the SSB is centred."""
        return self.ssb_offset_hz

    def as_dict(self) -> dict[str, Any]:
        return {"rat": "nr", "cell_id": self.cell_id, "n_id1": self.n_id1, "n_id2": self.n_id2,
                "scs_hz": self.scs_hz, "pss_start": self.pss_start, "ssb_offset_hz": self.ssb_offset_hz,
                "cfo_hz": self.cfo_hz, "pss_metric": self.pss_metric, "pss_threshold": self.pss_threshold,
                "hypotheses": self.hypotheses, "sss_metric": self.sss_metric, "sss_threshold": self.sss_threshold,
                "sss_margin_db": self.sss_margin_db}


def _nr_channel(spectrum: np.ndarray, centre_bin: int, n_ch: int) -> np.ndarray:
    """The band ``n_ch`` bins wide around ``centre_bin`` of a recording's FFT, as a time signal at n_ch / n of the
    recording's rate (bins outside the recording are zero). complex128 ``[n_ch]``."""
    n = spectrum.size
    k = centre_bin + np.arange(n_ch) - n_ch // 2           # signed frequency bins of the recording
    inside = (k >= -(n // 2)) & (k <= (n - 1) // 2)
    band = np.zeros(n_ch, dtype=np.complex128)
    band[inside] = spectrum[k[inside] % n]
    return scipy.fft.ifft(np.fft.ifftshift(band))


def _nr_pss_search(spectrum: np.ndarray, fs: float, scs: float, max_offset_hz: float | None) -> dict[str, Any] | None:
    """PSS search over every timing and SSB frequency for one SCS on the whitened recording spectrum
    (``[n]``, numpy order, recording rate ``fs``). None when no SSB position fits in the band."""
    n = spectrum.size
    n_ch = int(round(n * NR_FFT * scs / fs))
    fs_ch = n_ch * fs / n
    spacing = fs_ch / NR_FFT                               # window bin spacing, scs within 1 / n_ch
    lo = -fs / 2 + (-NR_PSS_BINS[0] + 0.5) * spacing        # the whole PSS inside the recorded band
    hi = fs / 2 - (NR_PSS_BINS[-1] + 0.5) * spacing
    if max_offset_hz is not None:
        lo, hi = max(lo, -max_offset_hz), min(hi, max_offset_hz)
    needed = 2 * (NR_FFT + NR_CP) + NR_FFT                 # PSS body to SSS body end
    positions = n_ch - needed + 1
    if hi < lo or positions < 1:
        return None
    n_channels = max(1, int(math.ceil((hi - lo) / (2 * NR_MAX_SUBCARRIER_SHIFT * spacing) - 1e-9)))
    width = (hi - lo) / n_channels
    templates = [np.conj(_ofdm_body(nr_pss(i), NR_PSS_BINS, NR_FFT)) * math.sqrt(NR_FFT) for i in range(3)]
    t_idx = np.arange(NR_FFT)
    best: dict[str, Any] = {"rho": -1.0}
    hypotheses = 0
    for c in range(n_channels):
        centre_bin = int(round((lo + (c + 0.5) * width) * n / fs))
        centre_hz = centre_bin * fs / n
        x_ch = _nr_channel(spectrum, centre_bin, n_ch).astype(np.complex64)
        for frac in (0.0, 0.5):
            # SSB at centre + (m + frac) spacing, within this channel's share of [lo, hi]
            m_lo = math.ceil((max(lo, centre_hz - NR_MAX_SUBCARRIER_SHIFT * spacing) - centre_hz) / spacing - frac)
            m_hi = math.floor((min(hi, centre_hz + NR_MAX_SUBCARRIER_SHIFT * spacing) - centre_hz) / spacing - frac)
            if m_hi < m_lo:
                continue
            shifts = np.arange(m_lo, m_hi + 1)
            hypotheses += positions * shifts.size * 3
            rotation = np.exp(-2j * np.pi * frac * t_idx / NR_FFT).astype(np.complex64)
            rotated_templates = [(rotation * tpl).astype(np.complex64) for tpl in templates]
            for c0 in range(0, positions, _CHUNK * NR_TIMING_HOP):
                count = min(_CHUNK * NR_TIMING_HOP, positions - c0)
                spectra = _window_spectra(x_ch, c0, count, NR_FFT, rotation, NR_TIMING_HOP)
                power = spectra.real ** 2 + spectra.imag ** 2
                # PSS energy for every shift m: bins m-64 .. m+62 (circular, shifts stay inside the window)
                cum = np.cumsum(np.fft.fftshift(power, axes=1), axis=1)
                cum = np.concatenate([np.zeros((cum.shape[0], 1)), cum], axis=1)
                first = shifts + NR_PSS_BINS[0] + NR_FFT // 2
                energy = cum[:, first + NR_PSS_BINS.size] - cum[:, first]
                scale = 1.0 / (NR_PSS_BINS.size * np.maximum(energy, 1e-30))
                for root, tpl in enumerate(rotated_templates):
                    corr = _window_spectra(x_ch, c0, count, NR_FFT, tpl, NR_TIMING_HOP)[:, shifts % NR_FFT]
                    rho = (corr.real ** 2 + corr.imag ** 2) * scale
                    i, j = np.unravel_index(int(np.argmax(rho)), rho.shape)
                    if rho[i, j] > best["rho"]:
                        best = {"rho": float(rho[i, j]), "t": c0 + NR_TIMING_HOP * int(i), "n_id2": root, "scs": scs,
                                "shift": float(shifts[j] + frac), "centre_bin": centre_bin, "centre_hz": centre_hz,
                                "n_ch": n_ch, "fs_ch": fs_ch, "spacing": spacing, "frac": frac,
                                "x_ch": x_ch}
    if best["rho"] < 0:
        return None
    # With a coarse timing grid (NR_TIMING_HOP > 1), the best candidate's neighbours.
    frac, x_ch = best["frac"], best.pop("x_ch")
    tpl = (np.exp(-2j * np.pi * frac * t_idx / NR_FFT) * templates[best["n_id2"]]).astype(np.complex64)
    rotation = np.exp(-2j * np.pi * frac * t_idx / NR_FFT).astype(np.complex64)
    m = int(round(best["shift"] - frac))
    band = (NR_PSS_BINS + m) % NR_FFT
    for t in range(max(0, best["t"] - NR_TIMING_HOP + 1), min(positions, best["t"] + NR_TIMING_HOP)):
        corr = _window_spectra(x_ch, t, 1, NR_FFT, tpl)[0, m % NR_FFT]
        energy = float(np.sum(np.abs(_window_spectra(x_ch, t, 1, NR_FFT, rotation)[0, band]) ** 2))
        rho = float(np.abs(corr) ** 2 / (NR_PSS_BINS.size * max(energy, 1e-30)))
        if rho > best["rho"]:
            best.update(rho=rho, t=t)
    best["hypotheses"] = hypotheses
    return best


def nr_cell_search(samples: np.ndarray, sample_rate_hz: float, *, scs_hz: tuple[float, ...] = (15e3, 30e3),
                   max_offset_hz: float | None = None) -> NrCell:
    """Find an NR SSB anywhere in the recorded band (``samples`` complex ``[n]`` at ``sample_rate_hz``) and its
    cell id. ``scs_hz``: SSB subcarrier spacings tried (15 and/or 30 kHz); ``max_offset_hz``: largest |SSB centre
    offset| from the recording centre searched (None: wherever the PSS fits in the band).

    Raises :class:`NoCellFound` when the PSS or the SSS does not clear its false-alarm threshold (module
    docstring), ValueError when no SSB fits in the recording (too short or too narrow) or for a bad ``scs_hz``."""
    bad = [s for s in scs_hz if s not in (15e3, 30e3)]
    if bad or not scs_hz:
        raise ValueError(f"scs_hz = {tuple(scs_hz)!r}; allowed: 15e3 and/or 30e3")
    if max_offset_hz is not None and not max_offset_hz >= 0:
        raise ValueError(f"max_offset_hz = {max_offset_hz!r}; allowed: None or >= 0")
    x = np.asarray(samples, dtype=np.complex128)
    if not np.any(x):
        raise NoCellFound("no NR cell: the recording is all zeros", {"rat": "nr"})
    searches = []
    spectra: dict[int, np.ndarray] = {}
    for scs in scs_hz:
        segment = max(16, int(round(sample_rate_hz / scs)))
        if segment not in spectra:
            spectra[segment] = whitened_spectrum(x, segment)
        found = _nr_pss_search(spectra[segment], sample_rate_hz, scs, max_offset_hz)
        if found is not None:
            searches.append(found)
    if not searches:
        raise ValueError(f"no NR SSB fits in the recording: {x.size} samples at {sample_rate_hz / 1e6:g} MS/s; "
                         f"allowed: at least 3 symbols long and at least 127 subcarriers wide (1.905 MHz at 15 kHz "
                         f"SCS, 3.81 MHz at 30 kHz)")
    hypotheses = sum(s["hypotheses"] for s in searches)
    best = max(searches, key=lambda s: s["rho"])
    threshold = pss_threshold(hypotheses, NR_PSS_BINS.size)
    scs, spacing, fs_ch = best["scs"], best["spacing"], best["fs_ch"]
    coarse_hz = best["centre_hz"] + best["shift"] * spacing
    candidate = {"rat": "nr", "n_id2": best["n_id2"], "scs_hz": scs, "ssb_offset_hz": coarse_hz,
                 "pss_metric": best["rho"], "pss_threshold": threshold, "hypotheses": hypotheses}
    if best["rho"] < threshold:
        raise NoCellFound(f"no NR PSS: best rho {best['rho']:.3f} (N_ID2 {best['n_id2']}, SCS {scs / 1e3:g} kHz, "
                          f"SSB at {coarse_hz / 1e3:+.1f} kHz) is below the threshold {threshold:.3f} for a "
                          f"false-alarm probability of {PSS_FALSE_ALARM_PER_RAT:g} over {hypotheses} hypotheses",
                          candidate)

    # Fractional frequency from the CP of the 4 SSB symbols, integer part from the search.
    segment = max(16, int(round(sample_rate_hz / scs)))
    x_ch = _nr_channel(spectra[segment], best["centre_bin"], best["n_ch"])
    t = best["t"]
    shift_hz = best["shift"] * spacing
    # only the SSB's 240 subcarriers: noise and other signals elsewhere in the channel would bias the estimate
    channel_freqs = np.fft.fftfreq(x_ch.size, 1 / fs_ch)
    in_ssb = np.abs(channel_freqs - shift_hz) <= 120 * spacing
    x_ssb = scipy.fft.ifft(np.where(in_ssb, scipy.fft.fft(x_ch), 0))
    starts = t - NR_CP + np.arange(4) * (NR_FFT + NR_CP)
    frac = _cp_cfo(x_ssb, starts, np.full(4, NR_CP), NR_FFT, fs_ch)
    fine = frac + round((shift_hz - frac) / spacing) * spacing
    x_ch = x_ch * np.exp(-2j * np.pi * fine * np.arange(x_ch.size) / fs_ch)
    d = nr_pss(best["n_id2"])
    bins = NR_PSS_BINS % NR_FFT

    def symbol(s: int) -> np.ndarray:
        return scipy.fft.fft(x_ch[s:s + NR_FFT])[bins]

    def pss_rho(s: int) -> float:
        y = symbol(s)
        return float(np.abs(np.sum(y * d)) ** 2 / (d.size * np.sum(np.abs(y) ** 2)))

    near = [s for s in range(t - 2, t + 3) if s >= 0 and s + 2 * (NR_FFT + NR_CP) + NR_FFT <= x_ch.size]
    t = max(near, key=pss_rho)
    z = symbol(t + 2 * (NR_FFT + NR_CP)) * np.conj(symbol(t) * d)
    sequences = np.stack([nr_sss(n1, best["n_id2"]) for n1 in range(336)])
    # NR resets the carrier phase at every symbol (TS 38.211 5.4), so the PSS-to-SSS phase depends on where the
    # carrier's centre is: score the SSS without its common phase, the PSS statistic's Beta(1, L - 1) law.
    scores = np.abs(sequences @ z) ** 2 / (z.size * max(float(np.sum(np.abs(z) ** 2)), 1e-300))
    n_id1 = int(np.argmax(scores))
    sss_u = float(scores[n_id1])
    sss_th = pss_threshold(scores.size, z.size, false_alarm=SSS_FALSE_ALARM)
    ssb_offset = best["centre_hz"] + fine
    margin = _margin_db(np.sqrt(scores))
    if sss_u < sss_th:
        candidate.update(n_id1=n_id1, sss_metric=sss_u, sss_threshold=sss_th, sss_margin_db=margin,
                         ssb_offset_hz=ssb_offset)
        raise NoCellFound(f"no NR SSS: PSS N_ID2 {best['n_id2']} found (rho {best['rho']:.3f} >= {threshold:.3f}, "
                          f"SCS {scs / 1e3:g} kHz, SSB at {ssb_offset / 1e3:+.1f} kHz) but the best SSS score "
                          f"{sss_u:.2f} (N_ID1 {n_id1}) is below the threshold {sss_th:.2f}", candidate)
    return NrCell(cell_id=3 * n_id1 + best["n_id2"], n_id1=n_id1, n_id2=best["n_id2"], scs_hz=float(scs),
                  pss_start=int(round(t * x.size / best["n_ch"])), ssb_offset_hz=float(ssb_offset),
                  pss_metric=best["rho"], sss_margin_db=float(margin), pss_threshold=threshold,
                  hypotheses=hypotheses, sss_metric=sss_u, sss_threshold=sss_th)


# ---------------------------------------------------------------------------------------------------------------
# Recording analysis and synthetic test signals


def _margin(found: dict[str, Any]) -> float:
    """How far the PSS cleared its threshold, as a fraction of the headroom above it."""
    return (found["pss_metric"] - found["pss_threshold"]) / max(1.0 - found["pss_threshold"], 1e-12)


def analyze_recording(path: str, *, rat: str = "auto", max_cfo_hz: float = 22.5e3) -> dict[str, Any]:
    """Read a SigMF recording and run the cell search. ``rat``: ``lte``, ``nr`` or ``auto`` (LTE, then NR when no
    LTE cell is found). Returns a JSON-ready dict with ``status: "cell"``, the thresholds and the cell's numbers.

    Raises RecordingError for a bad file, :class:`NoCellFound` (its ``result``: the JSON-ready report with
    ``status: "no cell"`` and each search's best candidate) when no search clears its false-alarm threshold, and
    ValueError for a bad argument or a recording too short for every search."""
    if rat not in ("auto", "lte", "nr"):
        raise ValueError(f"rat = {rat!r}; allowed: auto, lte, nr")
    rec = read_sigmf(path)
    head = {"file": rec.meta_path, "sample_rate_hz": rec.rate_sps, "samples": int(rec.samples.size),
            "duration_s": rec.samples.size / rec.rate_sps, "center_freq_hz": rec.lo_hz,
            "false_alarm_per_recording": FALSE_ALARM_PER_RECORDING}
    messages: list[str] = []
    candidates: list[dict[str, Any]] = []
    too_short: list[str] = []
    cell: LteCell | NrCell | None = None
    if rat in ("auto", "lte"):
        try:
            cell = lte_cell_search(rec.samples, rec.rate_sps, max_cfo_hz=max_cfo_hz)
        except NoCellFound as e:
            messages.append(f"LTE: {e}")
            candidates.append(e.candidate)
        except ValueError as e:
            if rat == "lte":
                raise
            too_short.append(f"LTE: {e}")
    if cell is None and rat in ("auto", "nr"):
        try:
            cell = nr_cell_search(rec.samples, rec.rate_sps)
        except NoCellFound as e:
            messages.append(f"NR: {e}")
            candidates.append(e.candidate)
        except ValueError as e:
            if rat == "nr" or not candidates:
                raise ValueError("; ".join(too_short + [f"NR: {e}"])) from None
            messages.append(f"NR: {e}")
    if cell is None:
        if not candidates:
            raise ValueError("; ".join(too_short))
        result = {**head, "status": "no cell", "rat": None, "candidates": candidates,
                  "best_candidate": max(candidates, key=lambda c: _margin(c) if "pss_threshold" in c else -1e9)}
        raise NoCellFound("no cell found (false-alarm target "
                          f"{100 * FALSE_ALARM_PER_RECORDING:g} % per recording): " + "; ".join(messages),
                          result["best_candidate"], result)
    return {**head, "status": "cell", **cell.as_dict()}


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
                 rng: np.random.Generator | None = None, ssb_subcarrier_offset: int = 0) -> tuple[np.ndarray, float]:
    """Synthetic NR signal with one SS/PBCH block per 14-symbol slot, at symbols 2..5 (TS 38.211 7.4.3.1: PSS on
    SSB subcarriers 56..182 of symbol 0, SSS on the same of symbol 2, PBCH REs (random QPSK) on symbols 1 and 3 and
    on subcarriers 0..47 and 192..239 of symbol 2), normal CP. The SSB centre (subcarrier 120, SS_REF) sits
    ``ssb_subcarrier_offset`` subcarriers from DC. Returns ``(samples complex128 [n], sample_rate_hz)``; the rate
    defaults to 512 x SCS."""
    rng = rng or np.random.default_rng(0)
    fs = sample_rate_hz or 512 * scs_hz
    nfft = int(round(fs / scs_hz))
    if abs(fs / scs_hz - nfft) > 1e-9 or nfft < 256 or (144 * nfft) % 2048:
        raise ValueError(f"sample_rate_hz = {fs:g}; allowed: SCS x an FFT size >= 256 with an integer CP")
    ssb_bins = np.arange(240) - 120 + ssb_subcarrier_offset
    if ssb_bins.min() < -(nfft // 2) or ssb_bins.max() >= nfft // 2:
        raise ValueError(f"ssb_subcarrier_offset = {ssb_subcarrier_offset}; allowed: |offset| <= {nfft // 2 - 120} "
                         f"so that the 240-subcarrier SSB fits in the {nfft}-point grid")
    cp = 144 * nfft // 2048
    n_id1, n_id2 = divmod(cell_id, 3)
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
