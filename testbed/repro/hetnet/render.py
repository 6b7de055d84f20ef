"""The HetNet reproduction's output: PNG figures (:func:`plot_figures`), its section of the results page
(:func:`render_markdown`) and :func:`write_results`, which writes both and ``hetnet_results.json``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from testbed.repro.hetnet.plan import ABLATIONS, EXPERIMENTS, FAIRNESS, LEARNED, PAPER, Profile
from testbed.repro.hetnet.summarise import OVERALL_METRICS, fmt, per_seed, summarise
from testbed.repro.results_page import figures_link, replace_section

__all__ = ["NAMES", "RESULTS_BEGIN", "RESULTS_END", "plot_figures", "render_markdown", "write_results"]


NAMES = {"maddqn-dmaddpg": "MADDQN-DMADDPG", "dqn-dddpg": "DQN-DDDPG", "qmix": "QMIX", "maddpg": "MADDPG",
         "mappo": "MAPPO", "wmmse-ssa": "WMMSE + SSA", "random": "random", "no-double-q": "without double-Q",
         "no-twin-critic": "without double critic", "no-attention": "without attention",
         "throughput-reward": "throughput-only reward",
         **{name: f"MADDQN-DMADDPG, lambda_J = {changes['fairness_weight']:g}" for name, changes in FAIRNESS.items()}}


def plot_figures(outcome: Mapping[str, Any], summary: Mapping[str, Any], figures: Path) -> dict[str, str]:
    """PNG figures under ``figures`` (``hetnet_*.png``); returns {key: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    profile: Profile = outcome["profile"]

    def save(fig: Any, key: str) -> None:
        name = f"hetnet_{key}.png"
        fig.tight_layout()
        fig.savefig(figures / name, dpi=110)
        plt.close(fig)
        written[key] = name

    curves = {s: per_seed(outcome, s, lambda job: job["curve"]) for s in LEARNED + tuple(ABLATIONS)
              if any(job["scheme"] == s for job in outcome["jobs"])}
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for scheme, runs in curves.items():
            length = min(len(c) for c in runs)
            data = np.array([c[:length] for c in runs])
            axis = axes[1] if scheme in ABLATIONS or (scheme == "maddqn-dmaddpg" and "ablation" in summary) else None
            for ax in ([axes[0]] if scheme in LEARNED else []) + ([axis] if axis is not None else []):
                ax.plot(np.arange(1, length + 1), data.mean(0), label=NAMES[scheme])
                ax.fill_between(np.arange(1, length + 1), data.mean(0) - data.std(0), data.mean(0) + data.std(0), alpha=0.2)
        for ax, title in zip(axes, ("schemes", "ablations")):
            ax.set_xlabel("episode")
            ax.set_ylabel("return (eq. 10, summed over the episode)")
            ax.set_title(title)
            if ax.lines:
                ax.legend(fontsize=8)
        save(fig, "training")
    for key, axis, metrics, xlabel in (
            ("scaling", "scaling_ues", (("rate_mbps", "average rate per UE (Mbit/s)"), ("qos_non_compliance", "QoS non-compliance")), "N (UEs)"),
            ("scarcity", "scarcity_subchannels", (("spectral_efficiency", "spectral efficiency (bit/s/Hz)"), ("utilisation", "resource utilisation")), "M (sub-channels)"),
            ("robustness", "disturbance_db", (("throughput_std", "std of sum throughput (Mbit/s)"), ("return_variance", "return variance")), "CSI error (dB)")):
        if key not in summary:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        xs = list(getattr(profile, axis))
        for scheme, rows in summary[key].items():
            for ax, (metric, label) in zip(axes, metrics):
                means = [rows[x][metric][0] for x in xs]
                spreads = [rows[x][metric][1] for x in xs]
                ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=NAMES[scheme])
                ax.set_xlabel(xlabel)
                ax.set_ylabel(label)
        axes[0].legend(fontsize=8)
        save(fig, key)
    return written


RESULTS_BEGIN = "<!-- BEGIN repro hetnet -->"
RESULTS_END = "<!-- END repro hetnet -->"


def _p(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3g}"


