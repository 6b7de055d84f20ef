"""Twin parameters from a calibration record.

The calibration code produces a plain mapping; this module only reads it. Keys (all numbers):

=================  ========  ===================================================================
key                required  meaning
=================  ========  ===================================================================
``kappa_t``        yes       transmitter EVM as a ratio (0.05 = 5 %), in [0, 1)
``kappa_r``        yes       receiver EVM as a ratio, in [0, 1)
``acir1_db``       yes       ACIR of the first adjacent RRB (dB), > 0
``acir2_db``       yes       ACIR of the second adjacent RRB (dB), > 0
``phi_aci``        no        measured relative deviation of ACI power from the model, > -1
``phi_hwi``        no        measured relative deviation of HWI distortion from the model, > -1
``phi``            no        joint deviation (the paper's scalar phi), > -1
=================  ========  ===================================================================

A missing ``phi_aci`` / ``phi_hwi`` falls back to ``phi`` when it is given, else to 0. Extra keys (raw
data, capture paths, confidence intervals, radio names) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .config import DTNConfig

__all__ = ["CALIBRATION_KEYS", "OPTIONAL_CALIBRATION_KEYS", "REQUIRED_CALIBRATION_KEYS", "from_calibration"]

REQUIRED_CALIBRATION_KEYS: tuple[str, ...] = ("kappa_t", "kappa_r", "acir1_db", "acir2_db")
"""Keys a calibration record must carry."""
OPTIONAL_CALIBRATION_KEYS: tuple[str, ...] = ("phi_aci", "phi_hwi", "phi")
"""Keys a calibration record may carry."""
CALIBRATION_KEYS: tuple[str, ...] = REQUIRED_CALIBRATION_KEYS + OPTIONAL_CALIBRATION_KEYS
"""All keys :func:`from_calibration` reads."""


def _number(record: Mapping, key: str) -> float:
    value = record[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"calibration record key {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"calibration record key {key!r} must be finite, got {value!r}")
    return number


def from_calibration(record: Mapping, config: DTNConfig | None = None) -> DTNConfig:
    """A twin configuration whose HWI, ACIR and phi come from a calibration record.

    The twin's ACI and HWI are corrected by the measured deviations (``phi_aci``, ``phi_hwi``), so its
    SINR predicts the measured network's; ``config.phi`` records the joint deviation.

    Args:
        record: mapping with the keys of the module docstring.
        config: base configuration (default :class:`DTNConfig`); other fields are kept.

    Returns:
        A new :class:`DTNConfig`.

    Raises:
        KeyError: a required key is missing (the message names it).
        ValueError: a value is outside its allowed range (the message names the key and the range).
    """
    config = config or DTNConfig()
    missing = [key for key in REQUIRED_CALIBRATION_KEYS if key not in record]
    if missing:
        raise KeyError(f"calibration record lacks required key(s) {missing}; required: {list(REQUIRED_CALIBRATION_KEYS)}")
    values = {key: _number(record, key) for key in CALIBRATION_KEYS if key in record}
    for key in ("kappa_t", "kappa_r"):
        if not 0.0 <= values[key] < 1.0:
            raise ValueError(f"calibration record key {key!r} must be in [0, 1) (EVM as a ratio), got {values[key]}")
    for key in ("acir1_db", "acir2_db"):
        if values[key] <= 0.0:
            raise ValueError(f"calibration record key {key!r} must be > 0 dB, got {values[key]}")
    for key in OPTIONAL_CALIBRATION_KEYS:
        if key in values and values[key] <= -1.0:
            raise ValueError(f"calibration record key {key!r} must be > -1, got {values[key]}")
    joint = values.get("phi")
    updates = dict(kappa_t=values["kappa_t"], kappa_r=values["kappa_r"], acir1_db=values["acir1_db"],
                   acir2_db=values["acir2_db"],
                   phi_aci=values.get("phi_aci", joint if joint is not None else 0.0),
                   phi_hwi=values.get("phi_hwi", joint if joint is not None else 0.0))
    if joint is not None:
        updates["phi"] = joint
    return config.with_updates(**updates)
