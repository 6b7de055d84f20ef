"""Run OFDM slots over real (or simulated, or loopback) radios and aggregate per-link statistics.

Each transmitter is a radio with one or more :class:`~radio.ofdm.slot.SlotPlan` (several plans on one radio are
carriers side by side, e.g. two numerologies). For every slot index the transmitters' slots are built, each radio
transmits its buffer cyclically, the receiver takes two slot lengths (so a whole slot is in the buffer whatever the
offset), and every plan is received and measured on its own sync. A single radio can be both transmitter and
receiver (loopback).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from radio.base import Radio
from radio.ofdm.receiver import ACQUIRED, NO_SIGNAL, NO_SYNC, SlotReport, receive_slot
from radio.ofdm.slot import SlotPlan, TxSlot, build_slot, combine_waveforms

Transmitter = tuple[Radio, "SlotPlan | Sequence[SlotPlan]"]


@dataclass
class LinkStats:
    """One link aggregated over the slots of a run."""

    link_id: str
    """The link's id."""
    slots: int
    """Slots measured: acquired (the slots not acquired are counted below and enter no other figure)."""
    sinr_db: float | None
    """Mean post-equalisation SINR from data (dB of the mean linear SINR); None without an acquired slot (as the
    other means)."""
    sinr_pilot_db: float | None
    """Mean SINR from pilots (dB of the mean linear value)."""
    evm: float | None
    """RMS EVM over the acquired slots (ratio)."""
    blocks: int
    """Code blocks sent in the acquired slots."""
    blocks_ok: int
    """Code blocks whose CRC passed."""
    delivered_bits: int
    """Information bits of CRC-passed blocks, all slots."""
    slot_duration_s: float
    """Duration of one slot (s)."""
    adjacent_relative_db: dict[int, float | None] = field(default_factory=dict)
    """Mean (in linear power) of the adjacent-group power relative to the link, by offset -2, -1, +1, +2 (dBc)."""
    slots_no_signal: int = 0
    """Slots whose receiver found nothing above the noise floor on the transmitter's RBs."""
    slots_no_sync: int = 0
    """Slots with power there that the receiver could not acquire."""

    @property
    def slots_not_acquired(self) -> int:
        return self.slots_no_signal + self.slots_no_sync

    @property
    def bler(self) -> float | None:
        """Block error rate over the acquired slots: failed / sent code blocks."""
        return 1.0 - self.blocks_ok / self.blocks if self.blocks else None

    @property
    def bits_per_slot(self) -> float | None:
        """Delivered information bits per acquired slot."""
        return self.delivered_bits / self.slots if self.slots else None

    @property
    def throughput_mbps(self) -> float | None:
        """Delivered information bit rate (Mbit/s) while the link is scheduled every slot and acquired."""
        bits = self.bits_per_slot
        return None if bits is None else bits / self.slot_duration_s / 1e6

    @property
    def evm_db(self) -> float | None:
        return None if self.evm is None else 20.0 * math.log10(max(self.evm, 1e-15))

    def as_dict(self) -> dict[str, Any]:
        return {"link_id": self.link_id, "slots": self.slots, "slots_no_signal": self.slots_no_signal,
                "slots_no_sync": self.slots_no_sync, "sinr_db": self.sinr_db,
                "sinr_pilot_db": self.sinr_pilot_db, "evm": self.evm, "evm_db": self.evm_db, "bler": self.bler,
                "blocks": self.blocks, "blocks_ok": self.blocks_ok, "delivered_bits": self.delivered_bits,
                "bits_per_slot": self.bits_per_slot, "throughput_mbps": self.throughput_mbps,
                "adjacent_relative_db": {str(k): v for k, v in self.adjacent_relative_db.items()}}


@dataclass
class LinkRunResult:
    """Everything a run measured."""

    stats: dict[str, LinkStats]
    """Per link id."""
    reports: list[list[SlotReport]]
    """Per slot, the report of every plan (transmitters in order, their plans in order)."""
    clipped_samples: int = 0
    """Samples the transmitters' DACs clipped, all slots."""

    def as_dict(self) -> dict[str, Any]:
        return {"links": {k: v.as_dict() for k, v in self.stats.items()}, "slots": len(self.reports),
                "clipped_samples": self.clipped_samples}


