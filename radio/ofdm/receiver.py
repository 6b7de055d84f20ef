"""Slot receiver: synchronisation, channel estimation, equalisation, decoding and per-link measurements.

Per transmitter (one :class:`~radio.ofdm.slot.SlotPlan`) in a received buffer:

1. **Timing and CFO.** The preamble's body is two identical halves. Beyond 1 SCS (``max_cfo_scs``; by default
   what +-:data:`CFO_SEARCH_PPM` of the LO gives, see :func:`cfo_search_scs`) a coarse search comes first: the
   buffer, band-filtered to the transmitter's RBs widened by the search range, is autocorrelated at lag ``N/2``
   (``|P(t)|`` does not depend on the CFO), the best :data:`COARSE_CANDIDATES` peaks give candidate timings and
   the phase of ``P`` the CFO modulo 2 SCS; for each, one DFT of the first DMRS symbol is correlated with the
   known DMRS at every even bin shift of the range (circular shifts of one spectrum; the PN pilots, unlike a ZC
   preamble, have no shift that mimics a time shift), and the best candidate and shift give the coarse CFO, which
   is removed. A slot that then fails the acquisition test (step 5), or passes it by less than
   :data:`ROBUST_SEARCH_BELOW` times its threshold, while there is power on its RBs is searched once more
   (``robust``): candidates also from the band with its power spectrum flattened, and the DMRS scored by the
   phases of neighbouring pilots' products only, so that a stronger transmitter on the neighbouring RBs, which the
   widened band takes in, holds neither the peaks nor the score; the slot with the larger statistic is kept. Then (and directly when the range is +-1 SCS) the buffer, band-filtered to the transmitter's RBs,
   is correlated with the known half; the slot starts where ``|c(t)| + |c(t + N/2)|`` peaks among the positions
   from which a whole slot fits in the buffer, and the phase of ``c(t + N/2) c(t)*`` gives the remaining CFO.
   CFO is removed from the whole buffer.
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
5. **Acquisition test** (:func:`acquisition_statistic`): whether the slot was really found, from pilots the
   search did not use (DMRS symbols 8 and 12). Per RB, the received pilots' energy along the known pilot pattern
   is compared with the energy beside it; on white noise, or a signal at the wrong timing or CFO, the ratio ``D``
   is F-distributed, so the threshold is its upper :data:`SYNC_FALSE_ALARM` quantile, computed, not measured. A
   slot above it is "acquired"; below it, the power of the buffer on the transmitter's RBs is compared with the
   noise floor measured on the bins outside the carrier (an F test at the same probability): at the floor the
   slot is "no signal", above it "no sync". A slot that is not acquired is not equalised or decoded: its SINR,
   EVM, BLER and throughput are None.
6. **Measurements per link**: post-equalisation SINR from the data REs against the sent symbols
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
import scipy.ndimage
import scipy.stats

from radio.ofdm.fec import decode_groups, encode_blocks
from radio.ofdm.modulation import bits_per_symbol, demap_llr
from radio.ofdm.slot import (
    DMRS_SYMBOLS, PREAMBLE_SYMBOL, REFERENCE_SYMBOLS, SYMBOLS_PER_SLOT, SlotGeometry, SlotPlan, TxSlot, data_symbols,
    geometry, payload_bits,
)

RIDGE = 1e-5
"""Ridge weight of the delay-domain channel fit, relative to the total pilot weight."""

DENSE_FIT_ENTRIES = 1 << 17
"""Size (links x pilots x delays) up to which the channel fit evaluates its delay model with dense matrices;
wider links use DFTs of the taps, which cost less there."""

MAX_SCO_PPM = 60.0
"""Largest sample-clock offset the delay-drift search covers (ppm)."""

CFO_REFINE_SCS = 0.002
"""Residual CFO (in SCS) above which the slot is demodulated again at the refined CFO (ICI -49 dB there)."""

CFO_SEARCH_PPM = 50.0
"""Default CFO search range: +-this many ppm of the LO (two radios whose +-25 ppm references are at opposite
ends of their tolerance)."""

COARSE_CANDIDATES = 3
"""Timing candidates (peaks of the lag-N/2 autocorrelation) the coarse CFO search scores with the DMRS (the robust
search adds as many from the whitened band)."""

ROBUST_SEARCH_BELOW = 4.0
"""A wide search whose slot's acquisition statistic is below this many times its threshold (a failed or marginal
acquisition) while there is power on the transmitter's RBs is repeated with the robust coarse stage (module
docstring, step 1); the slot with the larger statistic is kept."""

SYNC_FALSE_ALARM = 1e-3
"""Probability that the acquisition test declares a slot acquired on white noise alone (per slot and plan)."""

ACQUIRED, NO_SIGNAL, NO_SYNC = "acquired", "no signal", "no sync"
"""Acquisition states of a slot: found and verified; nothing above the noise floor on the transmitter's RBs;
power there, but the slot was not found (CFO beyond the search range, another waveform, interference)."""

_GUARD_EDGE = 0.45
"""Bins up to this fraction of the sample rate from DC, beyond the carrier and the CFO range, measure the noise
floor."""


def cfo_search_scs(lo_hz: float, scs_hz: float, ppm: float = CFO_SEARCH_PPM) -> float:
    """CFO search range in subcarrier spacings that covers +-``ppm`` of a carrier at ``lo_hz`` (at least 1).

    Raises ValueError for a non-positive or non-finite LO or SCS, or a negative ppm."""
    if not (math.isfinite(lo_hz) and lo_hz > 0 and math.isfinite(scs_hz) and scs_hz > 0):
        raise ValueError(f"lo_hz = {lo_hz!r}, scs_hz = {scs_hz!r}; allowed: positive finite frequencies")
    if not (math.isfinite(ppm) and ppm >= 0):
        raise ValueError(f"ppm = {ppm!r}; allowed: a finite number >= 0")
    return max(1.0, ppm * 1e-6 * lo_hz / scs_hz)


@lru_cache(maxsize=256)
def acquisition_threshold(groups: int, rest_dof: int, false_alarm: float = SYNC_FALSE_ALARM) -> float:
    """Threshold of the acquisition statistic ``D`` (:func:`acquisition_statistic`) for ``groups`` pilot groups
    and ``rest_dof`` complex degrees of freedom left beside the pilot pattern: the upper ``false_alarm`` quantile of
    F(2 groups, 2 rest_dof), computed (exact for white Gaussian noise), not measured. Raises ValueError for counts
    below 1 or a probability outside (0, 1)."""
    if groups < 1 or rest_dof < 1 or not 0.0 < false_alarm < 1.0:
        raise ValueError(f"groups = {groups}, rest_dof = {rest_dof}, false_alarm = {false_alarm}; allowed: "
                         f"counts >= 1 and a probability in (0, 1)")
    return float(scipy.stats.f.isf(false_alarm, 2 * groups, 2 * rest_dof))


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
    status: str = ACQUIRED
    """:data:`ACQUIRED`, :data:`NO_SIGNAL` or :data:`NO_SYNC` (set by :func:`receive_slot`)."""
    detection: float | None = None
    """Acquisition statistic ``D`` (module docstring, step 5; about 1 on noise, ``1 + SNR`` per pilot times the
    pilots of a group with the slot found); None before :func:`receive_slot` tests it."""
    detection_threshold: float | None = None
    """The threshold ``D`` must exceed (false-alarm probability :data:`SYNC_FALSE_ALARM` on noise)."""
    max_cfo_hz: float = 0.0
    """The CFO range searched, +- this (Hz)."""
    rx_power_dbfs: float | None = None
    """Power of the buffer on the transmitter's RBs (dBFS: 0 for a mean ``|x|^2`` of 1)."""
    noise_floor_dbfs: float | None = None
    """Noise power in the same bandwidth, from the bins outside the carrier (dBFS); None when the sample rate
    leaves no such bins."""
    signal_present: bool = True
    """Whether the power on the transmitter's RBs is above the noise floor (F test at :data:`SYNC_FALSE_ALARM`;
    True when there is no floor to compare with)."""

    @property
    def snr_db(self) -> float | None:
        """Signal-to-noise ratio on the transmitter's RBs from the two powers (dB); None without a floor or when
        the power is not above it."""
        if self.rx_power_dbfs is None or self.noise_floor_dbfs is None:
            return None
        excess = 10.0 ** ((self.rx_power_dbfs - self.noise_floor_dbfs) / 10.0) - 1.0
        return 10.0 * math.log10(excess) if excess > 0 else None

    @property
    def acquired(self) -> bool:
        return self.status == ACQUIRED

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "cfo_hz": self.cfo_hz, "metric": self.metric, "sco_ppm": self.sco_ppm,
                "status": self.status, "detection": self.detection, "detection_threshold": self.detection_threshold,
                "max_cfo_hz": self.max_cfo_hz, "rx_power_dbfs": self.rx_power_dbfs,
                "noise_floor_dbfs": self.noise_floor_dbfs, "snr_db": self.snr_db,
                "signal_present": self.signal_present}


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
    sinr_db: float | None
    """Post-equalisation SINR from the data REs against the sent symbols, ``-20 log10(EVM)`` (dB); None when the
    slot was not acquired (as for every measurement below that needs the slot's timing)."""
    sinr_pilot_db: float | None
    """Post-equalisation SINR from the pilots: mean ``|H|^2`` over the link's data REs / ``sigma^2`` (dB)."""
    evm: float | None
    """RMS EVM of the equalised data symbols against the sent ones (ratio)."""
    noise_var: float | None
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
    status: str = ACQUIRED
    """The slot's acquisition state (:attr:`SyncResult.status`); not acquired: nothing decoded, no blocks."""

    @property
    def acquired(self) -> bool:
        return self.status == ACQUIRED

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
    def evm_db(self) -> float | None:
        return None if self.evm is None else 20.0 * math.log10(max(self.evm, 1e-15))

    def as_dict(self) -> dict[str, Any]:
        acquired = self.acquired
        return {"link_id": self.link_id, "status": self.status, "sinr_db": self.sinr_db,
                "sinr_pilot_db": self.sinr_pilot_db, "evm": self.evm, "evm_db": self.evm_db,
                "noise_var": self.noise_var, "rx_power_db": self.rx_power_db, "crc_ok": self.crc_ok.tolist(),
                "bler": self.bler if acquired else None, "delivered_bits": self.delivered_bits if acquired else None,
                "offered_bits": self.offered_bits if acquired else None,
                "adjacent": [a.as_dict() for a in self.adjacent], "channel_taps": self.channel_taps}


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

    @property
    def status(self) -> str:
        """The slot's acquisition state (:attr:`SyncResult.status`)."""
        return self.sync.status

    @property
    def acquired(self) -> bool:
        return self.sync.acquired

    def link(self, link_id: str) -> LinkReport:
        for r in self.links:
            if r.link_id == link_id:
                return r
        raise KeyError(link_id)

    def as_dict(self) -> dict[str, Any]:
        return {"slot_index": self.slot_index, "status": self.status, "sync": self.sync.as_dict(),
                "links": [l.as_dict() for l in self.links],
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


def _band_drop(plan: SlotPlan, size: int) -> np.ndarray:
    """int64 indices of the bins of a ``size``-point DFT outside the plan's own RBs (2 subcarriers of margin):
    zeroing them is a brick-wall band filter over the whole buffer, so a stronger transmitter on other RBs cannot
    lend the preamble correlation false peaks."""
    geo = geometry(plan)
    key = ("band", size)
    drop = geo.derived.get(key)
    if drop is None:
        keep = np.zeros(size, dtype=bool)
        freq = np.fft.fftfreq(size) * geo.fft_size  # in subcarrier units
        for res in geo.links:
            for rb in res.signed_bins.reshape(-1, 12):
                keep |= (freq >= rb.min() - 2.0) & (freq <= rb.max() + 2.0)
        drop = np.nonzero(~keep)[0]
        _store(geo.derived, key, drop, limit=8)
    return drop


def _template_spectrum(plan: SlotPlan, template: np.ndarray, hyp: int, size: int) -> np.ndarray:
    """complex128 ``[size]``: conjugate ``size``-point DFT of ``template`` (complex ``[N/2]``, the preamble half
    shifted by ``hyp`` subcarriers); its product with a buffer's DFT is the buffer's correlation with the template."""
    geo = geometry(plan)
    key = ("template", size, hyp, tuple(link.gain for link in plan.links))
    spectrum = geo.derived.get(key)
    if spectrum is None:
        spectrum = np.conj(scipy.fft.fft(template, size))
        _store(geo.derived, key, spectrum, limit=16)
    return spectrum


def _backoff(plan: SlotPlan) -> int:
    """Samples the DFT window starts early inside the CP: half the CP left after the WOLA ramp."""
    geo = geometry(plan)
    return max(0, (int(geo.cp.min()) - plan.wola_ramp) // 2)


def _signed_fft_freq(size: int, fft_size: int) -> np.ndarray:
    """float ``[size]``: frequency of each bin of a ``size``-point DFT in subcarrier spacings (``fft_size`` bins
    per sample rate)."""
    return np.fft.fftfreq(size) * fft_size


def _rb_intervals(plan: SlotPlan) -> np.ndarray:
    """float ``[R, 2]``: lowest and highest signed subcarrier of every RB of the plan's links."""
    geo = geometry(plan)
    rows = [res.signed_bins.reshape(-1, 12) for res in geo.links]
    grid = np.concatenate(rows)
    return np.stack([grid.min(axis=1), grid.max(axis=1)], axis=1).astype(np.float64)


def _band_mask(plan: SlotPlan, size: int, margin_scs: float) -> np.ndarray:
    """bool ``[size]``: the bins of a ``size``-point DFT within ``margin_scs`` subcarriers of the plan's RBs."""
    geo = geometry(plan)
    key = ("band_mask", size, round(margin_scs, 6))
    mask = geo.derived.get(key)
    if mask is None:
        freq = _signed_fft_freq(size, geo.fft_size)
        mask = np.zeros(size, dtype=bool)
        for lo, hi in _rb_intervals(plan):
            mask |= (freq >= lo - margin_scs) & (freq <= hi + margin_scs)
        _store(geo.derived, key, mask, limit=8)
    return mask


def _guard_mask(plan: SlotPlan, size: int, margin_scs: float) -> np.ndarray:
    """bool ``[size]``: bins beyond the carrier's occupied band plus ``margin_scs`` subcarriers (the CFO range)
    and inside :data:`_GUARD_EDGE` of the sample rate: noise only whatever the plan's timing."""
    geo = geometry(plan)
    key = ("guard_mask", size, round(margin_scs, 6))
    mask = geo.derived.get(key)
    if mask is None:
        freq = _signed_fft_freq(size, geo.fft_size)
        edge = geo.num.n_subcarriers / 2.0 + 1.0 + margin_scs
        mask = (np.abs(freq) > edge) & (np.abs(freq) < _GUARD_EDGE * geo.fft_size)
        _store(geo.derived, key, mask, limit=8)
    return mask


def _power_evidence(plan: SlotPlan, spectrum: np.ndarray, n_samples: int, margin_scs: float
                    ) -> tuple[float | None, float | None, bool]:
    """Received power on the plan's RBs and the noise floor in the same bandwidth (dBFS), and whether the first is
    above the second (F test at :data:`SYNC_FALSE_ALARM`; DFT bins of white noise are independent).

    ``spectrum``: complex ``[size]``, the DFT of the ``n_samples`` received samples zero-padded to ``size``."""
    size = spectrum.size
    power = spectrum.real ** 2 + spectrum.imag ** 2
    band = _band_mask(plan, size, 0.0)
    guard = _guard_mask(plan, size, margin_scs)
    m_band, m_guard = int(np.count_nonzero(band)), int(np.count_nonzero(guard))
    scale = 1.0 / (size * n_samples)  # Parseval: sum |X|^2 / size = sum |x|^2
    in_band = float(np.sum(power[band])) * scale
    rx_dbfs = _db(in_band) if m_band else None
    if not m_guard or not m_band:
        return rx_dbfs, None, True
    floor_per_bin = float(np.mean(power[guard]))
    floor = floor_per_bin * m_band * scale
    ratio = in_band / max(floor, 1e-300)
    # The spectrum is zero-padded: neighbouring bins are correlated; count independent bins only.
    independent = n_samples / size
    dof_band = max(1, int(m_band * independent))
    dof_guard = max(1, int(m_guard * independent))
    present = ratio > float(scipy.stats.f.isf(SYNC_FALSE_ALARM, 2 * dof_band, 2 * dof_guard))
    return rx_dbfs, _db(floor), present


def _dmrs_groups(plan: SlotPlan, symbol: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pilots of one DMRS symbol grouped by RB: bins int64 ``[G, P]`` (numpy order), conjugate unit pilot
    values complex ``[G, P]`` (0 on padding) and the pilots' energy per group float ``[G]`` (cached)."""
    geo = geometry(plan)
    key = ("dmrs_groups", symbol)
    cached = geo.derived.get(key)
    if cached is None:
        groups = []
        for res in geo.links:
            mask = res.pilot_mask[symbol].reshape(-1, 12)
            for rb_bins, m in zip(res.rb_bins, mask):
                groups.append(rb_bins[m])
        width = max(g.size for g in groups)
        bins = np.zeros((len(groups), width), dtype=np.int64)
        refs = np.zeros((len(groups), width), dtype=np.complex128)
        for i, g in enumerate(groups):
            bins[i, :g.size] = g
            refs[i, :g.size] = np.conj(geo.pilots[symbol, g])
        cached = (bins, refs, np.sum(np.abs(refs) ** 2, axis=1))
        geo.derived[key] = cached
    return cached


def acquisition_statistic(y_full: np.ndarray, plan: SlotPlan) -> tuple[float, float]:
    """The acquisition statistic ``D`` of a demodulated slot and its threshold (module docstring, step 5).

    ``y_full``: complex ``[14, N]``, the DFT of the slot's symbols at the found timing and CFO. Per group (one RB
    of DMRS symbol 8 or 12, pilots ``x``, received ``y``) the received energy splits into its projection on the
    pilot pattern, ``|sum y x*|^2 / sum |x|^2``, and the rest; ``D`` is the mean projection per group over the
    mean rest per remaining degree of freedom. On white noise (and on a signal received at the wrong timing or
    CFO, which does not follow the pattern) the two are independent chi-squares and ``D`` is F(2 G, 2 G (P - 1))
    distributed; with the slot found, ``D`` is about ``1 + P SNR``. Returns ``(D, threshold)``; ``D > threshold``
    declares the slot found, with probability :data:`SYNC_FALSE_ALARM` on noise."""
    projection, rest, groups, dof = 0.0, 0.0, 0, 0
    for symbol in DMRS_SYMBOLS[1:]:
        bins, refs, energy = _dmrs_groups(plan, symbol)
        y = y_full[symbol, bins]
        valid = refs != 0
        along = np.abs(np.sum(y * refs, axis=1)) ** 2 / energy
        projection += float(np.sum(along))
        rest += float(np.sum(np.where(valid, y.real ** 2 + y.imag ** 2, 0.0))) - float(np.sum(along))
        groups += bins.shape[0]
        dof += int(np.count_nonzero(valid)) - bins.shape[0]
    statistic = (projection / groups) / max(rest / max(dof, 1), 1e-300)
    return statistic, acquisition_threshold(groups, max(dof, 1))


def _whitening(spectrum: np.ndarray, band: np.ndarray, bins_per_scs: int) -> np.ndarray:
    """Weights ``1 / sqrt(S)`` over ``band`` (``S``: the buffer's power spectrum averaged over one subcarrier
    spacing), which give every subcarrier of the band the same power."""
    width = max(int(bins_per_scs), 1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    smooth = scipy.ndimage.uniform_filter1d(power, width, mode="wrap")
    floor = max(float(np.mean(smooth[band])) * 1e-6, 1e-300) if np.any(band) else 1e-300
    return np.where(band, 1.0 / np.sqrt(np.maximum(smooth, floor)), 0.0)


def _coarse_cfo(raw: np.ndarray, spectrum: np.ndarray, plan: SlotPlan, max_cfo_scs: float,
                robust: bool = False) -> float:
    """Coarse CFO (Hz) of ``plan``'s slot in ``raw`` within +-``max_cfo_scs`` subcarriers (module docstring,
    step 1): lag-N/2 autocorrelation of the band-filtered buffer for timing candidates and the CFO modulo 2 SCS,
    then the even bin shift whose DMRS correlate best. ``spectrum``: the ``size``-point DFT of ``raw``."""
    geo = geometry(plan)
    n = geo.fft_size
    half = n // 2
    fs = plan.rate_hz
    scs = fs / n
    cp0 = int(geo.cp[0])
    size = spectrum.size
    band = _band_mask(plan, size, max_cfo_scs + 2.0)
    last = raw.size - geo.slot_length
    t = np.arange(cp0, last + cp0 + 1)
    starts: list[int] = []
    fractions: list[float] = []
    # The band filtered as received, then with its power spectrum flattened: a stronger transmitter on the
    # neighbouring RBs, which the widened band takes in, dominates the first and not the second.
    for weights in ((band, _whitening(spectrum, band, size // n)) if robust else (band,)):
        x = scipy.fft.ifft(np.where(band, spectrum * weights, 0))[: raw.size]
        # P(t) = sum_{i < N/2} x[t + i + N/2] x*[t + i]: its magnitude is the same at any CFO.
        lagged = np.concatenate([[0.0], np.cumsum(x[half:] * np.conj(x[:-half]))])
        energy = np.concatenate([[0.0], np.cumsum(x.real ** 2 + x.imag ** 2)])
        p = lagged[t + half] - lagged[t]
        e1 = energy[t + half] - energy[t]
        e2 = energy[t + n] - energy[t + half]
        metric = (p.real ** 2 + p.imag ** 2) / np.maximum(e1 * e2, 1e-300)
        for _ in range(COARSE_CANDIDATES):
            i = int(np.argmax(metric))
            if metric[i] <= 0:
                break
            start = int(t[i]) - cp0
            metric[max(0, i - n):i + n] = -1.0
            if any(abs(start - other) <= cp0 for other in starts):  # the same preamble's plateau
                continue
            starts.append(start)
            fractions.append(float(np.angle(p[i])) * fs / (2.0 * np.pi * half))
    if not starts:
        return 0.0
    bins, refs, _ = _dmrs_groups(plan, DMRS_SYMBOLS[0])
    steps = int(math.ceil((max_cfo_scs + 1.0) / 2.0))
    shifts = 2 * np.arange(-steps, steps + 1)
    idx = (bins[None, :, :] + shifts[:, None, None]) % n  # [H, G, P]
    valid = refs != 0
    pairs = valid[:, 1:] & valid[:, :-1]
    l = DMRS_SYMBOLS[0]
    # The window starts where the useful part would: a candidate early by up to a CP (the autocorrelation's
    # plateau) keeps it inside the CP, free of ISI.
    offset = int(geo.symbol_start[l] + geo.cp[l])
    best = (-1.0, 0.0)
    for start, frac in zip(starts, fractions):
        begin = start + offset
        if begin < 0 or begin + n > raw.size:
            continue
        seg = raw[begin:begin + n] * np.exp(-2j * np.pi * frac * np.arange(n) / fs)
        z = np.fft.fft(seg)[idx] * refs  # [H, G, P]
        # Products of neighbouring pilots of an RB: the channel's phase and the timing error's phase ramp are the
        # same in every product, so they add coherently over the whole band at the right shift only.
        if robust:
            # Only their phases: a few strong bins (a stronger transmitter on the neighbouring RBs, where a wrong
            # shift lands) would otherwise make up most of the sum at any shift.
            z = z / np.maximum(np.abs(z), 1e-300)
            products = np.where(pairs, z[:, :, 1:] * np.conj(z[:, :, :-1]), 0)
            score = np.abs(np.sum(products, axis=(1, 2))) / max(int(np.count_nonzero(pairs)), 1)
        else:
            products = np.where(pairs, z[:, :, 1:] * np.conj(z[:, :, :-1]), 0)
            energy = np.sum(z.real ** 2 + z.imag ** 2, axis=(1, 2))
            score = np.abs(np.sum(products, axis=(1, 2))) / np.maximum(energy, 1e-300)
        h = int(np.argmax(score))
        if score[h] > best[0]:
            best = (float(score[h]), frac + float(shifts[h]) * scs)
    return best[1]


def synchronise(samples: np.ndarray, plan: SlotPlan, *, max_cfo_scs: float = 1.0,
                robust: bool = False) -> SyncResult:
    """Find ``plan``'s slot in ``samples`` and estimate its CFO (see the module docstring, step 1).

    ``samples``: complex, shape ``[n]`` with ``n >= slot_length``. ``max_cfo_scs``: largest |CFO| searched, in
    subcarrier spacings (>= 1; above 1 the coarse search runs first; :func:`cfo_search_scs` gives the range for a
    ppm tolerance). Fills the power evidence of the returned :class:`SyncResult`; the acquisition test needs the
    demodulated slot and is :func:`receive_slot`'s. Raises ValueError when the buffer is shorter than a slot or
    the range is below 1 or not finite.
    """
    geo = geometry(plan)
    raw = np.asarray(samples, dtype=np.complex128)
    n = geo.fft_size
    half = n // 2
    if raw.size < geo.slot_length:
        raise ValueError(f"received {raw.size} samples; a slot needs at least {geo.slot_length}")
    if not (math.isfinite(max_cfo_scs) and max_cfo_scs >= 1.0):
        raise ValueError(f"max_cfo_scs = {max_cfo_scs!r}; allowed: a finite number >= 1 (subcarrier spacings)")
    body = _preamble_body(plan)[:half]
    fs = plan.rate_hz
    cp0 = int(geo.cp[0])
    n_received = raw.size
    # A slot may overhang the buffer end by the DFT back-off: the last window still ends inside the buffer.
    slack = _backoff(plan)
    raw = np.concatenate([raw, np.zeros(slack, dtype=np.complex128)])
    last = raw.size - geo.slot_length  # latest slot start that still fits
    # One DFT of the buffer serves the power evidence, the coarse search and the correlation (circular over
    # ``size``, which no index used below reaches around).
    size = scipy.fft.next_fast_len(raw.size)
    spectrum = scipy.fft.fft(raw, size)
    rx_dbfs, floor_dbfs, present = _power_evidence(plan, spectrum, n_received, max_cfo_scs)
    coarse = 0.0
    if max_cfo_scs > 1.0:
        coarse = _coarse_cfo(raw, spectrum, plan, max_cfo_scs, robust)
        if coarse:
            raw = raw * np.exp(-2j * np.pi * coarse * np.arange(raw.size) / fs)
            spectrum = scipy.fft.fft(raw, size)
    spectrum[_band_drop(plan, size)] = 0
    x = scipy.fft.ifft(spectrum)[: raw.size]
    t = np.arange(cp0, last + cp0 + 1)
    # c[t] = sum_i x[t + i] conj(body[i]); the useful part starts at slot start + cp0
    c = scipy.fft.ifft(spectrum * _template_spectrum(plan, body, 0, size))
    metric = np.abs(c[t]) + np.abs(c[t + half])
    i = int(np.argmax(metric))
    t_useful = int(t[i])
    # The phase from the unfiltered buffer: the filter edges would bias it.
    first = np.vdot(body, raw[t_useful:t_useful + half])
    second = np.vdot(body, raw[t_useful + half:t_useful + n])
    phase = float(np.angle(second * np.conj(first)))
    cfo = coarse + phase * fs / (2.0 * np.pi * half)
    e = float(np.sum(np.abs(x[t_useful:t_useful + n]) ** 2))
    norm = math.sqrt(max(e, 1e-30) * np.sum(np.abs(body) ** 2) * 2.0)
    return SyncResult(start=t_useful - cp0, cfo_hz=float(cfo), metric=float(min(float(metric[i]) / norm, 1.0)),
                      max_cfo_hz=max_cfo_scs * plan.numerology.scs_hz, rx_power_dbfs=rx_dbfs,
                      noise_floor_dbfs=floor_dbfs, signal_present=present)


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
def _fit_operator(n_fft: int, w: int, weights_bytes: bytes, bins_bytes: bytes) -> tuple[np.ndarray, float]:
    """Inverse of the weighted ridge normal matrix (complex128 ``[2w+1, 2w+1]``, delays ``-w..w``) and the
    hat-matrix trace of one pilot set and window."""
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
    return scipy.linalg.cho_solve(chol, np.eye(d.size, dtype=np.complex128)), trace


@dataclass
class _ChannelEstimate:
    """Every link's channel estimate in one slot (``L`` links, ``S`` subcarriers of the widest link)."""

    h: np.ndarray
    """complex ``[L, 14, S]``: channel times the link gain, per symbol and subcarrier (beyond a link's own
    subcarriers: padding, not zero)."""
    sigma2: np.ndarray
    """float ``[L]``: noise variance per RE from the pilot residuals."""
    taps: np.ndarray
    """int64 ``[L]``: delay taps of the frequency fit."""
    tau: np.ndarray
    """float ``[L, 14]``: delay (samples) of each symbol relative to the slot's middle (sample-clock drift)."""
    phase_slope: np.ndarray
    """float ``[L]``: common-phase drift (rad per symbol) over the reference symbols: residual CFO."""
    n_pilots: np.ndarray
    """float ``[L]``: pilots of the reference symbols."""


def _refine_peaks(j: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row of ``j`` (float ``[L, G]``, the drift objective sampled on ``grid`` float ``[G]``), the delay drift
    (samples per symbol, a sample-clock offset) maximising it: ``sum over pairs of reference symbols
    |sum_k h_b(k) h_a(k)* exp(j 2 pi k d (l_b - l_a) / N)|`` over the pilots common to both (the whole band's phase
    slope, far less noisy than neighbouring-pilot phase differences), refined by a parabola through the grid
    maximum. Returns float ``[L]``."""
    i = np.argmax(j, axis=1)
    rows = np.arange(j.shape[0])
    lo = j[rows, np.maximum(i - 1, 0)]
    mid = j[rows, i]
    hi = j[rows, np.minimum(i + 1, grid.size - 1)]
    denom = lo - 2 * mid + hi
    # A maximum on the grid's edge, or a flat top, is not refined.
    refine = (i > 0) & (i < grid.size - 1) & (denom < 0)
    shift = np.where(refine, 0.5 * (lo - hi) / np.where(refine, denom, -1.0), 0.0)
    return grid[i] + shift * (grid[1] - grid[0])


def _phase_interpolation() -> np.ndarray:
    """float ``[14, R]``: the common phase of every symbol as a linear function of those of the ``R`` reference
    symbols: linear between them, continued along the last two after the last, held before the first."""
    lr = np.array(REFERENCE_SYMBOLS, dtype=np.float64)
    out = np.zeros((SYMBOLS_PER_SLOT, lr.size))
    for s in range(SYMBOLS_PER_SLOT):
        if s <= lr[0]:
            out[s, 0] = 1.0
            continue
        i = min(int(np.searchsorted(lr, s, side="right")) - 1, lr.size - 2)
        f = (s - lr[i]) / (lr[i + 1] - lr[i])
        out[s, i], out[s, i + 1] = 1.0 - f, f
    return out


_PHASE_INTERPOLATION = _phase_interpolation()
_SLOPE_ROW = np.linalg.pinv(np.vstack([np.ones(len(REFERENCE_SYMBOLS)), REFERENCE_SYMBOLS]).T)[1]
"""float ``[R]``: least-squares slope (per symbol) of a line through values at the reference symbols."""
_SYMBOL_FROM_MIDDLE = np.arange(SYMBOLS_PER_SLOT) - float(np.mean(REFERENCE_SYMBOLS))
"""float ``[14]``: each symbol's distance (symbols) from the reference symbols' centre, where the drift is 0."""


@dataclass
class _PlanFit:
    """Everything of a plan's channel estimation that depends on its geometry alone, every link's arrays padded to
    common shapes so all links are estimated at once (cached per geometry).

    Shapes: ``L`` links, ``R`` reference symbols, ``P`` pilots per reference symbol (the most any link has; fewer
    are padded with zero weight), ``Q`` drift pairs and ``C`` pilots common to a pair (padded with zero rows),
    ``G`` drift grid points, ``W`` window candidates, ``D = 2 w_max + 1`` delays ``-w_max..w_max``, ``S``
    subcarriers (the most any link has).
    """

    re_gather: np.ndarray
    """int64 ``[L, 14, S]``: flat index of each of the link's REs into the ``[14, N]`` DFT output (0 on padding)."""
    x_pilot: np.ndarray
    """complex ``[L, 14, S]``: unit-gain pilot values, 0 elsewhere."""
    phase_mask: np.ndarray
    """bool ``[L, 14, S]``: pilots outside the preamble (the per-symbol common phase comes from them)."""
    data_mask: np.ndarray
    """bool ``[L, 14, S]``: data REs."""
    data_offsets: np.ndarray
    """int64 ``[L + 1]``: where each link's data REs start in all links' data REs (in link order)."""
    gather: np.ndarray
    """int64 ``[L, R, P]``: flat index of each pilot into the ``[14, N]`` DFT output (0 on padding)."""
    x: np.ndarray
    """complex ``[L, R, P]``: pilot values (1 on padding)."""
    valid: np.ndarray
    """float ``[L, R, P]``: 1 on pilots, 0 on padding."""
    k: np.ndarray
    """float ``[L, R, P]``: signed subcarrier index of each pilot."""
    wts: np.ndarray
    """float ``[L, R*P]``: fit weight ``|x|^2`` of each pilot (0 on padding)."""
    n_p: np.ndarray
    """float ``[L]``: pilots of the reference symbols."""
    pair_a: np.ndarray
    """int64 ``[L, Q, C]``: index into the flattened ``[R*P]`` pilots of the earlier symbol of each drift pair..."""
    pair_b: np.ndarray
    """... and of the later one."""
    drift_mats: np.ndarray
    """complex ``[L, Q, G, C]``: ``exp(j 2 pi d k (l_b - l_a) / N)`` over the drift grid (0 on padding)."""
    has_drift: np.ndarray
    """bool ``[L]``: the link has drift pairs (else its drift is 0)."""
    grid: np.ndarray
    """float ``[G]``: drift grid (samples per symbol)."""
    windows: list[int]
    """``w`` of each window candidate (each link has the first ones, as many as its pilot count allows)."""
    inverses: list[np.ndarray]
    """Per window candidate, complex ``[L, 2w+1, 2w+1]``: inverse ridge normal matrix (0 for a link without the
    candidate)."""
    traces: np.ndarray
    """float ``[L, W]``: hat-matrix trace of each window candidate (1 on padding)."""
    usable: np.ndarray
    """bool ``[L, W]``: the candidate exists for the link."""
    taps: np.ndarray
    """int64 ``[L, W]``: delay taps ``2 w + 1`` of each candidate."""
    delay_bins: np.ndarray
    """int64 ``[D]``: DFT bin of each delay ``-w_max..w_max``."""
    pilot_bins: np.ndarray
    """int64 ``[L, R*P]``: DFT bin of each pilot (0 on padding)."""
    sub_bins: np.ndarray
    """int64 ``[L, S]``: DFT bin of every subcarrier of the link (0 on padding)."""
    delays: np.ndarray | None
    """complex ``[L, R*P, D]``: ``exp(-j 2 pi k d / N)`` at the pilots, for plans whose links are narrow enough
    (:data:`DENSE_FIT_ENTRIES`); None otherwise, and the fit goes through DFTs of the taps instead..."""
    correlators: np.ndarray | None
    """... its complex conjugate..."""
    sub_delays: np.ndarray | None
    """... and complex ``[L, S, D]``, the same at every subcarrier of the link."""
    signed: np.ndarray
    """float ``[L, S]``: signed subcarrier index of every subcarrier of the link (0 on padding)."""


def _plan_fit(geo: SlotGeometry) -> _PlanFit:
    """The geometry-only part of the channel estimation of every link of ``geo`` (cached in ``geo.derived``)."""
    max_w = max(1, int(geo.cp.min()))
    max_drift = MAX_SCO_PPM * 1e-6 * geo.slot_length / SYMBOLS_PER_SLOT
    key = ("plan_fit", max_w, max_drift)
    fit = geo.derived.get(key)
    if fit is not None:
        return fit
    n_fft = geo.fft_size
    n_links, n_refs = len(geo.links), len(REFERENCE_SYMBOLS)
    grid = np.linspace(-max_drift, max_drift, 81)
    refs, pairs, windows = [], [], []
    for res in geo.links:
        xp = np.where(res.pilot_mask, geo.pilots[:, res.bins], 0)
        link_refs = [(l, res.bins[res.pilot_mask[l]], res.signed_bins[res.pilot_mask[l]], xp[l, res.pilot_mask[l]])
                     for l in REFERENCE_SYMBOLS]
        refs.append(link_refs)
        link_pairs = []
        for ia_ref in range(n_refs):
            for ib_ref in range(ia_ref + 1, n_refs):
                common, ia, ib = np.intersect1d(link_refs[ia_ref][2], link_refs[ib_ref][2], assume_unique=True,
                                                return_indices=True)
                if common.size >= 4:
                    link_pairs.append((ia_ref, ib_ref, ia, ib, common * (REFERENCE_SYMBOLS[ib_ref]
                                                                         - REFERENCE_SYMBOLS[ia_ref])))
        pairs.append(link_pairs)
        k_all = np.concatenate([r[2] for r in link_refs]).astype(np.int64)
        w_all = np.concatenate([np.abs(r[3]) ** 2 for r in link_refs]).astype(np.float64)
        link_windows = []
        for w in _window_candidates(max_w):
            if 2 * w + 1 > k_all.size // 2 and w > 0:
                break
            link_windows.append((w, *_fit_operator(n_fft, w, w_all.tobytes(), k_all.tobytes())))
        windows.append(link_windows)

    n_per_ref = max(r[1].size for link_refs in refs for r in link_refs)
    n_pairs = max(1, max(len(p) for p in pairs))
    n_common = max([1] + [p[2].size for link_pairs in pairs for p in link_pairs])
    n_windows = max(len(w) for w in windows)
    w_max = max(w[-1][0] for w in windows)
    n_sub = max(res.bins.size for res in geo.links)
    d = np.arange(-w_max, w_max + 1)

    gather = np.zeros((n_links, n_refs, n_per_ref), dtype=np.int64)
    x = np.ones((n_links, n_refs, n_per_ref), dtype=np.complex128)
    valid = np.zeros((n_links, n_refs, n_per_ref))
    k = np.zeros((n_links, n_refs, n_per_ref))
    pair_a = np.zeros((n_links, n_pairs, n_common), dtype=np.int64)
    pair_b = np.zeros_like(pair_a)
    drift_mats = np.zeros((n_links, n_pairs, grid.size, n_common), dtype=np.complex128)
    candidates = _window_candidates(max_w)[:n_windows]
    inverses = [np.zeros((n_links, 2 * w + 1, 2 * w + 1), dtype=np.complex128) for w in candidates]
    traces = np.ones((n_links, n_windows))
    usable = np.zeros((n_links, n_windows), dtype=bool)
    taps = np.ones((n_links, n_windows), dtype=np.int64)
    signed = np.zeros((n_links, n_sub))
    re_gather = np.zeros((n_links, SYMBOLS_PER_SLOT, n_sub), dtype=np.int64)
    x_pilot = np.zeros((n_links, SYMBOLS_PER_SLOT, n_sub), dtype=np.complex128)
    phase_mask = np.zeros((n_links, SYMBOLS_PER_SLOT, n_sub), dtype=bool)
    data_mask = np.zeros_like(phase_mask)
    for j, res in enumerate(geo.links):
        nsc = res.bins.size
        re_gather[j, :, :nsc] = np.arange(SYMBOLS_PER_SLOT)[:, None] * n_fft + res.bins
        x_pilot[j, :, :nsc] = np.where(res.pilot_mask, geo.pilots[:, res.bins], 0)
        phase_mask[j, :, :nsc] = res.pilot_mask
        phase_mask[j, PREAMBLE_SYMBOL] = False
        data_mask[j, :, :nsc] = res.data_mask
        for r, (l, bins, kk, xx) in enumerate(refs[j]):
            gather[j, r, :bins.size] = l * n_fft + bins
            x[j, r, :bins.size] = xx
            valid[j, r, :bins.size] = 1.0
            k[j, r, :bins.size] = kk
        for q, (ia_ref, ib_ref, ia, ib, kd) in enumerate(pairs[j]):
            pair_a[j, q, :ia.size] = ia_ref * n_per_ref + ia
            pair_b[j, q, :ib.size] = ib_ref * n_per_ref + ib
            drift_mats[j, q, :, :kd.size] = np.exp(2j * np.pi * np.outer(grid, kd.astype(np.float64)) / n_fft)
        for c, (w, inverse, trace) in enumerate(windows[j]):
            inverses[c][j] = inverse
            traces[j, c] = trace
            usable[j, c] = True
            taps[j, c] = 2 * w + 1
        signed[j, :res.bins.size] = res.signed_bins
    dense = n_links * k[0].size * d.size <= DENSE_FIT_ENTRIES
    delays = np.exp(-2j * np.pi * k.reshape(n_links, -1, 1) * d / n_fft) if dense else None
    fit = _PlanFit(
        re_gather=re_gather, x_pilot=x_pilot, phase_mask=phase_mask, data_mask=data_mask,
        data_offsets=np.concatenate([[0], np.cumsum([res.n_data for res in geo.links])]).astype(np.int64),
        gather=gather, x=x, valid=valid, k=k,
        wts=(valid * np.abs(x) ** 2).reshape(n_links, -1), n_p=valid.sum(axis=(1, 2)),
        pair_a=pair_a, pair_b=pair_b, drift_mats=drift_mats,
        has_drift=np.array([bool(p) for p in pairs]) & (max_drift > 0), grid=grid,
        windows=candidates, inverses=inverses, traces=traces, usable=usable, taps=taps, delay_bins=d % n_fft,
        pilot_bins=k.reshape(n_links, -1).astype(np.int64) % n_fft, sub_bins=signed.astype(np.int64) % n_fft,
        delays=delays, correlators=np.conj(delays) if dense else None,
        sub_delays=np.exp(-2j * np.pi * signed[:, :, None] * d / n_fft) if dense else None, signed=signed)
    geo.derived[key] = fit
    return fit


def _estimate_link_channels(y_full: np.ndarray, geo: SlotGeometry) -> _ChannelEstimate:
    """Every link's channel estimate (module docstring, step 3), all links and window candidates at once.

    ``y_full``: complex128 ``[14, N]``, the unitary DFT of the slot's symbols (:func:`_dft_symbols`); links in the
    plan's order.
    """
    fit = _plan_fit(geo)
    n_fft = geo.fft_size
    n_links = fit.k.shape[0]
    ref_rows = list(REFERENCE_SYMBOLS)
    # Least-squares pilot values (padding 0).
    ls = y_full.reshape(-1)[fit.gather] / geo.re_scale / fit.x * fit.valid
    flat = ls.reshape(n_links, -1)
    rows = np.arange(n_links)[:, None, None]
    products = flat[rows, fit.pair_b] * np.conj(flat[rows, fit.pair_a])
    objective = np.abs(np.matmul(fit.drift_mats, products[..., None])[..., 0]).sum(axis=1)
    drift = np.where(fit.has_drift, _refine_peaks(objective, fit.grid), 0.0)
    tau = drift[:, None] * _SYMBOL_FROM_MIDDLE  # [L, 14]
    # The delay drift taken out of every reference symbol's pilots, then its common phase.
    untilt = np.exp(2j * np.pi * fit.k * tau[:, ref_rows, None] / n_fft)
    straight = ls * untilt
    unwrapped = np.unwrap(np.angle(straight.sum(axis=2)), axis=1)  # [L, R]
    phase_slope = unwrapped @ _SLOPE_ROW
    phi = unwrapped @ _PHASE_INTERPOLATION.T  # [L, 14]
    v = (straight * np.exp(-1j * phi[:, ref_rows, None])).reshape(n_links, -1)  # [L, R*P]
    # Delay-limited fit of every window candidate: coefficients from the weighted correlation with each delay,
    # fitted values at the pilots, then GCV to pick the window.
    wv = fit.wts * v
    if fit.delays is not None:
        rhs = np.matmul(wv[:, None, :], fit.correlators)[:, 0, :]  # [L, D]
    else:
        # sum_p w_p v_p exp(+j 2 pi k_p d / N) of all delays at once: an inverse DFT of the weighted pilots.
        flat_bins = (np.arange(n_links)[:, None] * n_fft + fit.pilot_bins).reshape(-1)
        acc = np.bincount(flat_bins, weights=wv.real.reshape(-1), minlength=n_links * n_fft) \
            + 1j * np.bincount(flat_bins, weights=wv.imag.reshape(-1), minlength=n_links * n_fft)
        rhs = (np.fft.ifft(acc.reshape(n_links, n_fft), axis=1) * n_fft)[:, fit.delay_bins]
    w_max = (fit.delay_bins.size - 1) // 2
    coefs = np.zeros((n_links, len(fit.windows), fit.delay_bins.size), dtype=np.complex128)  # [L, W, D]
    for c, (w, inverse) in enumerate(zip(fit.windows, fit.inverses)):
        inside = slice(w_max - w, w_max + w + 1)
        coefs[:, c, inside] = np.matmul(inverse, rhs[:, inside, None])[..., 0]
    if fit.delays is not None:
        fitted = np.matmul(fit.delays, coefs.transpose(0, 2, 1))  # [L, R*P, W]
    else:
        taps_all = np.zeros((n_links, len(fit.windows), n_fft), dtype=np.complex128)
        taps_all[:, :, fit.delay_bins] = coefs
        spectra = np.fft.fft(taps_all, axis=2)  # [L, W, N]
        fitted = np.take_along_axis(spectra, fit.pilot_bins[:, None, :], axis=2).transpose(0, 2, 1)
    rss = np.sum(fit.wts[:, :, None] * np.abs(v[:, :, None] - fitted) ** 2, axis=1)  # [L, W]
    n_p = fit.n_p[:, None]
    dof = np.maximum(n_p - fit.traces, 1.0)
    gcv = np.where(fit.usable, rss / n_p / (dof / n_p) ** 2, np.inf)
    best = np.argmin(gcv, axis=1)
    links = np.arange(n_links)
    if fit.sub_delays is not None:
        g = np.matmul(fit.sub_delays, coefs[links, best][:, :, None])[..., 0]  # [L, S]
    else:
        g = np.take_along_axis(spectra[links, best], fit.sub_bins, axis=1)
    # The delay phase ramp of each symbol is the previous symbol's times that of one symbol's drift: a running
    # product instead of a complex exponential per RE.
    ramps = np.empty((n_links, SYMBOLS_PER_SLOT, fit.signed.shape[1]), dtype=np.complex128)
    ramps[:, 0] = np.exp(-2j * np.pi * fit.signed * tau[:, :1] / n_fft)
    ramps[:, 1:] = np.exp(-2j * np.pi * fit.signed * drift[:, None] / n_fft)[:, None, :]
    rot = np.cumprod(ramps, axis=1) * np.exp(1j * phi)[:, :, None]
    sigma2 = rss[links, best] / np.maximum(fit.n_p - fit.traces[links, best] - 4.0, 1.0)
    return _ChannelEstimate(g[:, None, :] * rot, sigma2, fit.taps[links, best], tau, phase_slope, fit.n_p)


# ---------------------------------------------------------------------------------------------------------------
# The receiver


def _reference_symbols(plan: SlotPlan, slot_index: int, reference: TxSlot | None) -> list[np.ndarray]:
    if reference is not None:
        if reference.plan != plan or reference.slot_index != slot_index:
            raise ValueError("reference TxSlot does not match the plan/slot being received")
        return [t.data_symbols for t in reference.links]
    geo = geometry(plan)
    return [data_symbols(encode_blocks(payload_bits(plan, slot_index, i), res.layout), res.layout, link.modulation)
            for i, (link, res) in enumerate(zip(plan.links, geo.links))]


def _db(x: float) -> float:
    return 10.0 * math.log10(x) if x > 0 else float("-inf")


def _demodulate(x: np.ndarray, plan: SlotPlan, start: int, cfo_hz: float
                ) -> tuple[np.ndarray, np.ndarray, _ChannelEstimate]:
    """DFT of the 14 symbols at ``start`` with ``cfo_hz`` removed, and every link's channel estimate.

    Returns ``y_full`` (complex128 ``[14, N]``, unitary-DFT units), every link's REs over ``re_scale`` (complex128
    ``[L, 14, S]``, padded as :class:`_PlanFit` says) and the :class:`_ChannelEstimate`.
    """
    geo = geometry(plan)
    y_full = _dft_symbols(x, plan, start, cfo_hz)
    y = y_full.reshape(-1)[_plan_fit(geo).re_gather] / geo.re_scale
    return y_full, y, _estimate_link_channels(y_full, geo)


def _dft_symbols(x: np.ndarray, plan: SlotPlan, start: int, cfo_hz: float) -> np.ndarray:
    """complex128 [14, N]: the unitary DFT of the 14 symbols of the slot at ``start``, ``cfo_hz`` removed, with the
    window back-off's phase ramp taken out."""
    geo = geometry(plan)
    n = geo.fft_size
    backoff = _backoff(plan)
    seg = x[start: start + geo.slot_length]
    if seg.size < geo.slot_length:
        seg = np.concatenate([seg, np.zeros(geo.slot_length - seg.size, dtype=np.complex128)])
    key = ("dft_windows", backoff)
    cached = geo.derived.get(key)
    if cached is None:
        starts = geo.symbol_start + geo.cp - backoff
        signed_all = np.fft.fftfreq(n, 1.0 / n).astype(np.int64)
        cached = geo.derived[key] = (starts, np.exp(2j * np.pi * signed_all * backoff / n)[None, :])
    starts, ramp = cached
    # The CFO's phase at sample start + s_l + m is that at the window start s_l times that of m: 14 + N complex
    # exponentials instead of one per sample.
    w = -2.0 * np.pi * cfo_hz / plan.rate_hz
    derotate = np.exp(1j * w * (starts + start))[:, None] * np.exp(1j * w * np.arange(n))[None, :]
    y_full = np.fft.fft(seg[starts[:, None] + np.arange(n)] * derotate, axis=1) / math.sqrt(n)
    y_full *= ramp
    return y_full


def receive_slot(samples: np.ndarray, plan: SlotPlan, slot_index: int = 0, *, reference: TxSlot | None = None,
                 max_cfo_scs: float | None = None, lo_hz: float | None = None, keep_symbols: bool = False,
                 decode: bool = True) -> SlotReport:
    """Receive and measure one slot of ``plan`` in ``samples``.

    ``samples``: complex64, shape ``[n]``, at ``plan.rate_hz``, containing a whole slot anywhere (a cyclic
    transmission received for two slot lengths always does). ``reference``: the :class:`TxSlot` that was sent, if
    at hand (otherwise the payload is regenerated from the plan's seed). ``max_cfo_scs``: CFO search range in
    subcarrier spacings; None: +-:data:`CFO_SEARCH_PPM` of ``lo_hz`` (the receiver's LO, Hz) when given, else 1.
    ``keep_symbols``: keep the equalised and sent data symbols in each :class:`LinkReport`. ``decode=False``
    measures without LDPC decoding (no CRC results: ``crc_ok`` is empty, BLER is NaN, nothing is delivered).
    Returns a :class:`SlotReport`; when the acquisition test fails (module docstring, step 5) its links carry no
    SINR, EVM or blocks.
    """
    geo = geometry(plan)
    x = np.asarray(samples).astype(np.complex128, copy=False)
    if max_cfo_scs is None:
        max_cfo_scs = cfo_search_scs(lo_hz, plan.numerology.scs_hz) if lo_hz is not None else 1.0
    fs = plan.rate_hz
    sym_len = geo.slot_length / SYMBOLS_PER_SLOT
    sync = synchronise(x, plan, max_cfo_scs=max_cfo_scs)
    sync.backoff = _backoff(plan)
    y_full, y, est = _demodulate(x, plan, sync.start, sync.cfo_hz)
    sync.detection, sync.detection_threshold = acquisition_statistic(y_full, plan)
    if sync.detection <= ROBUST_SEARCH_BELOW * sync.detection_threshold and sync.signal_present and max_cfo_scs > 1.0:
        # Power on the transmitter's RBs but no clear slot where the coarse search looked: a stronger transmitter
        # on the neighbouring RBs can take its candidates (and, structured as it is, pass the test barely at a
        # wrong offset). Search once more with the robust coarse stage and keep the clearer slot.
        again = synchronise(x, plan, max_cfo_scs=max_cfo_scs, robust=True)
        again.backoff = sync.backoff
        y_again, y_data, est_again = _demodulate(x, plan, again.start, again.cfo_hz)
        again.detection, again.detection_threshold = acquisition_statistic(y_again, plan)
        if again.detection > max(sync.detection, again.detection_threshold):
            sync, y_full, y, est = again, y_again, y_data, est_again
    if not sync.detection > sync.detection_threshold:
        sync.status = NO_SYNC if sync.signal_present else NO_SIGNAL
        return _unacquired_report(plan, slot_index, sync, y_full)
    # The preamble's CFO comes from one symbol; the phase drift over the reference symbols (12 symbols apart) is
    # a far finer estimate. Where it says the preamble was off by enough to cause ICI (phase noise in the
    # preamble, low SNR), demodulate again at the refined CFO.
    weights = est.n_pilots
    residual_hz = float(np.sum(weights * est.phase_slope) / np.sum(weights)) * fs / (2.0 * np.pi * sym_len)
    if abs(residual_hz) > CFO_REFINE_SCS * plan.numerology.scs_hz:
        sync.cfo_hz += residual_hz
        y_full, y, est = _demodulate(x, plan, sync.start, sync.cfo_hz)
        residual_hz = float(np.sum(weights * est.phase_slope) / np.sum(weights)) * fs / (2.0 * np.pi * sym_len)
    sync.cfo_hz += residual_hz
    scale2 = geo.re_scale ** 2
    fit = _plan_fit(geo)

    # Common phase per symbol from every link's non-preamble pilots, Wiener-shrunk by its own estimation noise.
    ref = est.h * fit.x_pilot  # [L, 14, S]
    num = np.sum(np.sum(np.where(fit.phase_mask, y * np.conj(ref), 0), axis=2), axis=0)
    noise = np.sum(est.sigma2[:, None] * np.sum(np.where(fit.phase_mask, np.abs(ref) ** 2, 0), axis=2), axis=0)
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

    # Equalisation of every link's data REs at once (link after link, each in its RE order).
    h_data = (est.h * cpe[:, None])[fit.data_mask]
    z = y[fit.data_mask] / h_data
    h2 = np.abs(h_data) ** 2
    offsets = fit.data_offsets
    noise_var = np.repeat(est.sigma2, np.diff(offsets)) / np.maximum(h2, 1e-30)
    # Soft demapping, one call per modulation (it works symbol by symbol).
    by_modulation: dict[str, list[int]] = {}
    for i, link in enumerate(plan.links):
        by_modulation.setdefault(link.modulation, []).append(i)
    llrs: list[np.ndarray] = [np.zeros(0, np.float32)] * len(plan.links)
    for modulation, members in by_modulation.items():
        parts = [slice(offsets[i], offsets[i + 1]) for i in members]
        joint = demap_llr(np.concatenate([z[p] for p in parts]), np.concatenate([noise_var[p] for p in parts]),
                          modulation)
        pos = 0
        for i in members:
            size = int(offsets[i + 1] - offsets[i]) * bits_per_symbol(modulation)
            llrs[i] = joint[pos:pos + size]
            pos += size
    llr_items = [(llr[: res.layout.coded_bits].reshape(res.layout.n_blocks, res.layout.n), res.layout)
                 for llr, res in zip(llrs, geo.links)]
    decoded = decode_groups(llr_items) if decode else [
        (np.zeros((0, lay.info_bits_per_block), np.uint8), np.zeros(0, bool)) for _, lay in llr_items]
    sent_links = _reference_symbols(plan, slot_index, reference)
    sent = np.concatenate(sent_links)

    rb_power = np.mean(np.abs(y_full[1:, :][:, geo.rb_bins]) ** 2, axis=(0, 2)) / scale2
    rb_list = rb_power.tolist()
    starts = offsets[:-1]
    err = np.add.reduceat(np.abs(z - sent) ** 2, starts).tolist()
    # The sent symbols' energy per link, summed in their own precision (complex64).
    ref_energy = [float(np.sum(np.abs(symbols) ** 2)) for symbols in sent_links]
    mean_h2 = (np.add.reduceat(h2, starts) / np.diff(offsets)).tolist()
    sigma2 = est.sigma2.tolist()
    reports = []
    for i, (link, res) in enumerate(zip(plan.links, geo.links)):
        evm = math.sqrt(err[i] / ref_energy[i])
        own = sum(rb_list[rb] for rb in link.rbs) / len(link.rbs)
        adjacent = _adjacent(link.rbs, plan.numerology.n_rb, rb_list, own)
        sinr_pilot = mean_h2[i] / max(sigma2[i], 1e-30)
        info, ok = decoded[i]
        part = slice(offsets[i], offsets[i + 1])
        reports.append(LinkReport(
            link_id=link.id, sinr_db=-20.0 * math.log10(max(evm, 1e-15)), sinr_pilot_db=_db(sinr_pilot), evm=evm,
            noise_var=sigma2[i], rx_power_db=_db(own), crc_ok=ok, info_bits_per_block=res.layout.info_bits_per_block,
            adjacent=adjacent, channel_taps=int(est.taps[i]),
            equalized=z[part].astype(np.complex64) if keep_symbols else None,
            sent=sent[part].astype(np.complex64) if keep_symbols else None))
    # A faster RX clock stretches the slot: the delay grows by ppm * 1e-6 samples per sample.
    sync.sco_ppm = float(np.mean(est.tau[:, -1] - est.tau[:, 0]) / (sym_len * (SYMBOLS_PER_SLOT - 1)) * 1e6)
    return SlotReport(plan, slot_index, sync, reports, 10.0 * np.log10(np.maximum(rb_power, 1e-30)))


def _unacquired_report(plan: SlotPlan, slot_index: int, sync: SyncResult, y_full: np.ndarray) -> SlotReport:
    """The report of a slot that was not acquired: received powers only (what the buffer holds on each RB at the
    best timing found), no SINR, EVM, CRC or delivered bits."""
    geo = geometry(plan)
    rb_power = np.mean(np.abs(y_full[1:, :][:, geo.rb_bins]) ** 2, axis=(0, 2)) / geo.re_scale ** 2
    rb_list = rb_power.tolist()
    reports = []
    for link, res in zip(plan.links, geo.links):
        own = sum(rb_list[rb] for rb in link.rbs) / len(link.rbs)
        reports.append(LinkReport(
            link_id=link.id, sinr_db=None, sinr_pilot_db=None, evm=None, noise_var=None, rx_power_db=_db(own),
            crc_ok=np.zeros(0, dtype=bool), info_bits_per_block=res.layout.info_bits_per_block,
            adjacent=_adjacent(link.rbs, plan.numerology.n_rb, rb_list, own), status=sync.status))
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
    y_full = _dft_symbols(x, plan, sync.start, sync.cfo_hz)
    return np.mean(np.abs(y_full[1:, :][:, geo.rb_bins]) ** 2, axis=(0, 2)) / geo.re_scale ** 2


def _adjacent(rbs: Sequence[int], n_rb: int, rb_power: Sequence[float], own: float) -> list[AdjacentPower]:
    """Power on the RB groups at offsets -2, -1, +1, +2 of a link on ``rbs``; ``rb_power``: linear, per RB of
    the carrier; ``own``: the link's own mean power per RE."""
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
        p = sum(rb_power[first:last + 1]) / (last - first + 1)
        out.append(AdjacentPower(offset, (first, last), _db(p), _db(p) - _db(own)))
    return out
