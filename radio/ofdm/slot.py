"""The slot: what one transmitter (an AP radio, or one carrier of it) sends in one OFDM slot, and how it is built.

Slot format (14 OFDM symbols; 1 ms at 15 kHz, 0.5 ms at 30 kHz; ``l`` counts symbols from the slot start):

- ``l = 0`` **preamble**: a known sequence on the even FFT bins of the transmitter's RBs, zero on the odd bins, so
  its time-domain body is two identical halves (timing from correlation with the half, fractional CFO from the
  phase between the halves, range +-1 SCS). LTE-like plans use a Zadoff-Chu sequence (like the PSS; prime length,
  root set by ``tx_id``), NR-like plans a BPSK m-sequence (the NR PSS polynomial for short ones; cyclic shift set
  by ``tx_id``). Each RE carries 2 (3 dB boost), so the symbol has the energy of a full symbol.
- ``l in DMRS_SYMBOLS`` (4, 8, 12) **DMRS**: known QPSK pilots on every other subcarrier of each RB (the comb
  alternates between the three symbols), data on the others. With the preamble they give four reference symbols.
- every other symbol: one **PTRS** pilot per RB (RB subcarrier :data:`PTRS_SUBCARRIER`) for the common phase of
  that symbol (phase noise, residual CFO), data on the other 11 subcarriers.
- RBs that belong to no link are empty (**guard**); so is LTE's DC subcarrier.

Every RE of a link (preamble, pilots, data) carries the link's digital gain ``10^(power_db / 20)``, so the receiver's
channel estimate includes it and the equalised symbols are unit-energy constellation points.

Scaling: the waveform is ``s * IDFT_unitary(grid)`` with ``s = 10^(-backoff_db / 20) / sqrt(12 N_RB / N_FFT)``: a
slot with every RB at 0 dB has an RMS of ``10^(-backoff_db / 20)`` of full scale, whatever this slot occupies, so
``power_db`` is an absolute transmit power relative to the slot's full power. The default back-off (12 dB) keeps
the OFDM peaks (PAPR about 10-11 dB at 1e-4) below full scale. ``s`` is :attr:`TxSlot.re_scale`: the amplitude a
unit RE has after the receiver's unitary DFT when nothing is in between.

Optional WOLA: ``wola_ramp = w > 0`` extends every symbol by a ``w``-sample cyclic suffix and tapers both ends
with raised-cosine ramps that overlap-add with the neighbours inside the CP (the ramp wraps around the slot end,
so the slot is a seamless cyclic buffer). It costs ``w`` samples of the CP's multipath tolerance.
"""

from __future__ import annotations

import math
import weakref
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from radio.ofdm.fec import CodeBlockLayout, DEFAULT_MAX_BLOCK_BITS, code_rate, encode_blocks, plan_code_blocks
from radio.ofdm.modulation import bits_per_symbol, map_bits
from radio.ofdm.numerology import SUBCARRIERS_PER_RB, Numerology, numerology
from radio.ofdm.sequences import largest_prime_at_most, m_sequence_bpsk, zadoff_chu

SYMBOLS_PER_SLOT = 14
"""OFDM symbols in one slot."""
PREAMBLE_SYMBOL = 0
"""Symbol index of the preamble."""
DMRS_SYMBOLS = (4, 8, 12)
"""Symbol indices carrying comb DMRS."""
DMRS_COMB_OFFSETS = (1, 0, 1)
"""RB-local subcarrier parity of the DMRS REs in each of :data:`DMRS_SYMBOLS`."""
PTRS_SUBCARRIER = 5
"""RB-local subcarrier of the PTRS RE in the other symbols."""
REFERENCE_SYMBOLS = (PREAMBLE_SYMBOL,) + DMRS_SYMBOLS
"""Symbols whose pilots estimate the channel."""
PREAMBLE_RE_AMPLITUDE = math.sqrt(2.0)
"""Amplitude of a preamble RE (only half the REs are used)."""
DEFAULT_BACKOFF_DB = 12.0
"""RMS of a fully loaded slot below digital full scale (dB)."""
POWER_DB_RANGE = (-60.0, 10.0)
"""Allowed link power (dB relative to the slot's full power per RE)."""