def _plans(entry: "SlotPlan | Sequence[SlotPlan]") -> list[SlotPlan]:
    return [entry] if isinstance(entry, SlotPlan) else list(entry)


def configure_radios(transmitters: Sequence[Transmitter], receiver: Radio, *, lo_hz: float | None = None,
                     tx_gain_db: float | None = None, rx_gain_db: float | None = None) -> float:
    """Set every radio's sample rate (and LO/gains when given) for the plans; return the sample rate.

    Raises ValueError when the plans do not share one sample rate.
    """
    rates = {p.rate_hz for _, e in transmitters for p in _plans(e)}
    if len(rates) != 1:
        raise ValueError(f"all plans of a run must share one sample rate, got {sorted(rates)}")
    rate = rates.pop()
    bw = max(p.occupied_bw_hz for _, e in transmitters for p in _plans(e))
    radios: list[tuple[Radio, bool]] = [(r, True) for r, _ in transmitters]
    if not any(r is receiver for r, _ in transmitters):
        radios.append((receiver, False))
    for radio, is_tx in radios:
        caps = radio.capabilities
        changes: dict[str, Any] = {"rate_sps": rate,
                                   "bandwidth_hz": min(max(bw, caps.bandwidth_hz.low), caps.bandwidth_hz.high)}
        if lo_hz is not None:
            changes["lo_hz"] = lo_hz
        if tx_gain_db is not None and is_tx:
            changes["tx_gain_db"] = tx_gain_db
        if rx_gain_db is not None and (radio is receiver):
            changes["rx_gain_db"] = rx_gain_db
        radio.configure(**changes)
    return rate


def run_slot(transmitters: Sequence[Transmitter], receiver: Radio, slot_index: int, *,
             max_cfo_scs: float | None = None, keep_symbols: bool = False) -> tuple[list[SlotReport], int]:
    """Transmit slot ``slot_index`` of every plan (cyclically), receive two slot lengths, measure every plan.

    ``max_cfo_scs``: CFO search range in subcarrier spacings; None: +-50 ppm of the receiver's LO
    (:func:`~radio.ofdm.receiver.cfo_search_scs`). Returns the reports (transmitters in order, their plans in
    order; check each one's ``status``) and the number of clipped TX samples.
    """
    sent: list[TxSlot] = []
    clipped = 0
    longest = 0
    for radio, entry in transmitters:
        slots = [build_slot(p, slot_index) for p in _plans(entry)]
        sent.extend(slots)
        wave = combine_waveforms([s.waveform for s in slots]) if len(slots) > 1 else slots[0].waveform
        occupied = min(max(s.plan.occupied_bw_hz for s in slots), radio.settings.rate_sps)
        report = radio.transmit(wave, cyclic=True, occupied_bw_hz=occupied)
        clipped += report.clipped
        longest = max(longest, wave.size, max(s.plan.slot_length for s in slots))
    samples, _meta = receiver.receive(2 * longest + 64)
    lo_hz = receiver.settings.rx_lo
    reports = [receive_slot(samples, s.plan, slot_index, reference=s, max_cfo_scs=max_cfo_scs, lo_hz=lo_hz,
                            keep_symbols=keep_symbols) for s in sent]
    return reports, clipped


def run_link(transmitters: Sequence[Transmitter], receiver: Radio, n_slots: int, *, configure: bool = True,
             lo_hz: float | None = None, tx_gain_db: float | None = None, rx_gain_db: float | None = None,
             max_cfo_scs: float | None = None, first_slot: int = 0,
             iterate: Callable[[Iterable[int]], Iterable[int]] | None = None) -> LinkRunResult:
    """Run ``n_slots`` slots and aggregate per link (mean SINR, EVM, BLER, throughput, adjacent power).

    ``transmitters``: ``(radio, plan or plans)`` pairs; the receiver may be one of those radios (loopback).
    ``configure``: set sample rate/bandwidth (and ``lo_hz``/gains when given) first. ``max_cfo_scs``: as
    :func:`run_slot`. ``iterate`` wraps the slot loop (e.g. a progress bar). Transmissions are stopped at the end.
    """
    if n_slots < 1:
        raise ValueError(f"n_slots = {n_slots}; allowed: >= 1")
    if configure:
        configure_radios(transmitters, receiver, lo_hz=lo_hz, tx_gain_db=tx_gain_db, rx_gain_db=rx_gain_db)
    slots = range(first_slot, first_slot + n_slots)
    all_reports: list[list[SlotReport]] = []
    clipped = 0
    try:
        for s in (iterate(slots) if iterate else slots):
            reports, c = run_slot(transmitters, receiver, s, max_cfo_scs=max_cfo_scs)
            all_reports.append(reports)
            clipped += c
    finally:
        for radio, _ in transmitters:
            radio.stop_transmit()
    return LinkRunResult(aggregate(all_reports), all_reports, clipped)


