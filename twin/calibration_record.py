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
``coding_gain_db`` no        decoder gain per code rate (dB), 3 values (see :func:`fit_coding_gain`)
=================  ========  ===================================================================

A missing ``phi_aci`` / ``phi_hwi`` falls back to ``phi`` when it is given, else to 0. Extra keys (raw
data, capture paths, confidence intervals, radio names) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import torch

from .config import CODE_RATES, MODULATION_NAMES, MODULATION_ORDERS, DTNConfig
from .link import packet_error_rate

__all__ = ["CALIBRATION_KEYS", "OPTIONAL_CALIBRATION_KEYS", "REQUIRED_CALIBRATION_KEYS", "fit_coding_gain",
           "from_calibration"]

REQUIRED_CALIBRATION_KEYS: tuple[str, ...] = ("kappa_t", "kappa_r", "acir1_db", "acir2_db")
"""Keys a calibration record must carry."""
OPTIONAL_CALIBRATION_KEYS: tuple[str, ...] = ("phi_aci", "phi_hwi", "phi")
"""Numeric keys a calibration record may carry (``coding_gain_db``, a list, is optional too)."""
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
    if "coding_gain_db" in record:
        gains = record["coding_gain_db"]
        if (not isinstance(gains, (list, tuple)) or len(gains) != len(config.coding_gain_db)
                or not all(isinstance(g, (int, float)) and math.isfinite(g) for g in gains)):
            raise ValueError(f"calibration record key 'coding_gain_db' must be {len(config.coding_gain_db)} finite "
                             f"numbers (dB), got {gains!r}")
        updates["coding_gain_db"] = tuple(float(g) for g in gains)
    return config.with_updates(**updates)


def fit_coding_gain(blocks: Sequence[Mapping], config: DTNConfig | None = None,
                    grid_db: tuple[float, float, float] = (-5.0, 20.0, 0.05)) -> tuple[tuple[float, ...], dict]:
    """The twin's decoder gain per code rate that best explains measured code-block outcomes (maximum likelihood).

    The twin's packet error rate (eqs. 16-17 with ``config.ser_model``) at the SINR measured on a link is the
    probability that one of its blocks fails; for each code rate the gain ``G_c`` maximising the Bernoulli
    likelihood of the observed successes and failures is found on a grid. Rates without observations keep the
    config's gain.

    Args:
        blocks: mappings with ``modulation`` ("bpsk", "qpsk", "16qam", "64qam"), ``rate`` ("1/2", "3/4", "5/6"),
            ``sinr_db`` (measured), ``blocks`` and ``blocks_ok`` (counts).
        config: the twin configuration whose model is fitted (default :class:`DTNConfig`).
        grid_db: (low, high, step) of the search.

    Returns:
        (gains in dB per code-rate index, details per rate: ``points``, ``blocks``, ``log_likelihood``).
    """
    config = config or DTNConfig()
    modulations = [m.lower() for m in MODULATION_NAMES]
    rates = [Fraction(r).limit_denominator(8) for r in CODE_RATES]
    grid = torch.arange(grid_db[0], grid_db[1] + 1e-9, grid_db[2], dtype=torch.float64)
    gains = list(config.coding_gain_db)
    details: dict[str, dict] = {}
    for c, rate in enumerate(rates):
        rows = [b for b in blocks if Fraction(str(b["rate"])) == rate and str(b["modulation"]).lower() in modulations
                and math.isfinite(float(b["sinr_db"])) and int(b["blocks"]) > 0]
        if not rows:
            continue
        sinr = torch.tensor([10 ** (float(b["sinr_db"]) / 10) for b in rows], dtype=torch.float64)
        order = torch.tensor([MODULATION_ORDERS[modulations.index(str(b["modulation"]).lower())] for b in rows])
        ok = torch.tensor([int(b["blocks_ok"]) for b in rows], dtype=torch.float64)
        bad = torch.tensor([int(b["blocks"]) for b in rows], dtype=torch.float64) - ok
        index = torch.full((len(rows),), c, dtype=torch.int64)
        best, best_ll = gains[c], -math.inf
        for g in grid.tolist():
            trial = tuple(g if i == c else gains[i] for i in range(len(gains)))
            per = packet_error_rate(sinr, order, index, config.packet_bits, trial, config.ser_model)
            per = per.clamp(1e-9, 1 - 1e-9)
            ll = float((ok * torch.log1p(-per) + bad * torch.log(per)).sum())
            if ll > best_ll:
                best, best_ll = g, ll
        gains[c] = best
        details[f"{rate.numerator}/{rate.denominator}"] = {"points": len(rows), "blocks": int((ok + bad).sum()),
                                                           "log_likelihood": best_ll, "coding_gain_db": best}
    return tuple(gains), details
