"""The TX guard: the one place that decides whether a radio may transmit.

A transmission at LO ``f`` occupying ``bw`` Hz is allowed only if ``[f - bw/2, f + bw/2]`` lies inside one of
the allowed bands and the TX gain is at most the maximum for that radio. Per-radio overrides replace the
defaults for that radio only. With no bands configured nothing may transmit: the guard fails closed.

What a caller declares is not trusted: :func:`measure_occupied_band` measures the band the samples themselves
occupy (the 99 % power bandwidth, the usual occupied-bandwidth definition, at its offset from the LO), and
:meth:`TxGuard.check_transmission` refuses a buffer when either the declared or the measured band leaves the
allowed bands, so a declared bandwidth can only make the check stricter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import scipy.fft

from radio.errors import RadioConfigError, TxGuardRefused


@dataclass(frozen=True)
class GuardRule:
    """Allowed bands (Hz, inclusive) and maximum TX gain (dB, the radio's convention)."""

    allowed_bands: tuple[tuple[float, float], ...]
    max_tx_gain_db: float

    def describe_bands(self) -> str:
        if not self.allowed_bands:
            return "none"
        return ", ".join(f"{lo / 1e6:.6g}-{hi / 1e6:.6g} MHz" for lo, hi in self.allowed_bands)


def parse_bands(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    """``[[low_hz, high_hz], ...]`` -> tuple of pairs, each checked (finite, low < high)."""
    if not isinstance(value, (list, tuple)):
        raise RadioConfigError(f"{where} = {value!r}; allowed: a list of [low_hz, high_hz] pairs")
    bands = []
    for i, pair in enumerate(value):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair)):
            raise RadioConfigError(f"{where}[{i}] = {pair!r}; allowed: [low_hz, high_hz] with two numbers")
        lo, hi = float(pair[0]), float(pair[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise RadioConfigError(f"{where}[{i}] = {pair!r}; allowed: 0 <= low_hz < high_hz, finite")
        bands.append((lo, hi))
    return tuple(bands)


OBW_POWER_FRACTION = 0.99
"""Share of a buffer's power inside its measured occupied band: 0.5 % of the power may lie below it and 0.5 %
above it (the occupied-bandwidth definition of ITU-R SM.328 and of 3GPP TS 36.104/38.104)."""

OBW_SEGMENT = 4096
"""DFT length of the occupied-band measurement. The buffer is cut into segments of this length (the last one
zero-padded) and their periodograms summed, so every sample weighs the same and no part of a buffer can hide;
the rectangular segments' leakage only widens the measured band (the safe side). Resolution: rate / 4096."""


@dataclass(frozen=True)
class OccupiedBand:
    """The band a buffer occupies, as offsets from the LO in units of the sample rate (``-0.5 <= low <= high <=
    0.5``), so that it can be re-evaluated when the radio is retuned to another LO or sample rate."""

    low: float
    high: float

    def edges_hz(self, lo_hz: float, rate_sps: float) -> tuple[float, float]:
        """Absolute band edges (Hz) at LO ``lo_hz`` and sample rate ``rate_sps``."""
        return lo_hz + self.low * rate_sps, lo_hz + self.high * rate_sps


def measure_occupied_band(samples: np.ndarray, power_fraction: float = OBW_POWER_FRACTION) -> OccupiedBand | None:
    """The occupied band of a baseband buffer: the band holding ``power_fraction`` of its power, with
    ``(1 - power_fraction) / 2`` of the power below it and as much above it.

    ``samples``: complex ``[n]`` at any scale (a buffer the radio will send, after clipping). Returns None for a
    buffer without power (all zeros). The band's edges are the outer edges of the DFT bins where the cumulative
    power crosses the two thresholds, so the result is never narrower than the true occupied band by more than the
    leakage of a rectangular window of :data:`OBW_SEGMENT` samples allows (it is wider, never narrower).
    """
    x = np.asarray(samples, dtype=np.complex64).ravel()
    if not 0.0 < power_fraction < 1.0:
        raise RadioConfigError(f"power_fraction = {power_fraction!r}; allowed: 0 < value < 1")
    n = x.size
    if n <= OBW_SEGMENT:
        spectrum = scipy.fft.fft(x)
        power = (spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2)
    else:
        segments = -(-n // OBW_SEGMENT)
        padded = np.zeros(segments * OBW_SEGMENT, np.complex64)
        padded[:n] = x
        spectrum = scipy.fft.fft(padded.reshape(segments, OBW_SEGMENT), axis=1)
        power = (spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2).sum(axis=0)
    total = float(power.sum())
    if not total > 0.0:
        return None
    size = power.size
    power = scipy.fft.fftshift(power)
    cumulative = np.cumsum(power) / total
    tail = (1.0 - power_fraction) / 2.0
    first = int(np.searchsorted(cumulative, tail, side="right"))
    last = int(np.searchsorted(cumulative, 1.0 - tail, side="left"))
    first, last = min(first, size - 1), min(max(last, first), size - 1)
    # Bin k of the shifted spectrum is centred on (k - size // 2) / size of the sample rate.
    low = (first - size // 2 - 0.5) / size
    high = (last - size // 2 + 0.5) / size
    return OccupiedBand(max(low, -0.5), min(high, 0.5))


@dataclass
class TxGuard:
    """Default rule plus per-radio overrides."""

    default: GuardRule
    per_radio: dict[str, GuardRule] = field(default_factory=dict)

    @classmethod
    def deny_all(cls) -> "TxGuard":
        return cls(GuardRule((), -math.inf))

    @classmethod
    def from_config(cls, safety: Mapping[str, Any] | None, where: str = "[safety]") -> "TxGuard":
        """Build from the ``[safety]`` table: ``allowed_bands``, ``max_tx_gain_db`` and ``[safety.radios.NAME]``."""
        safety = dict(safety or {})
        known = {"allowed_bands", "max_tx_gain_db", "radios"}
        for key in safety:
            if key not in known:
                raise RadioConfigError(f"{where}: unknown key {key!r}; allowed: {sorted(known)}")
        default = GuardRule(
            parse_bands(safety.get("allowed_bands", []), f"{where} allowed_bands"),
            _gain(safety.get("max_tx_gain_db", -math.inf), f"{where} max_tx_gain_db"),
        )
        per_radio = {}
        radios = safety.get("radios", {})
        if not isinstance(radios, dict):
            raise RadioConfigError(f"{where} radios = {radios!r}; allowed: a table of per-radio overrides")
        for name, over in radios.items():
            if not isinstance(over, dict):
                raise RadioConfigError(f"{where}.radios.{name} = {over!r}; allowed: a table")
            for key in over:
                if key not in {"allowed_bands", "max_tx_gain_db"}:
                    raise RadioConfigError(
                        f"{where}.radios.{name}: unknown key {key!r}; allowed: ['allowed_bands', 'max_tx_gain_db']")
            per_radio[name] = GuardRule(
                parse_bands(over["allowed_bands"], f"{where}.radios.{name} allowed_bands")
                if "allowed_bands" in over else default.allowed_bands,
                _gain(over["max_tx_gain_db"], f"{where}.radios.{name} max_tx_gain_db")
                if "max_tx_gain_db" in over else default.max_tx_gain_db,
            )
        return cls(default, per_radio)

    def rule_for(self, radio: str) -> GuardRule:
        return self.per_radio.get(radio, self.default)

    def check(self, radio: str, lo_hz: float, occupied_bw_hz: float, tx_gain_db: float) -> None:
        """Raise TxGuardRefused unless the transmission lies in an allowed band at an allowed gain."""
        rule = self.rule_for(radio)
        low, high = lo_hz - occupied_bw_hz / 2.0, lo_hz + occupied_bw_hz / 2.0
        if not any(b_lo <= low and high <= b_hi for b_lo, b_hi in rule.allowed_bands):
            raise TxGuardRefused(
                f"TX guard: {radio} would occupy {low / 1e6:.6g}-{high / 1e6:.6g} MHz "
                f"(LO {lo_hz / 1e6:.6g} MHz, {occupied_bw_hz / 1e6:.6g} MHz wide), outside the allowed bands: "
                f"{rule.describe_bands()}")
        if not tx_gain_db <= rule.max_tx_gain_db:
            raise TxGuardRefused(
                f"TX guard: {radio} TX gain {tx_gain_db:g} dB exceeds the maximum {rule.max_tx_gain_db:g} dB")

    def check_transmission(self, radio: str, lo_hz: float, rate_sps: float, declared_bw_hz: float,
                           measured: OccupiedBand | None, tx_gain_db: float) -> None:
        """Raise TxGuardRefused unless both the declared band (``declared_bw_hz`` centred on the LO) and the band
        the samples were measured to occupy (``measured``, see :func:`measure_occupied_band`) lie in an allowed
        band, at an allowed gain. ``measured`` None (a buffer without power) leaves the declared band to decide."""
        self.check(radio, lo_hz, declared_bw_hz, tx_gain_db)
        if measured is None:
            return
        low, high = measured.edges_hz(lo_hz, rate_sps)
        rule = self.rule_for(radio)
        if not any(b_lo <= low and high <= b_hi for b_lo, b_hi in rule.allowed_bands):
            raise TxGuardRefused(
                f"TX guard: {radio}'s samples occupy {low / 1e6:.6g}-{high / 1e6:.6g} MHz (measured "
                f"{OBW_POWER_FRACTION:.0%} power bandwidth {(high - low) / 1e6:.6g} MHz at LO {lo_hz / 1e6:.6g} MHz, "
                f"{rate_sps / 1e6:.6g} MS/s; declared {declared_bw_hz / 1e6:.6g} MHz), outside the allowed bands: "
                f"{rule.describe_bands()}")

    def allows(self, radio: str, lo_hz: float, occupied_bw_hz: float, tx_gain_db: float) -> bool:
        try:
            self.check(radio, lo_hz, occupied_bw_hz, tx_gain_db)
        except TxGuardRefused:
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        def rule(r: GuardRule) -> dict[str, Any]:
            return {"allowed_bands": [list(b) for b in r.allowed_bands], "max_tx_gain_db": r.max_tx_gain_db}
        return {"default": rule(self.default), "per_radio": {k: rule(v) for k, v in self.per_radio.items()}}


def _gain(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
        raise RadioConfigError(f"{where} = {value!r}; allowed: a number of dB")
    return float(value)