def aggregate(reports: Sequence[Sequence[SlotReport]]) -> dict[str, LinkStats]:
    """Per-link statistics over the acquired slots: SINR as the dB of the mean linear SINR, EVM as the RMS, BLER
    over blocks; slots not acquired are counted (by state) and enter nothing else."""
    acc: dict[str, dict[str, Any]] = {}
    for slot in reports:
        for rep in slot:
            duration = rep.plan.slot_length / rep.plan.rate_hz
            for lr in rep.links:
                a = acc.setdefault(lr.link_id, {"n": 0, "sinr": 0.0, "sinr_p": 0.0, "evm2": 0.0, "blocks": 0, "ok": 0,
                                                "bits": 0, "dur": duration, "adj": {}, NO_SIGNAL: 0, NO_SYNC: 0})
                if lr.status != ACQUIRED:
                    a[lr.status] += 1
                    continue
                a["n"] += 1
                a["sinr"] += 10 ** (lr.sinr_db / 10)
                a["sinr_p"] += 10 ** (lr.sinr_pilot_db / 10) if math.isfinite(lr.sinr_pilot_db) else 0.0
                a["evm2"] += lr.evm ** 2
                a["blocks"] += lr.n_blocks
                a["ok"] += lr.blocks_ok
                a["bits"] += lr.delivered_bits
                for adj in lr.adjacent:
                    if adj.relative_db is not None:
                        a["adj"].setdefault(adj.offset, []).append(10 ** (adj.relative_db / 10))
    out = {}
    for link_id, a in acc.items():
        n = a["n"]
        out[link_id] = LinkStats(
            link_id=link_id, slots=n, sinr_db=10 * math.log10(a["sinr"] / n) if n else None,
            sinr_pilot_db=(10 * math.log10(a["sinr_p"] / n) if a["sinr_p"] > 0 else float("-inf")) if n else None,
            evm=math.sqrt(a["evm2"] / n) if n else None, blocks=a["blocks"], blocks_ok=a["ok"],
            delivered_bits=a["bits"], slot_duration_s=a["dur"],
            adjacent_relative_db={k: (10 * math.log10(float(np.mean(v))) if v else None)
                                  for k, v in sorted(a["adj"].items())},
            slots_no_signal=a[NO_SIGNAL], slots_no_sync=a[NO_SYNC])
    return out


def acquisition_failure(reports: Sequence[SlotReport], pair: str) -> str | None:
    """One line saying why none of ``reports`` (one transmitter's slots, received over ``pair``, e.g.
    ``"sim0->sim1"``) was acquired and what to check; None when at least one was."""
    if not reports or any(r.acquired for r in reports):
        return None
    sync = max(reports, key=lambda r: r.sync.detection or 0.0).sync
    power = f"{sync.rx_power_dbfs:.1f} dBFS" if sync.rx_power_dbfs is not None else "unknown"
    floor = f"{sync.noise_floor_dbfs:.1f} dBFS" if sync.noise_floor_dbfs is not None else "unknown"
    no_signal = sum(r.status == NO_SIGNAL for r in reports)
    if no_signal * 2 >= len(reports):
        return (f"no signal on {pair} in {len(reports)} slots: received power {power} on the transmitter's RBs "
                f"is at the noise floor ({floor}): check the TX gain, the antennas/cables and that both radios "
                f"are tuned to the same LO")
    return (f"no sync on {pair} in {len(reports)} slots: received power {power} (noise floor {floor}) but "
            f"the slot was not found (detection {sync.detection:.2f} <= threshold {sync.detection_threshold:.2f}): "
            f"CFO beyond +-{sync.max_cfo_hz / 1e3:.0f} kHz (LO or reference error)? another waveform or "
            f"interference on the channel?")