@dataclass(frozen=True)
class Link:
    """One link of a slot: who it is, where it sits, how strong and how it is coded."""

    id: str
    """Name, unique within the slot."""
    rbs: tuple[int, ...]
    """Resource-block indices (0 = lowest frequency of the carrier), sorted, no repeats."""
    modulation: str = "qpsk"
    """``bpsk``, ``qpsk``, ``16qam``, ``64qam`` or ``256qam``."""
    rate: Fraction = Fraction(1, 2)
    """LDPC code rate, one of :data:`radio.ofdm.fec.CODE_RATES`."""
    power_db: float = 0.0
    """Digital gain of the link's REs (dB) relative to the slot's full power per RE."""
    max_block_bits: int = DEFAULT_MAX_BLOCK_BITS
    """Largest code block (information + CRC bits)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rbs", tuple(sorted(int(r) for r in self.rbs)))
        object.__setattr__(self, "modulation", str(self.modulation).lower())
        object.__setattr__(self, "rate", code_rate(self.rate))
        bits_per_symbol(self.modulation)
        if not self.rbs:
            raise ValueError(f"link {self.id!r} has no resource blocks")
        if len(set(self.rbs)) != len(self.rbs):
            raise ValueError(f"link {self.id!r} lists a resource block twice: {self.rbs}")
        lo, hi = POWER_DB_RANGE
        if not (isinstance(self.power_db, (int, float)) and math.isfinite(self.power_db) and lo <= self.power_db <= hi):
            raise ValueError(f"link {self.id!r} power_db = {self.power_db!r}; allowed {lo:g} to {hi:g} dB")

    @property
    def gain(self) -> float:
        """Linear amplitude gain of the link's REs."""
        return 10.0 ** (self.power_db / 20.0)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "rbs": list(self.rbs), "modulation": self.modulation,
                "rate": f"{self.rate.numerator}/{self.rate.denominator}", "power_db": self.power_db}


@dataclass(frozen=True)
class SlotPlan:
    """What one transmitter sends on one carrier: numerology, links and waveform options."""

    numerology: Numerology
    """Carrier numerology (a :class:`Numerology` or its name)."""
    links: tuple[Link, ...]
    """The links, on disjoint RBs."""
    tx_id: int = 0
    """Transmitter identity; selects the preamble sequence and pilot values."""
    sample_rate_hz: float | None = None
    """Radio sample rate; None: the numerology's standard rate. Must be a multiple of the SCS."""
    center_offset_hz: float = 0.0
    """Carrier centre relative to the radio's LO (a multiple of the SCS); places two carriers side by side."""
    backoff_db: float = DEFAULT_BACKOFF_DB
    """RMS of a fully loaded slot below full scale (dB)."""
    wola_ramp: int = 0
    """Raised-cosine WOLA ramp length (samples); 0 disables windowing."""
    payload_seed: int = 0
    """Seed of the pseudo-random payload (known to the receiver, so EVM is measured against what was sent)."""
    preamble: str = "auto"
    """``zc``, ``mseq`` or ``auto`` (ZC for LTE numerologies, m-sequence for NR)."""

    def __post_init__(self) -> None:
        if isinstance(self.numerology, str):
            object.__setattr__(self, "numerology", numerology(self.numerology))
        object.__setattr__(self, "links", tuple(self.links))
        if not self.links:
            raise ValueError("a slot plan needs at least one link")
        ids = [l.id for l in self.links]
        if len(set(ids)) != len(ids):
            raise ValueError(f"link ids must be unique in a slot, got {ids}")
        used: dict[int, str] = {}
        for link in self.links:
            for rb in link.rbs:
                if not 0 <= rb < self.numerology.n_rb:
                    raise ValueError(f"link {link.id!r}: RB {rb} outside {self.numerology.name}; allowed "
                                     f"0 to {self.numerology.n_rb - 1}")
                if rb in used:
                    raise ValueError(f"links {used[rb]!r} and {link.id!r} both use RB {rb}")
                used[rb] = link.id
        if self.preamble not in ("auto", "zc", "mseq"):
            raise ValueError(f"preamble = {self.preamble!r}; allowed: auto, zc, mseq")
        if not isinstance(self.wola_ramp, int) or self.wola_ramp < 0:
            raise ValueError(f"wola_ramp = {self.wola_ramp!r}; allowed: an integer >= 0")
        geometry(self)  # validates rate, offset and ramp

    @property
    def rate_hz(self) -> float:
        """Sample rate the slot is built at (S/s)."""
        return float(self.sample_rate_hz or self.numerology.sample_rate_hz)

    @property
    def slot_length(self) -> int:
        """Samples in one slot."""
        return geometry(self).slot_length

    @property
    def occupied_bw_hz(self) -> float:
        """Bandwidth around the LO that the carrier's RB grid spans (for the TX guard): twice the distance from
        the LO to the carrier's far edge."""
        num = self.numerology
        return 2.0 * (abs(self.center_offset_hz) + num.occupied_bw_hz / 2.0 + num.scs_hz)

    def link(self, link_id: str) -> Link:
        for l in self.links:
            if l.id == link_id:
                return l
        raise KeyError(link_id)

    def as_dict(self) -> dict[str, Any]:
        return {"numerology": self.numerology.name, "links": [l.as_dict() for l in self.links], "tx_id": self.tx_id,
                "sample_rate_hz": self.rate_hz, "center_offset_hz": self.center_offset_hz,
                "backoff_db": self.backoff_db, "wola_ramp": self.wola_ramp, "payload_seed": self.payload_seed}


