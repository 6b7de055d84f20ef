"""Statistics of the HetNet reproduction: means and sample standard deviations over seeds, paired t-tests against
MADDQN-DMADDPG, training efficiency, and the status of the paper's targets (:func:`summarise`)."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from testbed.repro.hetnet.plan import ABLATIONS, CLASSICAL, FAIRNESS, LEARNED, SIZE_AGNOSTIC, Profile

__all__ = ["OVERALL_METRICS", "fmt", "paired_p_value", "per_seed", "summarise", "training_efficiency"]


def _stats(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)


def fmt(stats: tuple[float, float], digits: int = 3) -> str:
    mean, spread = stats
    return "n/a" if not math.isfinite(mean) else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def paired_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided paired t-test p-value (NaN with fewer than 2 pairs or identical pairs)."""
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        return math.nan
    differences = np.asarray(a) - np.asarray(b)
    if np.allclose(differences, differences[0]):
        return 0.0 if differences[0] != 0 else 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def per_seed(outcome: Mapping[str, Any], scheme: str, pick: Callable[[dict[str, Any]], float]) -> list[float]:
    rows = sorted((job["seed"], job) for job in outcome["jobs"] if job["scheme"] == scheme)
    return [pick(job) for _, job in rows]


def training_efficiency(curve: list[float]) -> dict[str, float]:
    """Episodes to 90 % of the final return, the final return and its variance.

    Final return: the mean over the last 10 % of episodes (at least 1); its variance over the same episodes.
    "90 % of the final return" is 90 % of the way from the first episode's return to the final one (returns can be
    negative), read on the 5-episode moving average.
    """
    values = np.asarray(curve, dtype=float)
    tail = max(1, len(values) // 10)
    final = float(values[-tail:].mean())
    variance = float(values[-tail:].var(ddof=1)) if tail > 1 else 0.0
    smooth = np.convolve(values, np.ones(min(5, len(values))) / min(5, len(values)), mode="valid")
    threshold = values[0] + 0.9 * (final - values[0])
    reached = np.nonzero(smooth >= threshold)[0] if final >= values[0] else np.nonzero(smooth <= threshold)[0]
    episodes = float(reached[0] + min(5, len(values))) if len(reached) else float(len(values))
    return {"episodes_to_90": episodes, "final_return": final, "return_variance": variance}


OVERALL_METRICS: tuple[tuple[str, str], ...] = (
    ("throughput_mbps", "throughput (Mbit/s)"), ("energy_efficiency", "EE (Mbit/J)"),
    ("qos_non_compliance", "QoS non-compliance"), ("jain", "Jain"), ("handover_rate", "handover rate"))


def summarise(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Per-table numbers: {metric: (mean, std)} per scheme, p-values against MADDQN-DMADDPG, and the targets."""
    profile: Profile = outcome["profile"]
    present = {job["scheme"] for job in outcome["jobs"]}
    summary: dict[str, Any] = {"targets": {}}
    ours = "maddqn-dmaddpg"

    def main_table(schemes: Iterable[str]) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for scheme in schemes:
            if scheme not in present:
                continue
            row: dict[str, Any] = {}
            for key, _ in OVERALL_METRICS + (("return", ""),):
                values = per_seed(outcome, scheme, lambda job: job["main"][key])
                row[key] = _stats(values)
                if scheme != ours and ours in present:
                    row[f"p_{key}"] = paired_p_value(per_seed(outcome, ours, lambda job: job["main"][key]), values)
            table[scheme] = row
        return table

    if "overall" in outcome["experiments"]:
        summary["overall"] = main_table(LEARNED + CLASSICAL)
        efficiency: dict[str, Any] = {}
        for scheme in LEARNED:
            if scheme in present:
                rows = [training_efficiency(c) for c in per_seed(outcome, scheme, lambda job: job["curve"])]
                efficiency[scheme] = {k: _stats([r[k] for r in rows]) for k in rows[0]}
                efficiency[scheme]["train_seconds"] = _stats(per_seed(outcome, scheme, lambda job: job["train_seconds"]))
        summary["efficiency"] = efficiency
    if "ablation" in outcome["experiments"]:
        summary["ablation"] = main_table((ours, *ABLATIONS, "wmmse-ssa"))
    if "fairness" in outcome["experiments"]:
        summary["fairness"] = main_table((ours, *FAIRNESS, "wmmse-ssa"))
    for key, axis in (("scaling", "scaling_ues"), ("scarcity", "scarcity_subchannels"), ("robustness", "disturbance_db")):
        if key not in outcome["experiments"]:
            continue
        table = {}
        for scheme in SIZE_AGNOSTIC:
            if scheme not in present:
                continue
            table[scheme] = {}
            for value in getattr(profile, axis):
                table[scheme][value] = {metric: _stats(per_seed(outcome, scheme, lambda job: job[key][value][metric]))
                                        for metric in ("rate_mbps", "qos_non_compliance", "spectral_efficiency",
                                                       "utilisation", "throughput_mbps", "throughput_std",
                                                       "return_variance", "jain")}
        summary[key] = table

    if {ours, "wmmse-ssa"} <= present:
        ours_t = per_seed(outcome, ours, lambda job: job["main"]["throughput_mbps"])
        wmmse_t = per_seed(outcome, "wmmse-ssa", lambda job: job["main"]["throughput_mbps"])
        gain = _stats([a / b - 1 for a, b in zip(ours_t, wmmse_t)])
        summary["targets"]["throughput over WMMSE + SSA (paper +33 %)"] = (
            f"{100 * gain[0]:+.1f} % ± {100 * gain[1]:.1f} (p = {paired_p_value(ours_t, wmmse_t):.3g})", gain[0] >= 0.33)
        jain = _stats(per_seed(outcome, ours, lambda job: job["main"]["jain"]))
        summary["targets"]["Jain index >= 0.9"] = (fmt(jain), jain[0] >= 0.9)
    if "scaling" in summary and ours in summary["scaling"]:
        largest = max(profile.scaling_ues)
        row = summary["scaling"][ours][largest]
        summary["targets"][f"runs at N = {largest}"] = (
            f"rate {fmt(row['rate_mbps'])} Mbit/s, non-compliance {fmt(row['qos_non_compliance'])}",
            math.isfinite(row["rate_mbps"][0]))
    decision = outcome["decision"].get(ours, {})
    if 200 in decision:
        latency = decision[200]["latency_ms"]
        summary["targets"]["decision <= 1 ms per slot at N = 200, one core (paper 12.45 ms)"] = (
            f"{latency:.3f} ms", latency <= 1.0)
    summary["decision"] = outcome["decision"]
    return summary
