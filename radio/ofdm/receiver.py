"""Slot receiver: synchronisation, channel estimation, equalisation, decoding and per-link measurements.

Per transmitter (one :class:`~radio.ofdm.slot.SlotPlan`) in a received buffer:

1. **Timing and CFO.** The preamble's body is two identical halves. The buffer, band-filtered to the
   transmitter's RBs, is correlated with the known half; the slot starts where ``|c(t)| + |c(t + N/2)|`` peaks
   among the positions from which a whole slot fits in the buffer. The phase of ``c(t + N/2) c(t)*`` gives the
   fractional CFO (+-1 SCS). Beyond 1 SCS (``max_cfo_scs``), integer hypotheses in steps of 2 SCS are tried and
   the DMRS decide between them (a ZC shifted by whole bins mimics a time shift). CFO is removed from the whole
   buffer.
2. **DFT** of the 14 symbols with the window ``backoff`` samples early inside the CP (half of the CP left
   after any WOLA ramp), the resulting phase ramp removed so the detected path sits at delay 0. When the
   reference symbols' phase drift (step 3) shows the preamble's CFO was off by more than
   :data:`CFO_REFINE_SCS` (low SNR, phase noise inside the preamble), the slot is demodulated again at the
   refined CFO, so no ICI is left from it.
3. **Channel estimate, per link** (pilots carry the link's gain, so links at different powers are estimated
   independently): least-squares values on the preamble and DMRS pilots of the four reference symbols; a delay
   drift across the slot (sample-clock offset, from the phase slope over the whole band between reference
   symbols); a common phase per reference symbol, interpolated linearly between them (residual CFO, slow phase
   noise). The de-rotated pilots of all reference symbols are fitted jointly by a delay-limited model
   ``G(k) = sum_{|d| <= w} c_d exp(-j 2 pi k d / N)`` (weighted, ridge-regularised least squares; ``w`` chosen per
   link and slot by generalised cross-validation, so a flat channel uses few taps and a dispersive one up to
   the CP). The channel of symbol ``l`` is ``G(k) exp(j (phi(l) - 2 pi k tau(l) / N))``, times a per-symbol common
   phase from the PTRS and DMRS of all the transmitter's links, applied only when those phases vary
   significantly beyond their estimation noise and then Wiener-shrunk by it, so it acts only where phase noise
   is really there. The channel's shape is taken as constant over a slot (1 ms at 15 kHz): its phase and delay
   are tracked, Doppler fading within a slot is not.
4. **Equalisation**: per RE ``z = y / H`` (the unbiased MMSE estimate for one stream), noise variance
   ``sigma^2 / |H|^2`` with ``sigma^2`` from the pilot residuals (degrees of freedom of the fit removed);
   exact log-APP LLRs; LDPC decoding of every code block of the slot in one batched run (all codes together).
5. **Measurements per link**: post-equalisation SINR from the data REs against the sent symbols
   (``1 / EVM^2``, includes every impairment and the channel-estimation error), SINR from the pilots
   (``|H|^2 / sigma^2``), EVM, CRC per code block, BLER, delivered information bits (CRC-passed blocks only),
   and the mean received power per RE on the RB groups next to the allocation.

Powers are in dB relative to ``re_scale^2``: a unit RE of a full-power slot with unit gain in between reads 0 dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.signal

from radio.ofdm.fec import decode_groups, encode_blocks
from radio.ofdm.modulation import bits_per_symbol, demap_llr, map_bits
from radio.ofdm.slot import (
    DMRS_SYMBOLS, PREAMBLE_SYMBOL, REFERENCE_SYMBOLS, SYMBOLS_PER_SLOT, SlotGeometry, SlotPlan, TxSlot, _filler_bits,
    geometry, payload_bits,
)

RIDGE = 1e-5
"""Ridge weight of the delay-domain channel fit, relative to the total pilot weight."""

MAX_SCO_PPM = 60.0
"""Largest sample-clock offset the delay-drift search covers (ppm)."""

CFO_REFINE_SCS = 0.002
"""Residual CFO (in SCS) above which the slot is demodulated again at the refined CFO (ICI -49 dB there)."""


@dataclass
class SyncResult:
    """Where the slot was found in the buffer and how far off frequency it was."""

    start: int
    """Buffer index of the slot's first sample (start of the preamble's CP)."""
    cfo_hz: float
    """Estimated carrier frequency offset (Hz), removed before the DFT."""
    metric: float
    """Normalised preamble correlation at the chosen position, 0..1 (about 1: clean preamble)."""
    sco_ppm: float = 0.0
    """Sample-clock offset estimated from the delay drift across the slot (ppm), mean over links."""
    backoff: int = 0
    """Samples the DFT window starts early inside the CP."""

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "cfo_hz": self.cfo_hz, "metric": self.metric, "sco_ppm": self.sco_ppm}


@dataclass
class AdjacentPower:
    """Received power on one RB group next to a link's allocation (for ACI/ACLR-type measurements)."""

    offset: int
    """-2, -1 (below the allocation), +1, +2 (above); group ``+-1`` touches the allocation."""
    rbs: tuple[int, int] | None
    """First and last RB of the group, clipped to the carrier; None when the group lies outside it."""
    power_db: float | None
    """Mean received power per RE on the group (dB re ``re_scale^2``)."""
    relative_db: float | None
    """The same relative to the link's own mean received power per RE (dBc)."""

    def as_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "rbs": list(self.rbs) if self.rbs else None, "power_db": self.power_db,
                "relative_db": self.relative_db}