@dataclass(frozen=True)
class LinkResources:
    """Where one link's REs are: FFT bins (numpy order, 0..N-1) per symbol, and its code-block layout."""

    rb_bins: np.ndarray
    """int64 ``[n_rb_link, 12]``: FFT bin of every subcarrier of every RB of the link."""
    bins: np.ndarray
    """int64 ``[12 n_rb_link]``: all the link's bins, lowest frequency first."""
    signed_bins: np.ndarray
    """int64 ``[12 n_rb_link]``: the same bins as signed frequency indices (bin - N if above N/2)."""
    pilot_mask: np.ndarray
    """bool ``[14, 12 n_rb_link]``: RE carries a known pilot (preamble, DMRS or PTRS)."""
    data_mask: np.ndarray
    """bool ``[14, 12 n_rb_link]``: RE carries data (frequency-first order within a symbol, then time)."""
    n_data: int
    """Number of data REs."""
    layout: CodeBlockLayout
    """How the data REs are coded."""
    derived: dict = field(default_factory=dict, compare=False, repr=False)
    """Quantities derived from this link's geometry alone (pilot values, receiver fit operators), cached by the
    transmitter and receiver."""


@dataclass(frozen=True)
class SlotGeometry:
    """Sample and RE positions of a plan (cached per plan)."""

    num: Numerology
    """The numerology scaled to the plan's sample rate."""
    fft_size: int
    """FFT size at the plan's rate."""
    cp: np.ndarray
    """int64 ``[14]``: CP length of each symbol (samples)."""
    symbol_start: np.ndarray
    """int64 ``[14]``: first sample (start of CP) of each symbol."""
    slot_length: int
    """Samples in the slot."""
    rb_bins: np.ndarray
    """int64 ``[N_RB, 12]``: FFT bin of each subcarrier of the carrier grid."""
    pilots: np.ndarray
    """complex128 ``[14, N_FFT]``: pilot values (unit gain) on every pilot bin of the whole grid, 0 elsewhere."""
    links: tuple[LinkResources, ...]
    """Per link, in plan order."""
    re_scale: float
    """Amplitude of a unit RE after the receiver's unitary DFT (see the module docstring)."""
    derived: dict = field(default_factory=dict, compare=False, repr=False)
    """Quantities derived from the geometry alone (filters, phase ramps), cached by the receiver."""


def _preamble_values(plan: SlotPlan, even_bins_signed: np.ndarray) -> np.ndarray:
    length = even_bins_signed.size
    kind = plan.preamble if plan.preamble != "auto" else ("zc" if plan.numerology.rat == "lte" else "mseq")
    if kind == "zc":
        nzc = largest_prime_at_most(max(length, 3))
        root = (25 + 4 * plan.tx_id) % nzc or 1
        seq = zadoff_chu(root, nzc)
        return seq[np.arange(length) % nzc]
    return m_sequence_bpsk(length, shift=43 * plan.tx_id).astype(np.complex128)


def _qpsk_pn(seed: Sequence[int], n: int) -> np.ndarray:
    bits = np.random.default_rng(list(seed)).integers(0, 2, size=2 * n)
    return ((1 - 2 * bits[0::2]) + 1j * (1 - 2 * bits[1::2])) / math.sqrt(2.0)


_GEOMETRY_CACHE: "OrderedDict[tuple, SlotGeometry]" = OrderedDict()
_GEOMETRY_CACHE_SIZE = 128


