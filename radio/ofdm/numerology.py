"""OFDM numerologies: LTE (15 kHz) and NR FR1 (15/30 kHz) channel bandwidths with their 3GPP resource-block counts.

LTE (TS 36.211 / 36.101): the FFT size is the power of two of the standard sample rate (1.92 MS/s for 1.4 MHz ...
30.72 MS/s for 20 MHz, 15 kHz x N_FFT) and the normal cyclic prefix is 160 / 144 samples at N_FFT = 2048, scaled
exactly (10 / 9 samples at 128). NR FR1 (TS 38.211 / 38.101-1 Table 5.3.2-1): N_RB from the table, the FFT size is
the smallest power of two whose 85 % covers the 12 N_RB subcarriers, and the normal CP is 144 N_FFT / 2048 samples
with 16 kappa Tc (0.52 us) more on the first symbol of every 0.5 ms (at 15 kHz: LTE's 160 / 144 at 2048).

Names: ``lte1.4``, ``lte3``, ``lte5``, ``lte10``, ``lte15``, ``lte20`` and ``nr<MHz>-<15|30>k`` (``nr20-30k``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUBCARRIERS_PER_RB = 12
"""Subcarriers in one resource block (LTE and NR)."""

LTE_TABLE: dict[str, tuple[float, int, int]] = {
    # name: (channel bandwidth Hz, N_RB, N_FFT)
    "lte1.4": (1.4e6, 6, 128),
    "lte3": (3e6, 15, 256),
    "lte5": (5e6, 25, 512),
    "lte10": (10e6, 50, 1024),
    "lte15": (15e6, 75, 1536),
    "lte20": (20e6, 100, 2048),
}

NR_FR1_N_RB: dict[int, dict[int, int]] = {
    # SCS kHz -> {channel bandwidth MHz: N_RB}, TS 38.101-1 Table 5.3.2-1
    15: {5: 25, 10: 52, 15: 79, 20: 106, 25: 133, 30: 160, 40: 216, 50: 270},
    30: {5: 11, 10: 24, 15: 38, 20: 51, 25: 65, 30: 78, 40: 106, 50: 133, 60: 162, 80: 217, 100: 273},
}


@dataclass(frozen=True)
class Numerology:
    """One OFDM carrier's geometry at its standard sample rate."""

    name: str
    """Lookup name, e.g. ``lte5`` or ``nr20-30k``."""
    rat: str
    """``lte`` or ``nr``."""
    channel_bw_hz: float
    """Nominal channel bandwidth (Hz)."""
    scs_hz: float
    """Subcarrier spacing (Hz)."""
    n_rb: int
    """Resource blocks in the transmission bandwidth configuration."""
    fft_size: int
    """FFT size at :attr:`sample_rate_hz`."""
    cp_long: int
    """Cyclic-prefix length (samples) of the first symbol of each 0.5 ms half-subframe."""
    cp_short: int
    """Cyclic-prefix length (samples) of the other symbols."""

    @property
    def sample_rate_hz(self) -> float:
        """Standard sample rate, SCS x N_FFT (samples/s)."""
        return self.scs_hz * self.fft_size

    @property
    def n_subcarriers(self) -> int:
        """Occupied subcarriers, 12 N_RB (LTE's unused DC subcarrier not counted)."""
        return SUBCARRIERS_PER_RB * self.n_rb

    @property
    def occupied_bw_hz(self) -> float:
        """Transmission bandwidth 12 N_RB SCS (Hz); the BW_Config of ACLR measurements."""
        return self.n_subcarriers * self.scs_hz

    @property
    def symbols_per_half_subframe(self) -> int:
        """OFDM symbols in 0.5 ms (7 at 15 kHz, 14 at 30 kHz); the first has the long CP."""
        return int(round(7 * self.scs_hz / 15e3))

    @property
    def has_dc_gap(self) -> bool:
        """LTE leaves the DC subcarrier empty (the grid straddles it); NR does not."""
        return self.rat == "lte"

    def cp_length(self, symbol: int) -> int:
        """CP length (samples) of OFDM symbol ``symbol`` counted from a half-subframe boundary."""
        return self.cp_long if symbol % self.symbols_per_half_subframe == 0 else self.cp_short

    def symbol_length(self, symbol: int) -> int:
        """CP plus FFT length (samples) of symbol ``symbol``."""
        return self.cp_length(symbol) + self.fft_size

    def subcarrier_bins(self) -> "list[int]":
        """FFT bin index (signed, DC = 0) of each occupied subcarrier, lowest frequency first; length 12 N_RB."""
        half = self.n_subcarriers // 2
        if self.has_dc_gap:
            return list(range(-half, 0)) + list(range(1, half + 1))
        return list(range(-half, self.n_subcarriers - half))

    def scaled(self, sample_rate_hz: float) -> "Numerology":
        """The same carrier sampled at ``sample_rate_hz`` (an integer multiple of SCS whose FFT covers the grid):
        FFT size and CP lengths scale with the rate. Raises ValueError when the rate does not fit."""
        fft = sample_rate_hz / self.scs_hz
        if abs(fft - round(fft)) > 1e-9 or round(fft) < self.n_subcarriers + 2:
            raise ValueError(
                f"sample rate {sample_rate_hz:g} S/s does not fit {self.name}: allowed an integer multiple of "
                f"{self.scs_hz:g} Hz above {(self.n_subcarriers + 2) * self.scs_hz:g} S/s")
        fft = int(round(fft))
        long_ = self.cp_long * fft / self.fft_size
        short = self.cp_short * fft / self.fft_size
        if abs(long_ - round(long_)) > 1e-9 or abs(short - round(short)) > 1e-9:
            raise ValueError(f"sample rate {sample_rate_hz:g} S/s gives a fractional CP for {self.name}; "
                             f"allowed: rates where CP {self.cp_long}/{self.cp_short} x rate/"
                             f"{self.sample_rate_hz:g} is an integer")
        return Numerology(self.name, self.rat, self.channel_bw_hz, self.scs_hz, self.n_rb, fft,
                          int(round(long_)), int(round(short)))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rat": self.rat, "channel_bw_hz": self.channel_bw_hz, "scs_hz": self.scs_hz,
                "n_rb": self.n_rb, "fft_size": self.fft_size, "cp_long": self.cp_long, "cp_short": self.cp_short,
                "sample_rate_hz": self.sample_rate_hz, "occupied_bw_hz": self.occupied_bw_hz}


