"""Twin parameters from a calibration record, and the twin's link abstraction fitted to a calibration's MCS sweep.

:func:`from_calibration` reads a :class:`calibration.record.CalibrationRecord` (or its :class:`TwinParameters`):
the twin's HWI (kappa_t, kappa_r), RRB ACIR1/ACIR2, phi and decoder gains. A missing ``phi_aci`` / ``phi_hwi``
falls back to ``phi`` when it is given, else to 0. :func:`fit_link_abstraction` is what a calibration session
calls to fit the decoder gains (:func:`calibration.session.run_calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import torch

from .config import CODE_RATES, MODULATION_NAMES, MODULATION_ORDERS, DTNConfig
from .link import packet_error_rate

if TYPE_CHECKING:  # the twin imports nothing of the project at run time
    from calibration.record import CalibrationRecord, LinkAbstraction, TwinParameters

__all__ = ["fit_coding_gain", "fit_link_abstraction", "from_calibration"]


def from_calibration(record: CalibrationRecord | TwinParameters, config: DTNConfig | None = None) -> DTNConfig:
    """A twin configuration whose HWI, ACIR, phi and decoder gains come from a calibration record.

    The twin's ACI and HWI are corrected by the measured deviations (``phi_aci``, ``phi_hwi``), so its
    SINR predicts the measured network's; ``config.phi`` records the joint deviation.

    Args:
        record: the calibration record, or its twin parameters.
        config: base configuration (default :class:`DTNConfig`); other fields are kept.

    Returns:
        A new :class:`DTNConfig`.

    Raises:
        ValueError: the decoder gains do not match the twin's code rates (the message names the count).
    """
    config = config or DTNConfig()
    twin = getattr(record, "twin", record)
    if isinstance(twin, Mapping) or not hasattr(twin, "coding_gain_db"):
        raise TypeError(f"from_calibration reads a CalibrationRecord or TwinParameters, got {type(record).__name__}")
    joint = twin.phi
    updates = dict(kappa_t=twin.kappa_t, kappa_r=twin.kappa_r, acir1_db=twin.acir1_db, acir2_db=twin.acir2_db,
                   phi_aci=twin.phi_aci if twin.phi_aci is not None else (joint if joint is not None else 0.0),
                   phi_hwi=twin.phi_hwi if twin.phi_hwi is not None else (joint if joint is not None else 0.0))
    if joint is not None:
        updates["phi"] = joint
    if twin.coding_gain_db is not None:
        if len(twin.coding_gain_db) != len(config.coding_gain_db):
            raise ValueError(f"calibration record key 'coding_gain_db' must be {len(config.coding_gain_db)} finite "
                             f"numbers (dB), got {list(twin.coding_gain_db)!r}")
        updates["coding_gain_db"] = tuple(twin.coding_gain_db)
    return config.with_updates(**updates)


def fit_link_abstraction(blocks: Sequence[Mapping]) -> LinkAbstraction:
    """The default twin's decoder gains fitted to a calibration's MCS-sweep code blocks (:func:`fit_coding_gain`),
    with the nominal gains they replace."""
    from calibration.record import LinkAbstraction

    nominal = DTNConfig()
    gains, details = fit_coding_gain(blocks, nominal)
    return LinkAbstraction(tuple(gains), details, tuple(nominal.coding_gain_db))


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