def _geometry_key(plan: SlotPlan) -> tuple:
    """What a plan's geometry depends on: not the payload seed, the link ids or the link powers, so a sequence of
    slots that changes only those (as the over-the-air runner does every slot) shares one geometry."""
    return (plan.numerology, plan.sample_rate_hz, plan.center_offset_hz, plan.backoff_db, plan.wola_ramp,
            plan.preamble, plan.tx_id,
            tuple((l.rbs, l.modulation, l.rate, l.max_block_bits) for l in plan.links))


_GEOMETRY_BY_PLAN: dict[int, tuple["weakref.ref[SlotPlan]", SlotGeometry]] = {}
"""The geometry of each live plan object, by identity (a plan is looked up many times per slot, and hashing its
links' fractions each time is not free)."""


def geometry(plan: SlotPlan) -> SlotGeometry:
    """Compute (and cache) where every sample and RE of ``plan`` goes. Raises ValueError for a bad rate/offset."""
    hit = _GEOMETRY_BY_PLAN.get(id(plan))
    if hit is not None and hit[0]() is plan:
        return hit[1]
    geo = _geometry_by_key(plan)
    key = id(plan)

    def forget(ref: "weakref.ref[SlotPlan]") -> None:
        entry = _GEOMETRY_BY_PLAN.get(key)
        if entry is not None and entry[0] is ref:
            del _GEOMETRY_BY_PLAN[key]

    _GEOMETRY_BY_PLAN[key] = (weakref.ref(plan, forget), geo)
    return geo


def _geometry_by_key(plan: SlotPlan) -> SlotGeometry:
    key = _geometry_key(plan)
    geo = _GEOMETRY_CACHE.get(key)
    if geo is None:
        geo = _compute_geometry(plan)
        _GEOMETRY_CACHE[key] = geo
        if len(_GEOMETRY_CACHE) > _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.popitem(last=False)
    else:
        _GEOMETRY_CACHE.move_to_end(key)
    return geo


def _compute_geometry(plan: SlotPlan) -> SlotGeometry:
    num = plan.numerology.scaled(plan.rate_hz) if plan.sample_rate_hz else plan.numerology
    n = num.fft_size
    offset = plan.center_offset_hz / num.scs_hz
    if abs(offset - round(offset)) > 1e-6:
        raise ValueError(f"center_offset_hz = {plan.center_offset_hz:g}; allowed: a multiple of the "
                         f"{num.scs_hz:g} Hz subcarrier spacing")
    signed = np.array(num.subcarrier_bins(), dtype=np.int64) + int(round(offset))
    if signed.min() <= -n // 2 or signed.max() >= n // 2:
        raise ValueError(f"{num.name} at offset {plan.center_offset_hz:g} Hz does not fit in the "
                         f"{plan.rate_hz:g} S/s band; allowed |offset| + {num.occupied_bw_hz / 2:g} Hz < "
                         f"{plan.rate_hz / 2:g} Hz")
    cp = np.array([num.cp_length(l) for l in range(SYMBOLS_PER_SLOT)], dtype=np.int64)
    if plan.wola_ramp >= int(cp.min()):
        raise ValueError(f"wola_ramp = {plan.wola_ramp} samples; allowed 0 to {int(cp.min()) - 1} (shorter than the CP)")
    starts = np.concatenate([[0], np.cumsum(cp + n)[:-1]]).astype(np.int64)
    slot_length = int(np.sum(cp + n))
    rb_signed = signed.reshape(num.n_rb, SUBCARRIERS_PER_RB)
    rb_bins = rb_signed % n

    # Pilot values on the whole grid: links cut out their own RBs.
    pilots = np.zeros((SYMBOLS_PER_SLOT, n), dtype=np.complex128)
    even = signed[signed % 2 == 0]
    pilots[PREAMBLE_SYMBOL, even % n] = PREAMBLE_RE_AMPLITUDE * _preamble_values(plan, even)
    local = np.arange(SUBCARRIERS_PER_RB)
    pilot_local = np.zeros((SYMBOLS_PER_SLOT, SUBCARRIERS_PER_RB), dtype=bool)
    for l in range(SYMBOLS_PER_SLOT):
        if l == PREAMBLE_SYMBOL:
            continue
        if l in DMRS_SYMBOLS:
            pilot_local[l] = local % 2 == DMRS_COMB_OFFSETS[DMRS_SYMBOLS.index(l)]
        else:
            pilot_local[l] = local == PTRS_SUBCARRIER
        where = rb_bins[:, pilot_local[l]].reshape(-1)
        pilots[l, where] = _qpsk_pn((plan.tx_id, l, 7919), where.size)

    links = []
    for link in plan.links:
        lb = rb_bins[list(link.rbs)]
        ls = rb_signed[list(link.rbs)].reshape(-1)
        nsc = ls.size
        pmask = np.zeros((SYMBOLS_PER_SLOT, nsc), dtype=bool)
        dmask = np.zeros((SYMBOLS_PER_SLOT, nsc), dtype=bool)
        pmask[PREAMBLE_SYMBOL] = ls % 2 == 0
        for l in range(1, SYMBOLS_PER_SLOT):
            pmask[l] = np.tile(pilot_local[l], len(link.rbs))
            dmask[l] = ~pmask[l]
        n_data = int(dmask.sum())
        layout = plan_code_blocks(n_data * bits_per_symbol(link.modulation), link.rate,
                                  bits_per_symbol(link.modulation), link.max_block_bits)
        links.append(LinkResources(lb, lb.reshape(-1), ls, pmask, dmask, n_data, layout))
    re_scale = 10.0 ** (-plan.backoff_db / 20.0) / math.sqrt(num.n_subcarriers / n)
    return SlotGeometry(num, n, cp, starts, slot_length, rb_bins, pilots, tuple(links), re_scale)