def render_markdown(outcome: Mapping[str, Any], summary: Mapping[str, Any], figures: dict[str, str],
                    figures_dir: str, command: str) -> str:
    """The HetNet section of RESULTS.md."""
    profile: Profile = outcome["profile"]
    config = profile.network()
    train_hours = sum(job.get("train_seconds", 0.0) for job in outcome["jobs"]) / 3600
    lines = [
        RESULTS_BEGIN,
        "## Joint user association and channel resource scheduling: MADDQN-DMADDPG (Xie)",
        "",
        f"Regenerate with `{command}` (profile `{profile.name}`: {len(outcome['jobs'])} jobs"
        + (f", {outcome['reused']} of them kept from earlier calls" if outcome.get("reused") else "")
        + f", {outcome.get('total_seconds', outcome['seconds']) / 60:.1f} min wall clock in all, "
        f"{train_hours:.2f} CPU-hours of training runs of one thread each). `--only KEY` runs one experiment "
        f"({', '.join(EXPERIMENTS)}) and keeps the saved jobs of the others.",
        "",
        f"Setting: `twin.HetNetwork`, one MBS + K = {config.num_small_cells} SBSs, N = {config.num_ues} UEs (half static "
        f"sensors, half mobile), M = {config.num_subchannels} sub-channels of {config.bandwidth_hz / 1e6:g} MHz, OMA, "
        f"bitstream traffic, {config.slots_per_episode} slots of {1e3 * config.slot_duration_s:g} ms per episode. "
        f"Budget per training run: at most {profile.episodes} episodes on B = {profile.num_envs} networks "
        f"({profile.episodes * profile.slots_per_episode} gradient steps), stopping rule: mean return over "
        f"the last {profile.stop_window} episodes improving by less than 0.01 "
        + ("(it cannot fire within this budget)" if profile.stop_window and profile.episodes < 2 * profile.stop_window + 1
           else "") + ". "
        f"Evaluation: the greedy policy on {profile.eval_episodes} fresh deployment(s) x B networks per seed, the same "
        f"for every scheme; mean ± standard deviation over seeds {list(profile.seeds)}; p: two-sided paired t-test "
        "against MADDQN-DMADDPG over seeds.",
        "",
        "Design choices of ours (the paper's text does not fix them): agents are the UEs, with parameters shared by "
        "all UEs; a UE's discrete action is (BS, block offset): the BS numbers the UEs that chose the same offset and "
        "hands them consecutive blocks from the offset's start, so UEs of one BS never collide while agents still "
        "place themselves in the band (see `agents/marl/common.py`); users in range (attention keys) are the users "
        "attached to the same BS; the centralised critics are set networks over all UEs, so the policy runs on any N "
        "and M. The learned policies trained on the main network are the ones evaluated in the scaling, scarcity "
        "and robustness experiments (no retraining). QMIX picks one of 4 power levels; MADDPG uses strongest-signal "
        "association and round-robin blocks; WMMSE + SSA iterates in SNR units with w = 1 + SINR, so float32 "
        "state neither underflows nor cancels at high SINR. The paper's hyper-parameter values are not available to "
        "us: every learner uses the defaults listed in its config dataclass (`agents/marl/*.py`), with equal widths "
        "and budgets.",
        "",
        "### Targets",
        "",
        "| target (paper) | ours | met |",
        "|---|---|---|",
    ]
    for name, (value, met) in summary["targets"].items():
        lines.append(f"| {name} | {value} | {'yes' if met else 'no'} |")
    lines.append("")
    lines += _reading(summary)

    def image(key: str) -> None:
        if key in figures:
            lines.extend([f"![{key}]({figures_dir}/{figures[key]})", ""])

    def table(rows: Mapping[str, Any], title: str) -> None:
        header = "| scheme | " + " | ".join(label for _, label in OVERALL_METRICS) + " | return |"
        lines.extend(([title, ""] if title else []) + [header, "|---" * (len(OVERALL_METRICS) + 2) + "|"])
        for scheme, row in rows.items():
            cells = []
            for key, _ in OVERALL_METRICS + (("return", ""),):
                p = row.get(f"p_{key}", math.nan)
                cells.append(fmt(row[key]) + (f" (p {_p(p)})" if math.isfinite(p) else ""))
            lines.append(f"| {NAMES[scheme]} | " + " | ".join(cells) + " |")
        lines.append("")

    if "overall" in summary:
        table(summary["overall"], "### Overall comparison (main network)")
        lines += ["### Training efficiency", "",
                  "Episodes to 90 % of the final return (90 % of the way from the first episode's return, on the "
                  "5-episode moving average), final return (mean of the last 10 % of episodes) and its variance over "
                  "those episodes; training time of one run on one thread.", "",
                  "| scheme | episodes to 90 % | final return | return variance | training s |", "|---|---|---|---|---|"]
        for scheme, row in summary["efficiency"].items():
            lines.append(f"| {NAMES[scheme]} | {fmt(row['episodes_to_90'], 1)} | {fmt(row['final_return'], 2)} | "
                         f"{fmt(row['return_variance'], 2)} | {fmt(row['train_seconds'], 0)} |")
        lines.append("")
        image("training")
        lines += [f"Command: `{command} --only overall`", ""]
    if "ablation" in summary:
        table(summary["ablation"], "### Ablations")
        lines += [f"Command: `{command} --only ablation`", ""]
    if "fairness" in summary:
        weights = ", ".join(f"{changes['fairness_weight']:g}" for changes in FAIRNESS.values())
        lines += ["### Fairness weight", "",
                  f"MADDQN-DMADDPG trained with the Jain-fairness weight lambda_J of eq. 10 at {config.fairness_weight:g} "
                  f"(the main runs) and at {weights}; every policy evaluated on the main network (the metrics do not "
                  f"depend on the weights; the return column is eq. 10 with lambda_J = {config.fairness_weight:g}).", ""]
        table(summary["fairness"], "")
        lines += [f"Command: `{command} --only fairness`", ""]
    for key, axis, metrics, title in (
            ("scaling", "scaling_ues", (("rate_mbps", "rate (Mbit/s)"), ("qos_non_compliance", "non-compliance")),
             "### Scaling with N (average rate per UE, QoS non-compliance)"),
            ("scarcity", "scarcity_subchannels", (("spectral_efficiency", "SE (bit/s/Hz)"), ("utilisation", "utilisation")),
             "### Sub-channel scarcity (spectral efficiency, resource utilisation)"),
            ("robustness", "disturbance_db", (("throughput_std", "throughput std (Mbit/s)"), ("return_variance", "return variance"), ("throughput_mbps", "throughput (Mbit/s)")),
             "### Channel-disturbance robustness (CSI error std in dB)")):
        if key not in summary:
            continue
        xs = list(getattr(profile, axis))
        label = {"scaling": "N", "scarcity": "M", "robustness": "dB"}[key]
        lines += [title, "", "| scheme | " + " | ".join(f"{label} = {x:g}: {name}" for x in xs for _, name in metrics) + " |",
                  "|---" * (1 + len(xs) * len(metrics)) + "|"]
        for scheme, rows in summary[key].items():
            lines.append(f"| {NAMES[scheme]} | " + " | ".join(fmt(rows[x][m], 2) for x in xs for m, _ in metrics) + " |")
        lines.append("")
        image(key)
        lines += [f"Command: `{command} --only {key}`", ""]
    lines += ["### Inference time and FLOPs per decision", "",
              "Median latency of one slot's decisions for all N UEs (batch of one network, one CPU thread, "
              "`torch.set_num_threads(1)`), and FLOPs per slot counted by `torch.utils.flop_counter` (matrix products, "
              "2 per multiply-add). Also `python bench/bench_marl.py`. Latencies are wall-clock on a shared machine and "
              "grow with its load"
              + (f" (load average {outcome['decision_load']:.1f} when these were measured)"
                 if math.isfinite(outcome.get("decision_load", math.nan)) else "")
              + ": compare rows of one run.", "",
              "| scheme | N | latency (ms) | FLOPs per slot | FLOPs per UE |", "|---|---|---|---|---|"]
    for scheme, rows in summary["decision"].items():
        for n, cost in rows.items():
            lines.append(f"| {NAMES[scheme]} | {n} | {cost['latency_ms']:.3f} | {cost['flops']:.3g} | "
                         f"{cost['flops_per_ue']:.3g} |")
    lines += ["", f"Paper: {PAPER['decision_time_ms_n200']} ms per slot at N = 200.", "", RESULTS_END, ""]
    return "\n".join(lines)


