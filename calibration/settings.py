"""What a calibration sweeps, and what of it must match for a stored record to serve again.

:class:`CalibrationSettings` is the session's configuration; :func:`settings_key` is the part that names the
carrier (numerology, LO, rate, gains); :func:`calibration_depth` names the rest (the sweeps): ``full`` (the
defaults), ``quick`` (:data:`QUICK_SWEEPS`, ``testbed calibrate --quick``) or ``custom``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

__all__ = ["CARRIER_FIELDS", "QUICK_SWEEPS", "CalibrationSettings", "Nominal", "calibration_depth", "settings_key",
           "sweep_settings"]

CARRIER_FIELDS = ("numerology", "lo_hz", "tx_gain_db", "rx_gain_db")
"""Settings the settings key covers; the others say how deep the sweeps go."""
QUICK_SWEEPS: dict[str, Any] = {
    "evm_levels_db": (-15.0, -9.0, -3.0, 0.0), "leakage_levels_db": (0.0, 6.0), "aclr_levels_db": (-6.0, 0.0),
    "slots_per_point": 1, "aclr_capture_slots": 4, "mcs_levels_db": tuple(float(x) for x in range(-36, 1, 6))}
"""The sweeps of a quick calibration (a check with wider intervals; never reused for a full-depth request)."""


@dataclass(frozen=True)
class Nominal:
    """The twin's nominal hardware model that phi is measured against (the paper's defaults)."""

    kappa_t: float = 0.05
    """Nominal TX EVM (ratio)."""
    kappa_r: float = 0.05
    """Nominal RX EVM (ratio)."""
    acir1_db: float = 30.0
    """Nominal ACIR towards the first adjacent RRB (dB)."""
    acir2_db: float = 45.0
    """Nominal ACIR towards the second adjacent RRB (dB)."""


@dataclass(frozen=True)
class CalibrationSettings:
    """What a calibration session sweeps. Defaults take about 20 s on two simulated radios."""

    numerology: str = "lte5"
    """Carrier of the sweeps (the OFDM link's numerology names)."""
    lo_hz: float = 2.45e9
    """Carrier frequency (Hz); must lie in the TX guard's allowed bands."""
    tx_gain_db: float | None = None
    """TX gain during the sweeps (dB); None keeps each radio's configured gain."""
    rx_gain_db: float | None = None
    """RX gain during the sweeps (dB); None keeps each radio's configured gain."""
    evm_levels_db: tuple[float, ...] = (-24.0, -21.0, -18.0, -15.0, -12.0, -9.0, -6.0, -3.0, 0.0)
    """Slot power of the EVM sweep relative to a fully loaded slot at the plan's back-off (dB; 0 = RMS -12 dBFS)."""
    leakage_levels_db: tuple[float, ...] = (-4.0, 0.0, 4.0, 8.0)
    """Power of the single RB group of the leakage sweep (dB re the slot's full power per RE)."""
    aclr_levels_db: tuple[float, ...] = (-10.0, -6.0, -3.0, 0.0)
    """Carrier power of the ACLR sweep (dB re a fully loaded slot at the plan's back-off)."""
    mcs_levels_db: tuple[float, ...] = tuple(float(x) for x in range(-39, 1, 3))
    """Link power of the MCS (BLER versus SINR) sweep (dB re the slot's full power per RE); empty: no sweep."""
    mcs_menu: tuple[tuple[str, str], ...] = tuple((m, r) for m in ("bpsk", "qpsk", "16qam", "64qam")
                                                  for r in ("1/2", "3/4", "5/6"))
    """(modulation, code rate) pairs of the MCS sweep, eight links per slot."""
    slots_per_point: int = 6
    """Consecutive repetitions of the slot captured and averaged per EVM point (one transmission)."""
    rb_group: int = 3
    """RBs per group in the leakage sweep (one twin RRB)."""
    wide_rate_sps: float = 30.72e6
    """Sample rate of the ACLR captures (must reach the second adjacent channel)."""
    aclr_capture_slots: int = 12
    """Slot lengths (at the wide rate) captured for each ACLR point."""
    loopback: bool | None = None
    """Use loopback (a radio hearing its own transmission) where the radio supports it; None: where supported."""
    retries: int = 2
    """Extra attempts of a failed sweep point before it is dropped."""
    nominal: Nominal = field(default_factory=Nominal)
    """The twin's nominal model for phi."""

    def __post_init__(self) -> None:
        if self.slots_per_point < 1:
            raise ValueError(f"slots_per_point = {self.slots_per_point}; allowed: >= 1")
        if len(self.evm_levels_db) < 3:
            raise ValueError(f"evm_levels_db {self.evm_levels_db}: at least 3 levels are needed for the fit")
        if self.retries < 0:
            raise ValueError(f"retries = {self.retries}; allowed: >= 0")
        from radio.ofdm import numerology  # the OFDM stack loads only when settings are made

        numerology(self.numerology)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CalibrationSettings":
        """From :meth:`as_dict`'s output, also after a JSON round trip (lists back to tuples).

        Raises:
            ValueError: an unknown key (named, with the allowed ones) or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"calibration settings key(s) {unknown} unknown; allowed: {sorted(known)}")
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key == "nominal":
                value = Nominal(**value) if isinstance(value, Mapping) else value
            elif key == "mcs_menu":
                value = tuple(tuple(pair) for pair in value)
            elif isinstance(value, list):
                value = tuple(value)
            changes[key] = value
        try:
            return cls(**changes)
        except TypeError as e:
            raise ValueError(f"calibration settings {dict(values)!r}: {e}") from None

    @classmethod
    def at_depth(cls, quick: bool = False, lo_hz: float | None = None) -> "CalibrationSettings":
        """The default sweeps, or :data:`QUICK_SWEEPS` when ``quick``, at ``lo_hz`` (Hz; None: the default
        carrier). Raises ValueError naming a bad value."""
        settings = cls(**QUICK_SWEEPS) if quick else cls()
        return settings if lo_hz is None else replace(settings, lo_hz=lo_hz)


def settings_key(settings: CalibrationSettings, rate_sps: float) -> str:
    """What must match for a stored record to be reused: carrier, rate and gains."""
    return (f"{settings.numerology}|lo={settings.lo_hz:.0f}|rate={rate_sps:.0f}|"
            f"txg={settings.tx_gain_db}|rxg={settings.rx_gain_db}")


def _as_stored(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so stored and fresh settings compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def sweep_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep part of ``CalibrationSettings.as_dict()`` (everything the settings key does not cover), as
    stored."""
    return {k: v for k, v in _as_stored(dict(settings)).items() if k not in CARRIER_FIELDS}


def calibration_depth(settings: Mapping[str, Any] | None) -> str:
    """``"full"`` (the default sweeps), ``"quick"`` (:data:`QUICK_SWEEPS`) or ``"custom"``, from
    ``CalibrationSettings.as_dict()`` (a record's stored settings); ``"unknown"`` when ``settings`` is not a
    mapping. The carrier, rate and gains do not count."""
    if not isinstance(settings, Mapping):
        return "unknown"
    sweep = sweep_settings(settings)
    if sweep == sweep_settings(CalibrationSettings().as_dict()):
        return "full"
    if sweep == sweep_settings(CalibrationSettings.at_depth(quick=True).as_dict()):
        return "quick"
    return "custom"