@dataclass
class LinkReport:
    """One link in one slot, as the receiver measured it."""

    link_id: str
    """The link's id."""
    sinr_db: float
    """Post-equalisation SINR from the data REs against the sent symbols, ``-20 log10(EVM)`` (dB)."""
    sinr_pilot_db: float
    """Post-equalisation SINR from the pilots: mean ``|H|^2`` over the link's data REs / ``sigma^2`` (dB)."""
    evm: float
    """RMS EVM of the equalised data symbols against the sent ones (ratio)."""
    noise_var: float
    """Noise-plus-interference variance per RE from the pilot residuals (linear, re ``re_scale^2``)."""
    rx_power_db: float
    """Mean received power per RE on the link's REs (dB re ``re_scale^2``)."""
    crc_ok: np.ndarray
    """bool ``[C]``: CRC result of each code block."""
    info_bits_per_block: int
    """Information bits of one code block."""
    adjacent: list[AdjacentPower] = field(default_factory=list)
    """Power on the RB groups at offsets -2, -1, +1, +2."""
    channel_taps: int = 0
    """Delay taps the channel fit used (2 w + 1)."""
    equalized: np.ndarray | None = None
    """complex64 ``[n_data]``: equalised data symbols (for constellation plots and EVM breakdowns)."""
    sent: np.ndarray | None = None
    """complex64 ``[n_data]``: the unit-energy symbols that were sent."""

    @property
    def n_blocks(self) -> int:
        return int(self.crc_ok.size)

    @property
    def blocks_ok(self) -> int:
        return int(np.count_nonzero(self.crc_ok))

    @property
    def bler(self) -> float:
        """Fraction of code blocks whose CRC failed."""
        return 1.0 - self.blocks_ok / self.n_blocks if self.n_blocks else float("nan")

    @property
    def delivered_bits(self) -> int:
        """Information bits of the CRC-passed blocks."""
        return self.blocks_ok * self.info_bits_per_block

    @property
    def offered_bits(self) -> int:
        """Information bits sent."""
        return self.n_blocks * self.info_bits_per_block

    @property
    def evm_db(self) -> float:
        return 20.0 * math.log10(max(self.evm, 1e-15))

    def as_dict(self) -> dict[str, Any]:
        return {"link_id": self.link_id, "sinr_db": self.sinr_db, "sinr_pilot_db": self.sinr_pilot_db,
                "evm": self.evm, "evm_db": self.evm_db, "noise_var": self.noise_var, "rx_power_db": self.rx_power_db,
                "crc_ok": self.crc_ok.tolist(), "bler": self.bler, "delivered_bits": self.delivered_bits,
                "offered_bits": self.offered_bits, "adjacent": [a.as_dict() for a in self.adjacent],
                "channel_taps": self.channel_taps}


@dataclass
class SlotReport:
    """Everything measured on one transmitter's slot."""

    plan: SlotPlan
    """The plan that was received."""
    slot_index: int
    """Which slot of the sequence."""
    sync: SyncResult
    """Timing and frequency."""
    links: list[LinkReport]
    """Per link, in plan order."""
    rb_power_db: np.ndarray
    """float ``[N_RB]``: mean received power per RE on every RB of the carrier, symbols 1..13 (dB re
    ``re_scale^2``), at this transmitter's timing and CFO."""

    def link(self, link_id: str) -> LinkReport:
        for r in self.links:
            if r.link_id == link_id:
                return r
        raise KeyError(link_id)

    def as_dict(self) -> dict[str, Any]:
        return {"slot_index": self.slot_index, "sync": self.sync.as_dict(), "links": [l.as_dict() for l in self.links],
                "rb_power_db": self.rb_power_db.tolist()}


# ---------------------------------------------------------------------------------------------------------------
# Synchronisation


def _preamble_body(plan: SlotPlan) -> np.ndarray:
    """complex128 ``[N]``: the preamble's useful part (unitary IDFT) on the plan's own RBs with link gains."""
    geo = geometry(plan)
    key = ("preamble", tuple(link.gain for link in plan.links))
    body = geo.derived.get(key)
    if body is None:
        row = np.zeros(geo.fft_size, dtype=np.complex128)
        for link, res in zip(plan.links, geo.links):
            row[res.bins] = geo.pilots[PREAMBLE_SYMBOL, res.bins] * link.gain
        body = np.fft.ifft(row) * math.sqrt(geo.fft_size)
        _store(geo.derived, key, body)
    return body


