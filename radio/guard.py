"""The TX guard: the one place that decides whether a radio may transmit.

A transmission at LO ``f`` occupying ``bw`` Hz is allowed only if ``[f - bw/2, f + bw/2]`` lies inside one of
the allowed bands and the TX gain is at most the maximum for that radio. Per-radio overrides replace the
defaults for that radio only. With no bands configured nothing may transmit: the guard fails closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

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

