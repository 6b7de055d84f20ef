"""LTE/NR-like OFDM physical layer: numerologies, slots with several links, LDPC FEC, a synchronising receiver
with per-link measurements, a radio link runner, and LTE/NR cell search on recordings.

What other packages call:

- :func:`numerology` / :class:`Numerology`: carrier geometry by name (``lte5``, ``nr20-30k``).
- :class:`Link`, :class:`SlotPlan`, :func:`build_slot` -> :class:`TxSlot`: what a transmitter sends in a slot.
- :func:`receive_slot` -> :class:`SlotReport` with one :class:`LinkReport` per link (SINR, EVM, CRC per block,
  BLER, delivered bits, adjacent-RB power).
- :func:`run_link` / :func:`run_slot`: the same over radios, aggregated into :class:`LinkStats`.
- :func:`evm_rms`: RMS EVM of a constellation against the ideal.
- :func:`analyze_recording` (``radio.ofdm.cellsearch``): LTE/NR cell search on a SigMF file.
"""

from radio.ofdm.link import LinkRunResult, LinkStats, aggregate, configure_radios, run_link, run_slot
from radio.ofdm.modulation import MODULATIONS, constellation, demap_llr, evm_db, evm_rms, map_bits
from radio.ofdm.numerology import NUMEROLOGIES, Numerology, numerology
from radio.ofdm.receiver import AdjacentPower, LinkReport, SlotReport, SyncResult, receive_slot, synchronise
from radio.ofdm.slot import Link, SlotPlan, TxSlot, build_slot, combine_waveforms, geometry

__all__ = [
    "AdjacentPower", "Link", "LinkReport", "LinkRunResult", "LinkStats", "MODULATIONS", "NUMEROLOGIES", "Numerology",
    "SlotPlan", "SlotReport", "SyncResult", "TxSlot", "aggregate", "build_slot", "combine_waveforms",
    "configure_radios", "constellation", "demap_llr", "evm_db", "evm_rms", "geometry", "map_bits", "numerology",
    "receive_slot", "run_link", "run_slot", "synchronise",
]