def _store(cache: dict, key: Any, value: Any, limit: int = 64) -> None:
    """Put ``value`` in a per-geometry cache, forgetting the oldest entries of its kind beyond ``limit``."""
    same = [k for k in cache if isinstance(k, tuple) and k and k[0] == key[0]]
    for k in same[:max(0, len(same) - limit + 1)]:
        del cache[k]
    cache[key] = value


def _band_filter(x: np.ndarray, plan: SlotPlan) -> np.ndarray:
    """Keep only the plan's own RBs, 2 subcarriers of margin (brick-wall over the whole buffer), so a stronger
    transmitter on other RBs cannot lend the preamble correlation false peaks."""
    geo = geometry(plan)
    n = geo.fft_size
    size = scipy.fft.next_fast_len(x.size)
    spectrum = scipy.fft.fft(x, size)
    key = ("band", size)
    drop = geo.derived.get(key)
    if drop is None:
        keep = np.zeros(size, dtype=bool)
        freq = np.fft.fftfreq(size) * n  # in subcarrier units
        edges = []
        for res in geo.links:
            for rb in res.signed_bins.reshape(-1, 12):
                edges.append((rb.min() - 2.0, rb.max() + 2.0))
        for lo, hi in edges:
            keep |= (freq >= lo) & (freq <= hi)
        drop = np.nonzero(~keep)[0]
        _store(geo.derived, key, drop, limit=8)
    spectrum[drop] = 0
    return scipy.fft.ifft(spectrum)[: x.size]


