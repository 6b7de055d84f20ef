"""Least-squares fits of a calibration session, each value with a 95 % confidence interval.

* :func:`fit_kappa`: TX and RX EVM (kappa_t per transmitter, kappa_r per receiver) from an EVM-versus-power
  sweep, separated by the TX distortion being *common* to every receiver that hears the same transmission while
  each receiver's distortion and noise are its own (see :mod:`calibration.session`).
* :func:`fit_ratio`: the scale ``1 + phi`` between measured and modelled powers (phi_aci, phi_hwi, joint phi).

Written here rather than taken from a library: the model is specific (a non-negative linear model whose rows mix
cross-correlations and error powers), and scipy's NNLS does the solving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import optimize, stats

__all__ = ["Estimate", "EvmObservation", "KappaFit", "combine_phi", "fit_kappa", "fit_ratio"]

REFERENCE_POWER = 10 ** (-12 / 10)
"""RMS power (re full scale) the power terms of the EVM model are expressed against, for conditioning."""


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its 95 % confidence interval and the number of points behind it."""

    value: float
    low: float
    high: float
    points: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "ci95": [self.low, self.high], "points": self.points}

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class EvmObservation:
    """One measured number of the EVM sweep (a ratio squared: power of the error over power of the signal).

    ``kind`` is ``"total"`` (mean |e|^2 at receiver ``rx``) or ``"cross"`` (Re mean(e_rx conj(e_rx2)) between
    two receivers of the same transmission, which keeps only what they share: the transmitter's distortion).
    """

    kind: str
    tx: str
    rx: str
    rx2: str | None
    power: float
    """RMS power of the transmitted slot, re digital full scale (linear)."""
    value: float
    samples: int
    """Resource elements averaged."""
    sigma: float = math.nan
    """Standard error of ``value`` (from the spread of the averaged products); NaN: unknown, then value / sqrt(samples)
    stands in."""


@dataclass
class KappaFit:
    """Result of :func:`fit_kappa`."""

    kappa_t: dict[str, Estimate]
    """Per transmitter: the signal-proportional TX EVM (ratio)."""
    kappa_r: dict[str, Estimate]
    """Per receiver: the RX EVM (ratio)."""
    noise: dict[str, float]
    """Per ``"tx->rx"``: the receiver-noise term b in EVM^2 = ... + b / (P / P_ref)."""
    tx_floor: dict[str, float]
    """Per transmitter: the power-independent TX error (DAC) term q in ... + q / (P / P_ref)."""
    tx_compression: dict[str, float]
    """Per transmitter: the compression term a in ... + a (P / P_ref)^2."""
    separated: bool
    """False when no transmitter was heard by two receivers at once: kappa_t and kappa_r are then an equal split
    of their measured sum."""
    residual_rms: float
    """RMS relative residual of the fit."""
    notes: list[str] = field(default_factory=list)

    def model(self, kind: str, tx: str, rx: str, power: float) -> float:
        """The fitted EVM^2 of an observation (for plots)."""
        u = power / REFERENCE_POWER
        common = self.kappa_t[tx].value ** 2 + self.tx_floor[tx] / u + self.tx_compression[tx] * u * u
        if kind == "cross":
            return common
        return common + self.kappa_r[rx].value ** 2 + self.noise[f"{tx}->{rx}"] / u

    def as_dict(self) -> dict[str, Any]:
        return {"kappa_t": {k: v.as_dict() for k, v in self.kappa_t.items()},
                "kappa_r": {k: v.as_dict() for k, v in self.kappa_r.items()},
                "noise_term": self.noise, "tx_floor_term": self.tx_floor, "tx_compression_term": self.tx_compression,
                "separated": self.separated, "residual_rms": self.residual_rms, "notes": list(self.notes)}


def _sqrt_interval(value: float, se: float, dof: int) -> tuple[float, float, float]:
    t = float(stats.t.ppf(0.975, max(dof, 1)))
    lo, hi = max(value - t * se, 0.0), max(value + t * se, 0.0)
    return math.sqrt(max(value, 0.0)), math.sqrt(lo), math.sqrt(hi)