def _nr_fft_size(n_sc: int) -> int:
    fft = 128
    while n_sc > 0.85 * fft:
        fft *= 2
    return fft


def _build_table() -> dict[str, Numerology]:
    table: dict[str, Numerology] = {}
    for name, (bw, n_rb, fft) in LTE_TABLE.items():
        table[name] = Numerology(name, "lte", bw, 15e3, n_rb, fft, 160 * fft // 2048, 144 * fft // 2048)
    for scs_khz, rows in NR_FR1_N_RB.items():
        for bw_mhz, n_rb in rows.items():
            fft = _nr_fft_size(SUBCARRIERS_PER_RB * n_rb)
            name = f"nr{bw_mhz}-{scs_khz}k"
            short = 144 * fft // 2048
            # The long-CP extension is 16 kappa Tc, fixed in time (0.52 us), not a fraction of the symbol.
            extra = 16 * fft * scs_khz // (2048 * 15)
            table[name] = Numerology(name, "nr", bw_mhz * 1e6, scs_khz * 1e3, n_rb, fft, short + extra, short)
    return table


NUMEROLOGIES: dict[str, Numerology] = _build_table()
"""Every supported numerology by name."""


def numerology(name: str) -> Numerology:
    """Look a numerology up by name (case-insensitive); ValueError lists the allowed names."""
    key = str(name).strip().lower()
    if key in NUMEROLOGIES:
        return NUMEROLOGIES[key]
    raise ValueError(f"unknown numerology {name!r}; allowed: {', '.join(NUMEROLOGIES)}")