def _reading(summary: Mapping[str, Any]) -> list[str]:
    """Plain statements of where the paper's ordering holds on our twin, in this run's numbers."""
    notes: list[str] = []
    overall = summary.get("overall", {})
    if "maddqn-dmaddpg" in overall:
        ours = overall["maddqn-dmaddpg"]
        ranked = sorted(overall, key=lambda s: -overall[s]["throughput_mbps"][0])
        notes.append("- Throughput ranking on our twin: " + " > ".join(
            f"{NAMES[s]} {overall[s]['throughput_mbps'][0]:.1f}" for s in ranked) + " Mbit/s.")
        above = [NAMES[s] for s in ranked if s != "maddqn-dmaddpg"
                 and overall[s]["throughput_mbps"][0] > ours["throughput_mbps"][0]]
        if above:
            verb = "reaches" if len(above) == 1 else "reach"
            notes.append(f"- The paper's ordering does not hold here: {', '.join(above)} {verb} more throughput than "
                         "MADDQN-DMADDPG.")
        ranked_jain = sorted(overall, key=lambda s: -overall[s]["jain"][0])
        notes.append("- Jain index: " + ", ".join(f"{NAMES[s]} {overall[s]['jain'][0]:.3f}" for s in ranked_jain) + ".")
    ablation = summary.get("ablation", {})
    if "maddqn-dmaddpg" in ablation:
        base = ablation["maddqn-dmaddpg"]["return"][0]
        worse = [NAMES[s] for s in ABLATIONS if s in ablation and ablation[s]["return"][0] < base]
        better = [NAMES[s] for s in ABLATIONS if s in ablation and ablation[s]["return"][0] >= base]
        if better:
            notes.append(f"- Ablations: removing a part does not lower the evaluation return for {', '.join(better)} "
                         f"(the paper reports every part helping); lower for {', '.join(worse) or 'none'}.")
        else:
            notes.append("- Ablations: every removed part lowers the evaluation return, as in the paper.")
    fairness = summary.get("fairness", {})
    if "maddqn-dmaddpg" in fairness and "wmmse-ssa" in fairness:
        wmmse = fairness["wmmse-ssa"]["throughput_mbps"][0]
        points = ", ".join(
            f"{NAMES[s]}: Jain {fairness[s]['jain'][0]:.3f} at {fairness[s]['throughput_mbps'][0]:.1f} Mbit/s "
            f"({100 * (fairness[s]['throughput_mbps'][0] / wmmse - 1):+.1f} % vs WMMSE + SSA)"
            for s in ("maddqn-dmaddpg", *FAIRNESS) if s in fairness)
        fair = [s for s in ("maddqn-dmaddpg", *FAIRNESS) if s in fairness and fairness[s]["jain"][0] >= 0.9
                and fairness[s]["throughput_mbps"][0] > wmmse]
        notes.append(f"- Fairness weight: {points}. "
                     + ("A weight reaches Jain >= 0.9 with more throughput than WMMSE + SSA: "
                        + ", ".join(NAMES[s] for s in fair) + "." if fair else
                        "No weight reaches Jain >= 0.9 together with more throughput than WMMSE + SSA: on our twin "
                        "the learner buys fairness with throughput."))
    return (["Reading the results:", ""] + notes + [""]) if notes else []


def write_results(outcome: Mapping[str, Any], results_path: Path, figures_dir: Path, command: str) -> dict[str, Any]:
    """Plot, write the HetNet section of ``results_path`` (other sections kept) and ``hetnet_results.json``."""
    summary = summarise(outcome)
    figures = plot_figures(outcome, summary, figures_dir)
    section = render_markdown(outcome, summary, figures, figures_link(figures_dir, results_path), command)
    replace_section(results_path, RESULTS_BEGIN, RESULTS_END, section)
    raw = {"profile": dataclasses.asdict(outcome["profile"]), "experiments": outcome["experiments"],
           "summary": summary, "jobs": outcome["jobs"], "seconds": outcome.get("total_seconds", outcome["seconds"]),
           "decision_load": outcome.get("decision_load")}
    (figures_dir / "hetnet_results.json").write_text(json.dumps(raw, indent=1, default=float), encoding="utf-8")
    return summary
