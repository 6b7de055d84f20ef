"""The calibration record: what one calibration session measured and fitted, as one typed, versioned value.

:func:`calibration.session.run_calibration` produces it whole (the link-abstraction fit included); the store keeps
it (:meth:`CalibrationRecord.stored_results` is its ``results`` column), runs copy it to ``calibration.json``
(:meth:`CalibrationRecord.to_json`), and the twin reads its :class:`TwinParameters`
(:func:`twin.calibration_record.from_calibration`).

The JSON layout (``version`` 1; a file or store row without ``version`` is the same layout from before the field
existed):

=====================  =================================================================================
key                    meaning
=====================  =================================================================================
``version``            :data:`RECORD_VERSION`
``id``                 the store's id (null until stored)
``results``            measurement results (:attr:`CalibrationRecord.results`) plus ``twin`` (the
                       :class:`TwinParameters`) and, when fitted, ``link_abstraction``
``raw``                ``{"points": [...]}``: every sweep point (absent from run directories' copies)
``notes``              dropped points, assumptions, analyser limits (strings)
``meta``               radios' identities, ``settings`` (:class:`CalibrationSettings` as a dict),
                       ``settings_key``, ``rate_sps``, ``loopback``, ``duration_s``, ``started_at``,
                       ``temperature_c``; once stored also ``depth``, ``gains_db`` and ``report``
=====================  =================================================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from calibration.settings import CalibrationSettings

__all__ = ["RECORD_VERSION", "CalibrationRecord", "LinkAbstraction", "TwinParameters"]

RECORD_VERSION = 1
"""Layout version of :meth:`CalibrationRecord.to_dict` (see the module docstring)."""


def _number(source: Mapping[str, Any], key: str) -> float:
    value = source[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"calibration record key {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"calibration record key {key!r} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class TwinParameters:
    """The twin's hardware parameters a calibration fitted (network averages over the measured directions)."""

    REQUIRED = ("kappa_t", "kappa_r", "acir1_db", "acir2_db")
    OPTIONAL = ("phi_aci", "phi_hwi", "phi")

    kappa_t: float
    """Transmitter EVM as a ratio (0.05 = 5 %), in [0, 1)."""
    kappa_r: float
    """Receiver EVM as a ratio, in [0, 1)."""
    acir1_db: float
    """ACIR towards the first adjacent RRB (dB), > 0."""
    acir2_db: float
    """ACIR towards the second adjacent RRB (dB), > 0."""
    coding_gain_db: tuple[float, ...] | None = None
    """Decoder gain per code rate (dB) fitted to the MCS sweep; None: the twin keeps its own."""
    phi_aci: float | None = None
    """Relative deviation of ACI power from the nominal model, > -1; None: ``phi``'s, else 0."""
    phi_hwi: float | None = None
    """Relative deviation of HWI distortion from the nominal model, > -1; None: ``phi``'s, else 0."""
    phi: float | None = None
    """Joint deviation (the paper's scalar phi), > -1; None: not given."""

    def __post_init__(self) -> None:
        for key in ("kappa_t", "kappa_r"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"calibration record key {key!r} must be in [0, 1) (EVM as a ratio), got "
                                 f"{getattr(self, key)}")
        for key in ("acir1_db", "acir2_db"):
            if not getattr(self, key) > 0.0:
                raise ValueError(f"calibration record key {key!r} must be > 0 dB, got {getattr(self, key)}")
        for key in self.OPTIONAL:
            value = getattr(self, key)
            if value is not None and not value > -1.0:
                raise ValueError(f"calibration record key {key!r} must be > -1, got {value}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TwinParameters":
        """From a mapping with the field names as keys (extra keys are ignored).

        Raises:
            KeyError: a required key is missing (the message names it).
            ValueError: a value is not a finite number or outside its range (the message names key and range).
        """
        missing = [key for key in cls.REQUIRED if key not in values]
        if missing:
            raise KeyError(f"calibration record lacks required key(s) {missing}; required: {list(cls.REQUIRED)}")
        numbers = {key: _number(values, key) for key in cls.REQUIRED + cls.OPTIONAL if values.get(key) is not None}
        gains = values.get("coding_gain_db")
        if gains is not None:
            if (not isinstance(gains, (list, tuple))
                    or not all(isinstance(g, (int, float)) and math.isfinite(g) for g in gains)):
                raise ValueError(f"calibration record key 'coding_gain_db' must be a list of finite numbers (dB), "
                                 f"got {gains!r}")
            gains = tuple(float(g) for g in gains)
        return cls(coding_gain_db=gains, **numbers)

    def as_dict(self) -> dict[str, Any]:
        """The given fields (None ones left out), as stored."""
        out: dict[str, Any] = {"kappa_t": self.kappa_t, "kappa_r": self.kappa_r, "acir1_db": self.acir1_db,
                               "acir2_db": self.acir2_db}
        if self.coding_gain_db is not None:
            out["coding_gain_db"] = list(self.coding_gain_db)
        out.update({key: getattr(self, key) for key in self.OPTIONAL if getattr(self, key) is not None})
        return out


@dataclass(frozen=True)
class LinkAbstraction:
    """The twin's decoder gains fitted to the MCS sweep's code blocks (maximum likelihood per code rate)."""

    coding_gain_db: tuple[float, ...]
    """Fitted gain per code rate (dB)."""
    per_rate: dict[str, Any]
    """Per code rate ("1/2", ...): ``points``, ``blocks``, ``log_likelihood``, ``coding_gain_db``."""
    nominal_coding_gain_db: tuple[float, ...]
    """The twin's gains before the fit (dB)."""

    def as_dict(self) -> dict[str, Any]:
        return {"coding_gain_db": list(self.coding_gain_db), "per_rate": self.per_rate,
                "nominal_coding_gain_db": list(self.nominal_coding_gain_db)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LinkAbstraction":
        return cls(tuple(float(g) for g in values["coding_gain_db"]), dict(values.get("per_rate") or {}),
                   tuple(float(g) for g in values.get("nominal_coding_gain_db") or ()))


@dataclass
class CalibrationRecord:
    """One calibration: fitted twin parameters, measurement results, every sweep point, notes and provenance."""

    twin: TwinParameters
    """The twin's parameters (kappa_t, kappa_r, RRB ACIR1/ACIR2, decoder gains when fitted)."""
    settings: CalibrationSettings
    """What the session swept."""
    results: dict[str, Any]
    """Measurement results: ``evm`` (3GPP and tracked, per pair), ``kappa`` (per radio with 95 % intervals, noise
    terms per directed pair), ``rrb_acir_db``, ``aclr`` (ACLR/ACIR/ACS per pair and power), ``phi_hwi``,
    ``phi_aci``, ``phi`` (estimates with intervals, or None), ``nominal``, ``hwi_points``, ``constellation``,
    ``mcs_sweep`` (code-block outcomes per MCS and SINR)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """``{"points": [...]}``: every sweep point; empty when read back without it."""
    notes: list[str] = field(default_factory=list)
    """Dropped points, assumptions, analyser limits."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance (module docstring); ``settings`` there is always :attr:`settings` as a dict."""
    link_abstraction: LinkAbstraction | None = None
    """The decoder-gain fit (None: no MCS sweep)."""
    id: int | None = None
    """The store's id; None until stored."""
    version: int = RECORD_VERSION
    """Layout version."""

    def __post_init__(self) -> None:
        self.meta = {**self.meta, "settings": self.settings.as_dict()}

    @property
    def numerology(self) -> str:
        """The carrier's numerology name (e.g. ``lte5``)."""
        return self.settings.numerology

    @property
    def lo_hz(self) -> float:
        """The carrier the radios were calibrated at (Hz)."""
        return float(self.settings.lo_hz)

    @property
    def settings_key(self) -> str:
        return str(self.meta.get("settings_key", ""))

    @property
    def report(self) -> dict[str, str]:
        """Paths of the stored report (``json``, ``html``); {} when none was written."""
        return dict(self.meta.get("report") or {})

    def snr_reference_db(self, ap_radios: list[str], device: str) -> dict[str, float]:
        """SNR (dB) each AP radio's full-power slot reaches at ``device``: minus the measured noise term of the
        pair (the noise-to-signal ratio at the sweep's reference power).

        Raises:
            ValueError: the record has no positive noise term for a pair (the message names it).
        """
        noise = (self.results.get("kappa") or {}).get("noise_term") or {}
        out = {}
        for ap in ap_radios:
            b = noise.get(f"{ap}->{device}")
            if b is None or b <= 0:
                raise ValueError(f"the calibration record has no noise term for {ap}->{device}; recalibrate these "
                                 f"radios")
            out[ap] = -10 * math.log10(b)
        return out

    def stored_results(self) -> dict[str, Any]:
        """The store's ``results`` column: :attr:`results` with ``twin`` and ``link_abstraction`` in it."""
        out = {**self.results, "twin": self.twin.as_dict()}
        if self.link_abstraction is not None:
            out["link_abstraction"] = self.link_abstraction.as_dict()
        return out

    def to_dict(self, include_raw: bool = True) -> dict[str, Any]:
        """The JSON layout of the module docstring (``raw`` left out unless ``include_raw``)."""
        out: dict[str, Any] = {"version": self.version, "id": self.id, "results": self.stored_results(),
                               "notes": list(self.notes), "meta": dict(self.meta)}
        if include_raw:
            out["raw"] = self.raw
        return out

    def to_json(self, include_raw: bool = True) -> str:
        return json.dumps(self.to_dict(include_raw), indent=1, default=float)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CalibrationRecord":
        """Read :meth:`to_dict`'s layout (or a store row's columns with the same names).

        Raises:
            ValueError: a newer layout version, or the record lacks or mangles a required part (the message says
                which).
        """
        version = int(data.get("version") or RECORD_VERSION)
        if version > RECORD_VERSION:
            raise ValueError(f"calibration record layout version {version}; this testbed reads up to "
                             f"{RECORD_VERSION} (upgrade testbed)")
        results = dict(data.get("results") or {})
        if "twin" not in results:
            raise ValueError("calibration record has no results.twin (the fitted twin parameters)")
        try:
            twin = TwinParameters.from_mapping(results.pop("twin"))
        except KeyError as e:
            raise ValueError(str(e.args[0])) from None
        abstraction = results.pop("link_abstraction", None)
        meta = dict(data.get("meta") or {})
        if not isinstance(meta.get("settings"), Mapping):
            raise ValueError("calibration record has no meta.settings (what the session swept)")
        return cls(twin=twin, settings=CalibrationSettings.from_dict(meta["settings"]), results=results,
                   raw=dict(data.get("raw") or {}), notes=[str(n) for n in data.get("notes") or []], meta=meta,
                   link_abstraction=None if abstraction is None else LinkAbstraction.from_mapping(abstraction),
                   id=None if data.get("id") is None else int(data["id"]), version=RECORD_VERSION)

    @classmethod
    def from_json(cls, text: str) -> "CalibrationRecord":
        return cls.from_dict(json.loads(text))
