"""Statistics of the DTN reproduction: means and spreads over seeds per experiment, paired gains, and the status
of each of the paper's targets (:func:`summarise`)."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from agents.dqn import DQNConfig
from testbed.repro.dtn.plan import COMPARISON_SCHEME, SCHEMES, Profile

__all__ = ["summarise"]


def _stats(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _pct(values: list[float]) -> str:
    mean, spread = _stats(values)
    return "n/a" if not math.isfinite(mean) else f"{100 * mean:+.1f} % ± {100 * spread:.1f}"


def _ratio_pct(values: list[float]) -> str:
    mean, spread = _stats(values)
    return "n/a" if not math.isfinite(mean) else f"{100 * mean:.1f} % ± {100 * spread:.1f}"


def _finals(outcome: Mapping[str, Any], **fixed: Any) -> list[float]:
    """Final rewards of the runs matching ``fixed``, ordered by seed."""
    fixed.setdefault("reward", None)
    fixed.setdefault("ser_model", "exact")
    runs = outcome["runs"]
    matched = sorted((spec.seed, result["final"]) for spec, result in runs.items()
                     if all(getattr(spec, k) == v for k, v in fixed.items()))
    return [value for _, value in matched]


def _baselines(outcome: Mapping[str, Any], name: str, network: tuple[int, int, int], kappa: float,
               phi: float, ser_model: str = "exact") -> list[float]:
    return [value for (n, net, k, p, seed, ser), value in sorted(outcome["baselines"].items(), key=lambda kv: kv[0][4])
            if n == name and net == network and k == kappa and p == phi and ser == ser_model]


def _paired(a: list[float], b: list[float], how: Callable[[float, float], float]) -> list[float]:
    return [how(x, y) for x, y in zip(a, b)]


def summarise(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers per experiment (means and spreads) and the status of each target."""
    profile: Profile = outcome["profile"]
    keys = {e.key for e in outcome["experiments"]}
    main = profile.main_network
    kappa0 = profile.hwi_levels[0]
    summary: dict[str, Any] = {"targets": {}}
    gain = lambda x, y: x / y - 1.0  # noqa: E731
    ratio = lambda x, y: x / y  # noqa: E731

    if "fig5a" in keys:
        summary["fig5a"] = {str(g): _stats(_finals(outcome, scheme="proposed", network=main, phi=0.4, discount=g,
                                                   kappa=kappa0, agent="madrl", block_length=0, ota_every=100))
                            for g in (0.7, 0.8, 0.9)}
    for key, phi in (("fig5b", 0.4), ("fig5c", 0.9)):
        if key not in keys:
            continue
        finals = {scheme: _finals(outcome, scheme=scheme, network=main, phi=phi, kappa=kappa0, discount=0.9,
                                  agent="madrl", block_length=0, ota_every=100)
                  for scheme in SCHEMES}
        summary[key] = {scheme: _stats(values) for scheme, values in finals.items()}
        for name in ("oracle-mcs", "maxp-3gpp-cqi"):
            summary[key][name] = _stats(_baselines(outcome, name, main, kappa0, phi))
        for scheme in ("proposed", "proposed-sync", "twin-calibrated"):
            summary[key][f"{scheme}_vs_physical_only"] = _stats(_paired(finals[scheme], finals["physical-only"], gain))
            summary[key][f"{scheme}_vs_twin_only"] = _stats(_paired(finals[scheme], finals["twin-only"], gain))
        for scheme in ("proposed", "proposed-sync"):
            if phi == 0.4:
                versus = _paired(finals[scheme], finals["physical-only"], gain)
                mean, _ = _stats(versus)
                summary["targets"][f"{scheme} within 1 % of physical-only at phi = 0.4"] = (
                    _pct(versus), bool(mean >= -0.01))
            else:
                versus = _paired(finals[scheme], finals["twin-only"], gain)
                mean, _ = _stats(versus)
                summary["targets"][f"{scheme} >= 14 % above twin-only at phi = 0.9"] = (_pct(versus), bool(mean >= 0.14))
        calibrated_vs_physical = _paired(finals["twin-calibrated"], finals["physical-only"], gain)
        mean, _ = _stats(calibrated_vs_physical)
        summary["targets"][f"twin calibrated from one physical episode within 2 % of physical-only (phi = {phi})"] = (
            _pct(calibrated_vs_physical), bool(mean >= -0.02))
    if "fig5d" in keys:
        summary["fig5d"] = {str(kappa): {scheme: _stats(_finals(outcome, scheme=scheme, network=main, phi=0.9,
                                                                kappa=kappa, agent="madrl", block_length=0,
                                                                discount=0.9, ota_every=100))
                                         for scheme in ("physical-only", "proposed", "proposed-sync", "twin-only")}
                            for kappa in profile.hwi_levels}
    if "fig6ab" in keys:
        table = {}
        for network in profile.sadrl_networks:
            row = {}
            for agent in ("sadrl", "madrl"):
                specs = [(s, r) for s, r in outcome["runs"].items() if s.agent == agent and s.network == network
                         and s.scheme == "proposed" and s.phi == 0.4 and s.block_length == 0 and s.ota_every == 100]
                row[agent] = {"final": _stats([r["final"] for _, r in specs]),
                              "seconds": _stats([r["seconds"] for _, r in specs])}
            table[str(network)] = row
        summary["fig6ab"] = table
    if "fig6c" in keys:
        physical_only = _finals(outcome, scheme="physical-only", network=main, phi=0.9, kappa=kappa0, agent="madrl",
                                block_length=0, discount=0.9)
        summary["fig6c"] = {"physical-only": _stats(physical_only)}
        for zk in profile.ota_sweep:
            finals = _finals(outcome, scheme="proposed", network=main, phi=0.9, kappa=kappa0, agent="madrl",
                             block_length=0, discount=0.9, ota_every=zk)
            summary["fig6c"][str(zk)] = {"reward": _stats(finals), "vs_physical_only": _stats(_paired(finals, physical_only, gain)),
                                         "z_k_used": profile.ota_every(zk)}
    if "fig7a" in keys:
        table = {}
        ratios_all: list[float] = []
        for network in profile.small_networks:
            madrl = _finals(outcome, scheme=COMPARISON_SCHEME, network=network, phi=0.4, kappa=kappa0, agent="madrl",
                            block_length=0, discount=0.9, ota_every=100)
            esa = _baselines(outcome, "esa", network, kappa0, 0.4)
            esa_fp = _baselines(outcome, "esa-fp", network, kappa0, 0.4)
            ratios = _paired(madrl, esa_fp, ratio)
            ratios_all += ratios
            table[str(network)] = {"madrl": _stats(madrl), "esa": _stats(esa), "esa-fp": _stats(esa_fp),
                                   "madrl_over_esa_fp": _stats(ratios)}
        summary["fig7a"] = table
        mean, _ = _stats(ratios_all)
        summary["targets"][">= 70.4 % of ESA-FP (aim 90 %)"] = (_ratio_pct(ratios_all), bool(mean >= 0.704))
    for key, axis, ser in (("fig7b", "network", "exact"), ("fig7c", "kappa", "exact"), ("printed", "kappa", "printed")):
        if key not in keys:
            continue
        table = {}
        points = ([(network, kappa0) for network in profile.scaling_networks] if axis == "network"
                  else [(profile.scaling_networks[-1], kappa) for kappa in profile.hwi_levels])
        suffix = " with the printed eq. 17" if ser == "printed" else ""
        for network, kappa in points:
            madrl = _finals(outcome, scheme=COMPARISON_SCHEME, network=network, phi=0.4, kappa=kappa, agent="madrl",
                            block_length=0, discount=0.9, ota_every=100, ser_model=ser)
            maxp = _baselines(outcome, "maxp-3gpp-cqi", network, kappa, 0.4, ser)
            rand = _baselines(outcome, "random", network, kappa, 0.4, ser)
            oracle = _baselines(outcome, "oracle-mcs", network, kappa, 0.4, ser)
            label = str(network) if axis == "network" else str(kappa)
            table[label] = {"madrl": _stats(madrl), "maxp-3gpp-cqi": _stats(maxp), "random": _stats(rand),
                            "oracle-mcs": _stats(oracle),
                            "over_maxp": _stats(_paired(madrl, maxp, gain)),
                            "over_random": _stats(_paired(madrl, rand, gain)),
                            "oracle_over_maxp": _stats(_paired(oracle, maxp, gain))}
            over = _paired(madrl, maxp, gain)
            if network == profile.scaling_networks[-1] and kappa == kappa0 and (axis == "network" or ser == "printed"):
                summary["targets"][f">= +46 % over MaxP-3GPP-CQI at (K, N) = {network[:2]}{suffix}"] = (
                    _pct(over), bool(_stats(over)[0] >= 0.46))
            if axis == "kappa" and kappa == profile.hwi_levels[-1]:
                summary["targets"][f">= +114 % over MaxP-3GPP-CQI at high HWI (kappa = {kappa}){suffix}"] = (
                    _pct(over), bool(_stats(over)[0] >= 1.14))
        summary[key] = table
    if "fig8" in keys:
        summary["fig8"] = {str(length): {scheme: _stats([r["final"] for s, r in outcome["runs"].items()
                                                         if s.block_length == length and s.scheme == scheme])
                                         for scheme in ("proposed-sync", "twin-only")}
                           for length in profile.block_lengths}
    if "reward" in keys:
        default_reward = DQNConfig.from_mapping(profile.dqn_overrides()).reward
        summary["reward"] = {}
        for mode in ("shared", "link"):
            matched = [r for s, r in outcome["runs"].items()
                       if s.scheme == "proposed" and s.network == main and s.phi == 0.4 and s.kappa == kappa0
                       and s.discount == 0.9 and s.block_length == 0 and s.ota_every == 100 and s.agent == "madrl"
                       and s.ser_model == "exact" and (s.reward or default_reward) == mode]
            first_half = [float(np.mean([v for _, v in r["curve"][: max(1, len(r["curve"]) // 2)]])) for r in matched]
            summary["reward"][mode] = {"final": _stats([r["final"] for r in matched]), "first_half": _stats(first_half)}
    summary["decision_time_ms"] = outcome["decision_time_ms"]
    return summary