def fit_kappa(observations: Sequence[EvmObservation]) -> KappaFit:
    """Fit the additive-distortion model to an EVM sweep by non-negative weighted least squares.

    Model (u = P / P_ref, P the transmitted RMS power re full scale)::

        cross(T; R1, R2)  = kt_T^2 + q_T / u + a_T u^2
        total(T -> R)     = kt_T^2 + q_T / u + a_T u^2 + kr_R^2 + b_TR / u

    ``kt`` is the signal-proportional TX distortion (EVM), ``q`` the TX error that does not scale with the signal
    (DAC quantisation, LO leakage), ``a`` PA compression, ``kr`` the RX distortion and ``b`` the receiver's noise
    relative to the signal. Rows are weighted by 1 / their standard error. Without cross rows the TX and RX
    parts of a sum cannot be told apart (adding c to every kt^2 and removing it from every kr^2 changes nothing);
    the fit then splits each receiver's distortion equally and says so.

    Args:
        observations: the sweep (see :class:`EvmObservation`); at least three powers per transmitter.

    Returns:
        :class:`KappaFit`.

    Raises:
        ValueError: too few observations to fit (the message says what is missing).
    """
    obs = [o for o in observations if math.isfinite(o.value) and (o.value > 0 or o.kind == "cross") and o.power > 0]
    if not obs:
        raise ValueError("no usable EVM observations (every sweep point failed or measured nothing)")
    txs = sorted({o.tx for o in obs})
    rxs = sorted({o.rx for o in obs if o.kind == "total"})
    pairs = sorted({f"{o.tx}->{o.rx}" for o in obs if o.kind == "total"})
    separated = all(any(o.kind == "cross" and o.tx == t for o in obs) for t in txs)
    notes: list[str] = []
    for t in txs:
        n_powers = len({round(o.power, 12) for o in obs if o.tx == t})
        if n_powers < 3:
            raise ValueError(f"transmitter {t}: EVM measured at {n_powers} power(s); the fit needs at least 3")
    if not separated:
        notes.append("no transmission was heard by two receivers at once (no loopback or third radio): "
                     "kappa_t and kappa_r are an equal split of the measured TX+RX distortion")

    # Unknowns: kt^2 (per tx, or one shared per rx-sum when not separated), q_T, a_T, kr^2_R, b_TR.
    cols: list[str] = [f"kt2:{t}" for t in txs] + [f"q:{t}" for t in txs] + [f"a:{t}" for t in txs]
    cols += [f"kr2:{r}" for r in rxs] + [f"b:{p}" for p in pairs]
    index = {c: i for i, c in enumerate(cols)}
    rows, y, w = [], [], []
    for o in obs:
        if o.kind == "cross" and not separated:
            continue
        u = o.power / REFERENCE_POWER
        row = np.zeros(len(cols))
        row[index[f"kt2:{o.tx}"]] = 1.0
        row[index[f"q:{o.tx}"]] = 1.0 / u
        row[index[f"a:{o.tx}"]] = u * u
        if o.kind == "total":
            row[index[f"kr2:{o.rx}"]] = 1.0
            row[index[f"b:{o.tx}->{o.rx}"]] = 1.0 / u
        rows.append(row)
        y.append(o.value)
        sigma = o.sigma if math.isfinite(o.sigma) and o.sigma > 0 else abs(o.value) / math.sqrt(max(o.samples, 1))
        w.append(1.0 / sigma)
    a = np.asarray(rows) * np.asarray(w)[:, None]
    rhs = np.asarray(y) * np.asarray(w)
    if not separated:
        # Pin the gauge: kt2 columns carry the TX part, kr2 the RX part, both as half of the sum.
        for t in txs:
            a[:, index[f"kt2:{t}"]] = 0.0
    scale = np.maximum(np.abs(a).max(axis=0), 1e-30)
    theta_scaled, _ = optimize.nnls(a / scale, rhs, maxiter=50 * len(cols))
    theta = theta_scaled / scale
    resid = rhs - a @ theta
    active = [i for i in range(len(cols)) if np.any(a[:, i] != 0)]
    dof = max(len(rhs) - len(active), 1)
    s2 = float(resid @ resid) / dof
    cov = np.zeros((len(cols), len(cols)))
    sub = a[:, active]
    cov[np.ix_(active, active)] = s2 * np.linalg.pinv(sub.T @ sub)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))

    n_points = {t: sum(1 for o in obs if o.tx == t) for t in txs}
    kappa_t: dict[str, Estimate] = {}
    kappa_r: dict[str, Estimate] = {}
    if separated:
        for t in txs:
            v, lo, hi = _sqrt_interval(theta[index[f"kt2:{t}"]], se[index[f"kt2:{t}"]], dof)
            kappa_t[t] = Estimate(v, lo, hi, n_points[t])
        for r in rxs:
            v, lo, hi = _sqrt_interval(theta[index[f"kr2:{r}"]], se[index[f"kr2:{r}"]], dof)
            kappa_r[r] = Estimate(v, lo, hi, sum(1 for o in obs if o.rx == r and o.kind == "total"))
    else:
        for r in rxs:
            i = index[f"kr2:{r}"]
            v, lo, hi = _sqrt_interval(theta[i] / 2, se[i] / 2, dof)
            kappa_r[r] = Estimate(v, lo, hi, sum(1 for o in obs if o.rx == r))
        for t in txs:
            heard = [kappa_r[r] for r in rxs if any(o.tx == t and o.rx == r for o in obs)]
            v = math.sqrt(float(np.mean([h.value ** 2 for h in heard])))
            kappa_t[t] = Estimate(v, min(h.low for h in heard), max(h.high for h in heard), n_points[t])
    return KappaFit(
        kappa_t=kappa_t, kappa_r=kappa_r,
        noise={p: float(theta[index[f"b:{p}"]]) for p in pairs},
        tx_floor={t: float(theta[index[f"q:{t}"]]) for t in txs},
        tx_compression={t: float(theta[index[f"a:{t}"]]) for t in txs},
        separated=separated, residual_rms=float(np.sqrt(np.mean(resid ** 2))), notes=notes)