@dataclass
class TxLinkData:
    """What one link sent in one slot."""

    link: Link
    """The link."""
    layout: CodeBlockLayout
    """Its code-block layout."""
    info_bits: np.ndarray
    """uint8 ``[C, k - crc]``: information bits per code block."""
    coded_bits: np.ndarray
    """uint8 ``[C, n]``: coded bits per code block."""
    data_symbols: np.ndarray
    """complex64 ``[n_data]``: unit-energy data symbols in RE order (before the link gain)."""


@dataclass
class TxSlot:
    """One built slot: the waveform and everything the receiver needs to score it."""

    plan: SlotPlan
    """The plan it was built from."""
    slot_index: int
    """Which slot of a sequence (selects the payload)."""
    waveform: np.ndarray
    """complex64 ``[slot_length]``: samples at full scale 1.0, starting with the preamble's CP."""
    grid: np.ndarray
    """complex128 ``[14, N_FFT]``: transmitted REs (link gains applied, before ``re_scale``), numpy FFT order."""
    links: tuple[TxLinkData, ...]
    """Per link, in plan order."""
    re_scale: float
    """Amplitude of a unit RE after a unitary DFT of the waveform."""
    peak_to_full_scale_db: float = 0.0
    """Largest |I| or |Q| of the waveform relative to full scale (dB); > 0 means the DAC will clip."""
    papr_db: float = 0.0
    """Peak-to-average power ratio of the waveform (dB)."""

    @property
    def sample_rate_hz(self) -> float:
        return self.plan.rate_hz


def payload_bits(plan: SlotPlan, slot_index: int, link_index: int) -> np.ndarray:
    """Pseudo-random information bits of one link in one slot (the receiver regenerates them).
    uint8 ``[C, k - crc]``."""
    layout = geometry(plan).links[link_index].layout
    link = plan.links[link_index]
    rng = np.random.default_rng([plan.payload_seed, slot_index, zlib.crc32(link.id.encode()), plan.tx_id])
    return rng.integers(0, 2, size=(layout.n_blocks, layout.info_bits_per_block), dtype=np.uint8)


@lru_cache(maxsize=64)
def _filler_bits(count: int) -> np.ndarray:
    """uint8 ``[count]``, read-only: the fixed pseudo-random bits on the data REs left after the code blocks."""
    bits = np.random.default_rng(count + 104729).integers(0, 2, size=count, dtype=np.uint8)
    bits.flags.writeable = False
    return bits


def data_symbols(coded: np.ndarray, layout: CodeBlockLayout, modulation: str) -> np.ndarray:
    """complex64 ``[n_data]``: a link's data REs in RE order, from its coded bits (uint8 ``[C, n]``) and the
    filler bits after them."""
    bits = coded.reshape(-1)
    if layout.filler_bits:
        bits = np.concatenate([bits, _filler_bits(layout.filler_bits)])
    return map_bits(bits, modulation)