def _backoff(plan: SlotPlan) -> int:
    """Samples the DFT window starts early inside the CP: half the CP left after the WOLA ramp."""
    geo = geometry(plan)
    return max(0, (int(geo.cp.min()) - plan.wola_ramp) // 2)


def _pilot_score(x: np.ndarray, plan: SlotPlan, start: int, cfo_hz: float) -> float:
    """Normalised correlation of the DMRS of the first DMRS symbol for a candidate start and CFO (PN pilots, so
    unlike the ZC preamble they have no time/frequency ambiguity)."""
    geo = geometry(plan)
    n = geo.fft_size
    l = DMRS_SYMBOLS[0]
    begin = start + int(geo.symbol_start[l] + geo.cp[l]) - max(0, int(geo.cp.min()) // 2)
    if begin < 0 or begin + n > x.size:
        return 0.0
    seg = x[begin:begin + n] * np.exp(-2j * np.pi * cfo_hz * np.arange(begin, begin + n) / plan.rate_hz)
    y = np.fft.fft(seg)
    num, ey, ex = 0.0, 0.0, 0.0
    for res in geo.links:
        mask = res.pilot_mask[l].reshape(-1, 12)
        for rb_bins, m in zip(res.rb_bins, mask):
            b = rb_bins[m]
            ref = geo.pilots[l, b]
            # Coherent within an RB, magnitudes across RBs: immune to the window's phase ramp and the channel.
            num += abs(np.sum(y[b] * np.conj(ref)))
            ey += float(np.sum(np.abs(y[b]) ** 2))
            ex += float(np.sum(np.abs(ref) ** 2))
    return num / math.sqrt(max(ey * ex, 1e-30))


def synchronise(samples: np.ndarray, plan: SlotPlan, *, max_cfo_scs: float = 1.0) -> SyncResult:
    """Find ``plan``'s slot in ``samples`` and estimate its CFO (see the module docstring, step 1).

    ``samples``: complex, shape ``[n]`` with ``n >= slot_length``. ``max_cfo_scs``: largest |CFO| searched, in
    subcarrier spacings (above 1, integer hypotheses in steps of 2 SCS are added and the winner is the one whose
    DMRS then correlate best). Raises ValueError when the buffer is shorter than a slot.
    """
    geo = geometry(plan)
    raw = np.asarray(samples, dtype=np.complex128)
    n = geo.fft_size
    half = n // 2
    if raw.size < geo.slot_length:
        raise ValueError(f"received {raw.size} samples; a slot needs at least {geo.slot_length}")
    body = _preamble_body(plan)[:half]
    fs = plan.rate_hz
    cp0 = int(geo.cp[0])
    # A slot may overhang the buffer end by the DFT back-off: the last window still ends inside the buffer.
    slack = _backoff(plan)
    raw = np.concatenate([raw, np.zeros(slack, dtype=np.complex128)])
    last = raw.size - geo.slot_length  # latest slot start that still fits
    hyps = [0]
    m = 2
    while m - 1 < max_cfo_scs:
        hyps += [m, -m]
        m += 2
    # Integer hypotheses move the signal's band: filter wide enough for all of them.
    x = _band_filter(raw, plan) if len(hyps) == 1 else raw
    energy = np.concatenate([[0.0], np.cumsum(np.abs(x) ** 2)])
    candidates = []
    tn = np.arange(half)
    for hyp in hyps:
        template = body * np.exp(2j * np.pi * hyp * tn / n)
        c = scipy.signal.fftconvolve(x[: last + cp0 + n], np.conj(template[::-1]), mode="valid")
        # c[t] = sum_i x[t + i] conj(template[i]); the useful part starts at slot start + cp0
        t = np.arange(cp0, last + cp0 + 1)
        metric = np.abs(c[t]) + np.abs(c[t + half])
        i = int(np.argmax(metric))
        # The phase from the unfiltered buffer: the filter edges would bias it.
        first = np.vdot(template, raw[t[i]:t[i] + half])
        second = np.vdot(template, raw[t[i] + half:t[i] + n])
        phase = float(np.angle(second * np.conj(first)))
        cfo = hyp * plan.numerology.scs_hz + phase * fs / (2.0 * np.pi * half)
        candidates.append((float(metric[i]), int(t[i]), cfo))
    if len(candidates) > 1:
        # A ZC preamble shifted by whole bins looks like a time-shifted one: let the PN pilots decide.
        peak, t_useful, cfo = max(candidates, key=lambda c: _pilot_score(raw, plan, c[1] - cp0, c[2]))
    else:
        peak, t_useful, cfo = candidates[0]
    e = energy[t_useful + n] - energy[t_useful]
    norm = math.sqrt(max(e, 1e-30) * np.sum(np.abs(body) ** 2) * 2.0)
    return SyncResult(start=t_useful - cp0, cfo_hz=float(cfo), metric=float(min(peak / norm, 1.0)))


# ---------------------------------------------------------------------------------------------------------------
# Channel estimation helpers


def _window_candidates(max_w: int) -> list[int]:
    out, w = [0, 1, 2], 3
    while w < max_w:
        out.append(w)
        w = int(math.ceil(w * 1.5))
    out.append(max_w)
    return sorted(set(v for v in out if v <= max_w))


@lru_cache(maxsize=512)
def _fit_operator(n_fft: int, w: int, weights_bytes: bytes, bins_bytes: bytes):
    """Cholesky factor of the weighted ridge normal matrix and the hat-matrix trace of one pilot set/window."""
    bins = np.frombuffer(bins_bytes, dtype=np.int64)
    wts = np.frombuffer(weights_bytes, dtype=np.float64)
    d = np.arange(-w, w + 1)
    acc = np.bincount(bins % n_fft, weights=wts, minlength=n_fft).astype(np.complex128)
    # (B^H W B)[d, d'] = sum_p w_p exp(j 2 pi k_p (d - d') / N): Toeplitz from the weighted pilot spectrum.
    r = np.fft.ifft(acc) * n_fft
    gram = r[(d[:, None] - d[None, :]) % n_fft]
    lam = RIDGE * float(np.sum(wts))
    a = gram + lam * np.eye(d.size)
    chol = scipy.linalg.cho_factor(a, lower=True)
    trace = float(np.real(np.trace(scipy.linalg.cho_solve(chol, gram))))
    return chol, trace


_ZPOTRS = scipy.linalg.get_lapack_funcs(("potrs",), (np.zeros((1, 1), np.complex128),))[0]


def _cho_solve(chol: tuple[np.ndarray, bool], b: np.ndarray) -> np.ndarray:
    """``scipy.linalg.cho_solve`` without its input checks (the factor is ours and finite): LAPACK potrs."""
    c, lower = chol
    potrs = _ZPOTRS if c.dtype == np.complex128 and b.dtype == np.complex128 else \
        scipy.linalg.get_lapack_funcs(("potrs",), (c, b))[0]
    x, info = potrs(c, b, lower=lower, overwrite_b=True)
    if info != 0:
        raise ValueError(f"illegal value in {-info}th argument of internal potrs")
    return x


@dataclass
class _LinkChannel:
    """One link's channel estimate in one slot."""

    h: np.ndarray
    """complex [14, nsc]: channel times the link gain, per symbol and subcarrier."""
    sigma2: float
    """Noise variance per RE from the pilot residuals."""
    taps: int
    """Delay taps of the frequency fit."""
    tau: np.ndarray
    """float [14]: delay (samples) of each symbol relative to the slot's middle (sample-clock drift)."""
    phase_slope: float
    """Common-phase drift (rad per symbol) over the reference symbols: residual CFO."""
    n_pilots: int
    """Pilots of the reference symbols."""


def _refine_peak(j: np.ndarray, grid: np.ndarray) -> float:
    """The delay drift (samples per symbol, a sample-clock offset) maximising the drift objective ``j`` sampled on
    ``grid``: ``sum over pairs of reference symbols |sum_k h_b(k) h_a(k)* exp(j 2 pi k d (l_b - l_a) / N)|`` over
    the pilots common to both (the whole band's phase slope, far less noisy than neighbouring-pilot phase
    differences), refined by a parabola through the grid maximum."""
    i = int(np.argmax(j))
    if 0 < i < grid.size - 1:
        # Parabolic refinement around the grid maximum.
        denom = j[i - 1] - 2 * j[i] + j[i + 1]
        shift = 0.5 * (j[i - 1] - j[i + 1]) / denom if denom < 0 else 0.0
        return float(grid[i] + shift * (grid[1] - grid[0]))
    return float(grid[i])


@dataclass
class _LinkFit:
    """Everything of one link's channel estimation that depends on its geometry alone (cached per link)."""

    x_pilot: np.ndarray
    """complex [14, nsc]: unit-gain pilot values, 0 elsewhere."""
    refs: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    """Per reference symbol: (l, pilot mask row, signed bins k, pilot values, weights |x|^2)."""
    pairs: list[tuple[int, int, np.ndarray, np.ndarray]]
    """Delay-drift pairs of reference symbols: (index a, index b into refs, indices into a's and b's pilots)..."""
    drift_mats: list[np.ndarray]
    """... and per pair the matrix exp(j 2 pi d k (l_b - l_a) / N) over the drift grid."""
    grid: np.ndarray
    k_all: np.ndarray
    w_all: np.ndarray
    k_mod: np.ndarray
    signed: np.ndarray
    signed_mod: np.ndarray
    candidates: list[int]
    operators: list[tuple[Any, float]]
    """Per candidate window: (Cholesky factor, hat trace)."""


def _link_fit(geo: SlotGeometry, res: Any, max_w: int, max_drift: float) -> _LinkFit:
    key = ("fit", geo.fft_size, max_w, max_drift)
    fit = res.derived.get(key)
    if fit is not None:
        return fit
    n_fft = geo.fft_size
    xp = np.where(res.pilot_mask, geo.pilots[:, res.bins], 0)
    signed = res.signed_bins
    refs = []
    for l in REFERENCE_SYMBOLS:
        m = res.pilot_mask[l]
        refs.append((l, m, signed[m], xp[l, m], np.abs(xp[l, m]) ** 2))
    pairs, mats = [], []
    grid = np.linspace(-max_drift, max_drift, 81)
    order = sorted(range(len(refs)), key=lambda i: refs[i][0])
    for i, ia_ref in enumerate(order):
        for ib_ref in order[i + 1:]:
            a, b = refs[ia_ref][0], refs[ib_ref][0]
            common, ia, ib = np.intersect1d(refs[ia_ref][2], refs[ib_ref][2], assume_unique=True,
                                            return_indices=True)
            if common.size >= 4:
                kd = common.astype(np.float64) * (b - a)
                pairs.append((ia_ref, ib_ref, ia, ib))
                mats.append(np.exp(2j * np.pi * np.outer(grid, kd) / n_fft))
    k_all = np.concatenate([r[2] for r in refs]).astype(np.int64)
    w_all = np.concatenate([r[4] for r in refs]).astype(np.float64)
    n_p = k_all.size
    candidates, operators = [], []
    for w in _window_candidates(max_w):
        if 2 * w + 1 > n_p // 2 and w > 0:
            break
        candidates.append(w)
        operators.append(_fit_operator(n_fft, w, w_all.tobytes(), k_all.tobytes()))
    fit = _LinkFit(xp, refs, pairs, mats, grid, k_all, w_all, k_all % n_fft, signed, signed % n_fft, candidates,
                   operators)
    res.derived[key] = fit
    return fit


def _estimate_link_channels(ys: Sequence[np.ndarray], fits: Sequence[_LinkFit], n_fft: int) -> list[_LinkChannel]:
    """Every link's channel estimate (module docstring, step 3), the geometry-only parts cached per link and the
    DFTs of all links and window candidates batched. ys: [14, nsc] received REs per link."""
    refs_mean = float(np.mean(REFERENCE_SYMBOLS))
    sym = np.arange(SYMBOLS_PER_SLOT, dtype=np.float64)
    lr = np.array(REFERENCE_SYMBOLS, dtype=np.float64)
    accs = np.zeros((len(ys), n_fft), dtype=np.complex128)
    lss, taus, phis = [], [], []
    for y, fit in zip(ys, fits):
        ls = [(k, y[l, m] / x, wt) for l, m, k, x, wt in fit.refs]
        if fit.pairs and fit.grid[-1] > 0:
            total = np.zeros(fit.grid.size)
            for (a, b, ia, ib), mat in zip(fit.pairs, fit.drift_mats):
                total += np.abs(mat @ (ls[b][1][ib] * np.conj(ls[a][1][ia])))
            drift = _refine_peak(total, fit.grid)
        else:
            drift = 0.0
        tau_l = drift * (sym - refs_mean)
        phis.append([float(np.angle(np.sum(h * np.exp(2j * np.pi * k * tau_l[l] / n_fft))))
                     for (l, *_), (k, h, _) in zip(fit.refs, ls)])
        lss.append(ls)
        taus.append(tau_l)
    # Phase unwrapping and the phase-slope line fit of all links at once (row by row, as one link alone).
    unwrapped_all = np.unwrap(np.array(phis), axis=1) if phis else np.zeros((0, lr.size))
    if phis:
        design = np.vstack([np.ones_like(lr), lr]).T
        slopes = np.linalg.lstsq(design, unwrapped_all.T, rcond=None)[0][1]
    stage = []
    for j, fit in enumerate(fits):
        ls, tau_l, unwrapped = lss[j], taus[j], unwrapped_all[j]
        phase_slope = float(slopes[j])
        phi_l = np.interp(sym, lr, unwrapped)
        tail = sym > lr[-1]
        phi_l[tail] = unwrapped[-1] + (sym[tail] - lr[-1]) * (unwrapped[-1] - unwrapped[-2]) / (lr[-1] - lr[-2])
        vv = [h * np.exp(-1j * (phi_l[l] - 2.0 * np.pi * k * tau_l[l] / n_fft))
              for (l, *_), (k, h, _) in zip(fit.refs, ls)]
        v_all = np.concatenate(vv)
        wv = fit.w_all * v_all
        accs[j].real = np.bincount(fit.k_mod, weights=wv.real, minlength=n_fft)
        accs[j].imag = np.bincount(fit.k_mod, weights=wv.imag, minlength=n_fft)
        stage.append((tau_l, phi_l, phase_slope, v_all))
    rhs_all = np.fft.ifft(accs, axis=1) * n_fft  # sum_p w_p v_p exp(+j 2 pi k_p d / N)
    rows = []
    coefs = []
    for j, fit in enumerate(fits):
        for w, (chol, _) in zip(fit.candidates, fit.operators):
            d = np.arange(-w, w + 1)
            coef = _cho_solve(chol, rhs_all[j, d % n_fft])
            taps = np.zeros(n_fft, dtype=np.complex128)
            taps[d % n_fft] = coef
            rows.append(taps)
            coefs.append(coef)
    spectra = np.fft.fft(np.array(rows), axis=1) if rows else np.zeros((0, n_fft), np.complex128)
    out = []
    r = 0
    for j, (y, fit) in enumerate(zip(ys, fits)):
        tau_l, phi_l, phase_slope, v_all = stage[j]
        n_p = fit.k_all.size
        best = None
        for w, (_, trace) in zip(fit.candidates, fit.operators):
            fitted = spectra[r][fit.k_mod]
            rss = float(np.sum(fit.w_all * np.abs(v_all - fitted) ** 2))
            dof = max(n_p - trace, 1.0)
            gcv = rss / n_p / (dof / n_p) ** 2
            if best is None or gcv < best[0]:
                best = (gcv, w, r, rss, trace)
            r += 1
        _, w, row, rss, trace = best
        g = spectra[row][fit.signed_mod]
        rot = np.exp(1j * (phi_l[:, None] - 2.0 * np.pi * fit.signed[None, :] * tau_l[:, None] / n_fft))
        h = g[None, :] * rot
        sigma2 = rss / max(n_p - trace - 4.0, 1.0)
        out.append(_LinkChannel(h, sigma2, 2 * w + 1, tau_l, phase_slope, n_p))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The receiver


def _reference_symbols(plan: SlotPlan, slot_index: int, reference: TxSlot | None) -> list[np.ndarray]:
    if reference is not None:
        if reference.plan != plan or reference.slot_index != slot_index:
            raise ValueError("reference TxSlot does not match the plan/slot being received")
        return [t.data_symbols for t in reference.links]
    geo = geometry(plan)
    out = []
    for i, (link, res) in enumerate(zip(plan.links, geo.links)):
        bits = encode_blocks(payload_bits(plan, slot_index, i), res.layout).reshape(-1)
        if res.layout.filler_bits:
            bits = np.concatenate([bits, _filler_bits(res.layout.filler_bits)])
        out.append(map_bits(bits, link.modulation))
    return out


def _db(x: float) -> float:
    return 10.0 * math.log10(x) if x > 0 else float("-inf")


def _demodulate(x: np.ndarray, plan: SlotPlan, start: int, cfo_hz: float):
    """DFT of the 14 symbols at ``start`` with ``cfo_hz`` removed, and every link's channel estimate.
    Returns (y_full complex [14, N] in unitary-DFT units, [(y [14, nsc] / re_scale, pilots, _LinkChannel)])."""
    geo = geometry(plan)
    y_full = _dft_symbols(x, plan, start, cfo_hz)
    n = geo.fft_size
    max_w = max(1, int(geo.cp.min()))
    max_drift = MAX_SCO_PPM * 1e-6 * geo.slot_length / SYMBOLS_PER_SLOT
    ys, xps, fits = [], [], []
    for res in geo.links:
        ys.append(y_full[:, res.bins] / geo.re_scale)
        # Pilots without the link gain: the estimate is then channel x gain, which is what equalises the data.
        fit = _link_fit(geo, res, max_w, max_drift)
        xps.append(fit.x_pilot)
        fits.append(fit)
    chans = _estimate_link_channels(ys, fits, n)
    return y_full, list(zip(ys, xps, chans))


def _dft_symbols(x: np.ndarray, plan: SlotPlan, start: int, cfo_hz: float) -> np.ndarray:
    """complex128 [14, N]: the unitary DFT of the 14 symbols of the slot at ``start``, ``cfo_hz`` removed, with the
    window back-off's phase ramp taken out."""
    geo = geometry(plan)
    n = geo.fft_size
    backoff = _backoff(plan)
    seg = x[start: start + geo.slot_length]
    if seg.size < geo.slot_length:
        seg = np.concatenate([seg, np.zeros(geo.slot_length - seg.size, dtype=np.complex128)])
    seg = seg * np.exp(-2j * np.pi * cfo_hz * (np.arange(seg.size) + start) / plan.rate_hz)
    key = ("dft", backoff)
    cached = geo.derived.get(key)
    if cached is None:
        starts = geo.symbol_start + geo.cp - backoff
        idx = starts[:, None] + np.arange(n)[None, :]
        signed_all = np.fft.fftfreq(n, 1.0 / n).astype(np.int64)
        cached = geo.derived[key] = (idx, np.exp(2j * np.pi * signed_all * backoff / n)[None, :])
    idx, ramp = cached
    y_full = np.fft.fft(seg[idx], axis=1) / math.sqrt(n)
    y_full *= ramp
    return y_full


def receive_slot(samples: np.ndarray, plan: SlotPlan, slot_index: int = 0, *, reference: TxSlot | None = None,
                 max_cfo_scs: float = 1.0, keep_symbols: bool = False, decode: bool = True) -> SlotReport:
    """Receive and measure one slot of ``plan`` in ``samples``.

    ``samples``: complex64, shape ``[n]``, at ``plan.rate_hz``, containing a whole slot anywhere (a cyclic
    transmission received for two slot lengths always does). ``reference``: the :class:`TxSlot` that was sent, if
    at hand (otherwise the payload is regenerated from the plan's seed). ``keep_symbols``: keep the equalised and
    sent data symbols in each :class:`LinkReport`. ``decode=False`` measures without LDPC decoding (no CRC
    results: ``crc_ok`` is empty, BLER is NaN, nothing is delivered). Returns a :class:`SlotReport`.
    """
    geo = geometry(plan)
    x = np.asarray(samples).astype(np.complex128, copy=False)
    sync = synchronise(x, plan, max_cfo_scs=max_cfo_scs)
    fs = plan.rate_hz
    sync.backoff = _backoff(plan)
    sym_len = geo.slot_length / SYMBOLS_PER_SLOT
    y_full, channels = _demodulate(x, plan, sync.start, sync.cfo_hz)
    # The preamble's CFO comes from one symbol; the phase drift over the reference symbols (12 symbols apart) is
    # a far finer estimate. Where it says the preamble was off by enough to cause ICI (phase noise in the
    # preamble, low SNR), demodulate again at the refined CFO.
    weights = np.array([c.n_pilots for _, _, c in channels], dtype=np.float64)
    slopes = np.array([c.phase_slope for _, _, c in channels])
    residual_hz = float(np.sum(weights * slopes) / np.sum(weights)) * fs / (2.0 * np.pi * sym_len)
    if abs(residual_hz) > CFO_REFINE_SCS * plan.numerology.scs_hz:
        sync.cfo_hz += residual_hz
        y_full, channels = _demodulate(x, plan, sync.start, sync.cfo_hz)
        slopes = np.array([c.phase_slope for _, _, c in channels])
        residual_hz = float(np.sum(weights * slopes) / np.sum(weights)) * fs / (2.0 * np.pi * sym_len)
    sync.cfo_hz += residual_hz
    scale2 = geo.re_scale ** 2

    # Common phase per symbol from every link's non-preamble pilots, Wiener-shrunk by its own estimation noise.
    num = np.zeros(SYMBOLS_PER_SLOT, dtype=np.complex128)
    noise = np.zeros(SYMBOLS_PER_SLOT)
    for (y, xp, ch), res in zip(channels, geo.links):
        ref = ch.h * xp
        m = res.pilot_mask.copy()
        m[PREAMBLE_SYMBOL] = False
        num += np.sum(np.where(m, y * np.conj(ref), 0), axis=1)
        noise += ch.sigma2 * np.sum(np.where(m, np.abs(ref) ** 2, 0), axis=1)
    power = np.abs(num)
    has = power > 0
    theta = np.where(has, np.angle(num), 0.0)
    # Variance of each phase estimate: sigma^2 sum|ref|^2 / (2 |sum y ref*|^2).
    var = np.where(has, noise / (2.0 * np.maximum(power, 1e-30) ** 2), np.inf)
    usable = has & np.isfinite(var)
    count = int(np.count_nonzero(usable))
    # Only where the per-symbol phases vary beyond their estimation noise (chi-square 3 sigma) is there phase
    # noise to track; otherwise correcting would only add the estimates' noise.
    significant = count >= 2 and float(np.mean(theta[usable] ** 2 / var[usable])) > 1.0 + 3.0 * math.sqrt(2.0 / count)
    if significant:
        prior = max(float(np.mean(theta[usable] ** 2) - np.mean(var[usable])), 0.0)
        theta = np.where(usable, theta * prior / (prior + var), 0.0)
    else:
        theta = np.zeros(SYMBOLS_PER_SLOT)
    cpe = np.exp(1j * theta)

    equalised = []
    by_modulation: dict[str, list[int]] = {}
    noise_vars = []
    for i, ((y, xp, ch), link, res) in enumerate(zip(channels, plan.links, geo.links)):
        h = ch.h * cpe[:, None]
        h_data = h[res.data_mask]
        z = y[res.data_mask] / h_data
        noise_vars.append(ch.sigma2 / np.maximum(np.abs(h_data) ** 2, 1e-30))
        equalised.append((z, h_data, ch))
        by_modulation.setdefault(link.modulation, []).append(i)
    # Soft demapping, one call per modulation (it works symbol by symbol).
    llrs: list[np.ndarray | None] = [None] * len(equalised)
    for modulation, members in by_modulation.items():
        joint = demap_llr(np.concatenate([equalised[i][0] for i in members]),
                          np.concatenate([noise_vars[i] for i in members]), modulation)
        pos = 0
        for i in members:
            size = equalised[i][0].size * bits_per_symbol(modulation)
            llrs[i] = joint[pos:pos + size]
            pos += size
    llr_items = []
    for llr, res in zip(llrs, geo.links):
        llr_items.append((llr[: res.layout.coded_bits].reshape(res.layout.n_blocks, res.layout.n), res.layout))
    decoded = decode_groups(llr_items) if decode else [
        (np.zeros((0, lay.info_bits_per_block), np.uint8), np.zeros(0, bool)) for _, lay in llr_items]
    sent_all = _reference_symbols(plan, slot_index, reference)

    rb_power = np.mean(np.abs(y_full[1:, :][:, geo.rb_bins]) ** 2, axis=(0, 2)) / scale2
    reports = []
    taus = []
    for i, (link, res) in enumerate(zip(plan.links, geo.links)):
        z, h_data, ch = equalised[i]
        sent = sent_all[i]
        err = float(np.sum(np.abs(z - sent) ** 2))
        ref = float(np.sum(np.abs(sent) ** 2))
        evm = math.sqrt(err / ref)
        own = float(np.mean(rb_power[list(link.rbs)]))
        adjacent = _adjacent(link.rbs, plan.numerology.n_rb, rb_power, own)
        sinr_pilot = float(np.mean(np.abs(h_data) ** 2)) / max(ch.sigma2, 1e-30)
        info, ok = decoded[i]
        taus.append(ch.tau[-1] - ch.tau[0])
        reports.append(LinkReport(
            link_id=link.id, sinr_db=-20.0 * math.log10(max(evm, 1e-15)), sinr_pilot_db=_db(sinr_pilot), evm=evm,
            noise_var=ch.sigma2, rx_power_db=_db(own), crc_ok=ok, info_bits_per_block=res.layout.info_bits_per_block,
            adjacent=adjacent, channel_taps=ch.taps,
            equalized=z.astype(np.complex64) if keep_symbols else None,
            sent=np.asarray(sent, dtype=np.complex64) if keep_symbols else None))
    # A faster RX clock stretches the slot: the delay grows by ppm * 1e-6 samples per sample.
    sync.sco_ppm = float(np.mean(taus) / (sym_len * (SYMBOLS_PER_SLOT - 1)) * 1e6)
    return SlotReport(plan, slot_index, sync, reports, 10.0 * np.log10(np.maximum(rb_power, 1e-30)))


def rb_power_profile(samples: np.ndarray, plan: SlotPlan, sync: SyncResult) -> np.ndarray:
    """Mean power per RE of every RB of ``plan``'s carrier, symbols 1..13, at a given timing and CFO.

    Measures a buffer with the timing of another one (e.g. the noise floor of a capture with the transmitter off,
    at the timing found while it was on). ``samples``: complex ``[n]`` at ``plan.rate_hz``; ``sync``: from
    :func:`receive_slot` or :func:`synchronise`. Returns float64 ``[N_RB]``, linear, re ``re_scale^2`` (the units of
    :attr:`SlotReport.rb_power_db`).
    """
    geo = geometry(plan)
    x = np.asarray(samples).astype(np.complex128, copy=False)
    y_full, _ = _demodulate(x, plan, sync.start, sync.cfo_hz)
    return np.mean(np.abs(y_full[1:, :][:, geo.rb_bins]) ** 2, axis=(0, 2)) / geo.re_scale ** 2


def _adjacent(rbs: Sequence[int], n_rb: int, rb_power: np.ndarray, own: float) -> list[AdjacentPower]:
    width = len(rbs)
    lo, hi = min(rbs), max(rbs)
    out = []
    for offset in (-2, -1, 1, 2):
        if offset < 0:
            first, last = lo + offset * width, lo + (offset + 1) * width - 1
        else:
            first, last = hi + (offset - 1) * width + 1, hi + offset * width
        first, last = max(first, 0), min(last, n_rb - 1)
        if first > last:
            out.append(AdjacentPower(offset, None, None, None))
            continue
        p = float(np.mean(rb_power[first:last + 1]))
        out.append(AdjacentPower(offset, (first, last), _db(p), _db(p) - _db(own)))
    return out