def fit_ratio(measured: Iterable[float], modelled: Iterable[float],
              groups: Iterable[Any] | None = None) -> Estimate:
    """``phi`` in ``measured = (1 + phi) modelled``, with a 95 % confidence interval.

    Each point gives a ratio measured / modelled; with ``groups`` (e.g. the radio pair of each point) the estimate
    is the mean over groups of each group's mean ratio (every pair counts alike, however many points it has) and
    the interval reflects the measurement noise within the groups, not the spread between them.

    Args:
        measured, modelled: equally long sequences of powers (any one unit), modelled > 0.
        groups: optional label of each point.

    Returns:
        :class:`Estimate` of phi (not of 1 + phi).

    Raises:
        ValueError: fewer than two points, or a modelled value that is not positive.
    """
    y = np.asarray(list(measured), dtype=float)
    x = np.asarray(list(modelled), dtype=float)
    if y.size != x.size or y.size < 2:
        raise ValueError(f"fit_ratio needs at least two (measured, modelled) pairs of equal count, got "
                         f"{y.size} and {x.size}")
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("modelled powers must be finite and > 0")
    r = y / x
    labels = list(groups) if groups is not None else [0] * r.size
    if len(labels) != r.size:
        raise ValueError(f"groups has {len(labels)} labels for {r.size} points")
    means, variances = [], []
    pooled_dof = 0
    for g in dict.fromkeys(labels):
        rg = r[[i for i, lab in enumerate(labels) if lab == g]]
        means.append(float(np.mean(rg)))
        variances.append(float(np.var(rg, ddof=1)) / rg.size if rg.size > 1 else math.nan)
        pooled_dof += rg.size - 1
    known = [v for v in variances if math.isfinite(v)]
    fill = float(np.mean(known)) if known else 0.0
    var = sum(v if math.isfinite(v) else fill for v in variances) / len(means) ** 2
    scale = float(np.mean(means))
    t = float(stats.t.ppf(0.975, max(pooled_dof, 1)))
    half = t * math.sqrt(var)
    return Estimate(scale - 1.0, scale - 1.0 - half, scale - 1.0 + half, int(r.size))


def combine_phi(parts: Sequence[tuple[Estimate, float]]) -> Estimate:
    """The joint phi of several terms: ``sum(w_i phi_i) / sum(w_i)`` with weights the terms' nominal powers, and
    its interval from the parts' (independent) intervals."""
    total = sum(w for _, w in parts)
    if total <= 0:
        raise ValueError("combine_phi needs positive weights")
    value = sum(e.value * w for e, w in parts) / total
    half = math.sqrt(sum((e.half_width * w / total) ** 2 for e, w in parts))
    return Estimate(value, value - half, value + half, sum(e.points for e, _ in parts))