def _grid_positions(geo: SlotGeometry, res: LinkResources) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices into the ``[14, N]`` grid of a link's data REs and pilot REs (int64, RE order), and the pilot
    values (complex128), cached per link."""
    cached = res.derived.get("grid_positions")
    if cached is None:
        flat = np.arange(SYMBOLS_PER_SLOT)[:, None] * geo.fft_size + res.bins[None, :]
        cached = res.derived["grid_positions"] = (flat[res.data_mask], flat[res.pilot_mask],
                                                  geo.pilots[:, res.bins][res.pilot_mask])
    return cached


def build_slot(plan: SlotPlan, slot_index: int = 0) -> TxSlot:
    """Build slot number ``slot_index`` of ``plan``: encode each link's payload, map it and the pilots, OFDM
    modulate, window and scale. Returns a :class:`TxSlot` whose ``waveform`` is ready for ``Radio.transmit``."""
    geo = geometry(plan)
    grid = np.zeros((SYMBOLS_PER_SLOT, geo.fft_size), dtype=np.complex128)
    flat_grid = grid.reshape(-1)
    sent = []
    for i, (link, res) in enumerate(zip(plan.links, geo.links)):
        info = payload_bits(plan, slot_index, i)
        coded = encode_blocks(info, res.layout)
        syms = data_symbols(coded, res.layout, link.modulation)
        data_at, pilots_at, pilot_values = _grid_positions(geo, res)
        flat_grid[data_at] = syms.astype(np.complex128) * link.gain
        flat_grid[pilots_at] = pilot_values * link.gain
        sent.append(TxLinkData(link, res.layout, info, coded, syms))
    waveform = ofdm_modulate(grid, geo.cp, plan.wola_ramp) * geo.re_scale
    peak = float(max(np.max(np.abs(waveform.real)), np.max(np.abs(waveform.imag)), 1e-30))
    magnitude2 = np.abs(waveform) ** 2
    power = float(np.mean(magnitude2))
    papr = 10 * math.log10(float(np.max(magnitude2)) / power) if power > 0 else 0.0
    return TxSlot(plan, slot_index, waveform.astype(np.complex64), grid, tuple(sent), geo.re_scale,
                  20 * math.log10(peak), papr)


@lru_cache(maxsize=64)
def _cp_gather(n: int, cp: tuple[int, ...]) -> np.ndarray:
    """int64 ``[sum(cp) + L n]``: for each sample of a CP-OFDM buffer, its index into the ``[L, n]`` symbol bodies
    (flattened): the CP repeats the last ``cp[l]`` samples of symbol ``l``."""
    parts = [l * n + (np.arange(c + n) - c) % n for l, c in enumerate(cp)]
    return np.concatenate(parts).astype(np.int64)


def ofdm_modulate(grid: np.ndarray, cp: np.ndarray, wola_ramp: int = 0) -> np.ndarray:
    """CP-OFDM modulation of a grid with a unitary IDFT, optionally WOLA-windowed, as one cyclic buffer.

    ``grid``: complex ``[L, N]`` (numpy FFT order). ``cp``: int ``[L]`` CP lengths. Returns complex128
    ``[sum(cp) + L N]``.
    """
    n_sym, n = grid.shape
    body = np.fft.ifft(grid, axis=1) * math.sqrt(n)
    if not wola_ramp:
        return body.reshape(-1)[_cp_gather(n, tuple(int(c) for c in cp))]
    total = int(np.sum(cp)) + n_sym * n
    out = np.zeros(total, dtype=np.complex128)
    w = int(wola_ramp)
    ramp = 0.5 * (1.0 - np.cos(np.pi * (np.arange(w) + 0.5) / w))
    pos = 0
    for l in range(n_sym):
        c = int(cp[l])
        ext = np.concatenate([body[l, n - c:], body[l], body[l, :w]])
        ext[:w] *= ramp
        ext[-w:] *= ramp[::-1]
        np.add.at(out, (pos + np.arange(ext.size)) % total, ext)
        pos += c + n
    return out


def combine_waveforms(waveforms: Sequence[np.ndarray]) -> np.ndarray:
    """Sum waveforms of several carriers of one radio (each already at its offset), each repeated to the least
    common multiple of their lengths so the sum is still a seamless cyclic buffer. complex64 ``[lcm]``."""
    if not waveforms:
        raise ValueError("combine_waveforms needs at least one waveform")
    length = 1
    for w in waveforms:
        length = length * len(w) // math.gcd(length, len(w))
    out = np.zeros(length, dtype=np.complex128)
    for w in waveforms:
        out += np.tile(np.asarray(w), length // len(w))
    return out.astype(np.complex64)
