"""The report page of a run (``report.html``): figures written beside it and embedded, the calibration's report
copied in, and the tables of the evaluation with its spread. One function per run family."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from calibration.record import CalibrationRecord
from calibration.report import format_value
from testbed.report_html import copy_calibration_report, figures_html, spread_rows

__all__ = ["UNITS_NOTE", "hetnet_report", "link_adaptation_report", "sinr_scatter"]

UNITS_NOTE = (
    "ota_throughput_mbps is what the air delivered: information bits of CRC-passed code blocks per second of air "
    "time (every OFDM slot a twin slot took, its rounds included), in the carrier's real Mbit/s. credited_twin_mbps "
    "is what the learner is credited, in the twin's units: time share x the twin's block bandwidth x log2(M) x code "
    "rate x the fraction of code blocks whose CRC passed over the air; twin_throughput_mbps is the twin's Shannon "
    "rate for the same decisions, in the same units. Jain, QoS, energy efficiency and the return are the twin's "
    "formulas on the credited throughputs.")
"""How the run's three throughputs relate (report and console)."""


def delivered_html(summary: dict[str, Any]) -> str:
    """The evaluation's delivered throughput in real units, beside the reward in twin units (over the air only)."""
    delivered = summary.get("evaluation_ota_throughput_mbps") or {}
    if not delivered:
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{summary['evaluation'][k]:.3f}</td><td>{v:.3f}</td>"
                   f"<td>{summary['evaluation'][k] / v if v > 0 else float('nan'):.2f}</td></tr>"
                   for k, v in delivered.items())
    return ("<h3>Delivered over the air</h3><p>Information bits of CRC-passed code blocks per second of air time, in "
            "the carrier's real Mbit/s, beside the reward in twin units and their ratio (the mapping: twin RRB "
            "symbol rate and nominal MCS rates against the REs a slot really carries).</p><table><tr><th>policy</th>"
            "<th>reward, twin units</th><th>delivered, Mbit/s</th><th>twin units per delivered Mbit/s</th></tr>"
            + rows + "</table>")


def sinr_scatter(path: Path, pairs: list[tuple[float, float]], xlabel: str, title: str) -> None:
    """PNG of measured SINR against a prediction (dB), with the diagonal: ``pairs`` are (predicted, measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([p for p, _ in pairs], [m for _, m in pairs], ".", ms=3, alpha=0.5)
    low, high = min(min(p, m) for p, m in pairs), max(max(p, m) for p, m in pairs)
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("measured SINR (dB)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def link_adaptation_report(run_dir: Path, summary: dict[str, Any], metrics: list[dict[str, Any]],
                           calibration: CalibrationRecord | None,
                           sinr_pairs: list[tuple[float, float]] | None = None) -> str:
    """The ``report.html`` page of a link-adaptation run (its PNG figures are written into ``run_dir`` and
    embedded; the calibration's report is copied into ``calibration/``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    twin_m = [m for m in metrics if m["source"] == "twin"]
    ota_m = [m for m in metrics if m["source"] == "physical"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([m["episode"] for m in twin_m], [m["charts/episode_reward"] for m in twin_m], ".", ms=3, label="twin")
    ax.plot([m["episode"] for m in ota_m], [m["charts/episode_reward"] for m in ota_m], "o-", label="over the air")
    ax.set_xlabel("episode")
    ax.set_ylabel("sum goodput per slot (Mbit/s)")
    ax.set_title("training: twin and over-the-air episodes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "training.png", dpi=90)
    plt.close(fig)
    figures.append(("training.png", "Episode reward in the twin and over the air (the OTA versus twin throughput)."))
    phis = [(m["episode"], m["ota/measured_phi"]) for m in ota_m if m.get("ota/measured_phi") is not None]
    if phis:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([p[0] for p in phis], [p[1] for p in phis], "o-")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("episode")
        ax.set_ylabel("running phi")
        ax.set_title("phi measured over the air against the calibrated twin")
        fig.tight_layout()
        fig.savefig(run_dir / "phi.png", dpi=90)
        plt.close(fig)
        figures.append(("phi.png", "Running phi estimate after each OTA episode (the twin is set to it)."))
    if sinr_pairs:
        sinr_scatter(run_dir / "sinr.png", sinr_pairs, "twin-predicted SINR (dB)", "over-the-air link-slots")
        figures.append(("sinr.png", "Each link-slot of the OTA training episodes: measured SINR against what the twin "
                                    "(phi = 0) predicted for it: the twin's fidelity on these radios."))
    evaluation = summary.get("evaluation") or {}
    if evaluation:
        fig, ax = plt.subplots(figsize=(6, 3))
        labels = list(evaluation)
        ax.bar(labels, [evaluation[k] for k in labels], color=["tab:green"] + ["tab:grey"] * (len(labels) - 1))
        ax.set_ylabel("reward per slot (twin units)")
        ax.set_title("evaluation " + ("over the air" if summary["physical"]["kind"] != "analytic" else "(analytic)"))
        fig.tight_layout()
        fig.savefig(run_dir / "evaluation.png", dpi=90)
        plt.close(fig)
        figures.append(("evaluation.png", "Greedy policy against the baselines on the same physical network."))
    cal_html = "<p>No calibration (analytic physical network).</p>"
    if calibration:
        r = calibration.results
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(format_value(v))}</td></tr>"
                       for k, v in calibration.twin.as_dict().items())

        def db_cell(point: dict[str, Any], key: str) -> str:
            # An ACLR above what the receiving radio can resolve is only known as a lower bound.
            if point.get(key) is not None:
                return f"{point[key]:.1f}"
            bound = point.get(key.replace("_db", "_measured_db"))
            return f"&gt; {bound:.1f} (analyser limited)" if bound is not None else "n/a"

        aclr = "".join(
            f"<tr><td>{html.escape(pair)}</td><td>{db_cell(top, 'aclr1_db')}</td><td>{db_cell(top, 'acir1_db')}"
            f"</td></tr>"
            for pair, pts in r["aclr"].items() for top in [max(pts, key=lambda p: p["channel_power_dbfs"])])
        phi = r.get("phi") or {}
        report = copy_calibration_report(calibration, run_dir)
        choice = (summary.get("calibration_choice") or {}).get("message")
        cal_html = (f"<p>Calibration {calibration.id}"
                    + (f' (<a href="{html.escape(report)}">report</a>)' if report else
                       " (its report is no longer in the store)")
                    + f"; phi against the nominal model {phi.get('value', float('nan')):.3f}.</p>"
                    + (f"<p>{html.escape(choice)}</p>" if choice else "")
                    + f"<table><tr><th>twin parameter</th><th>value</th></tr>{rows}</table>"
                    f"<table><tr><th>pair</th><th>ACLR1 dB</th><th>ACIR1 dB</th></tr>{aclr}</table>")
    spread = summary.get("evaluation_ci95") or {}
    ev = (spread_rows(spread) if spread else
          "<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in evaluation.items())
          + "</table>")
    imgs = figures_html(run_dir, figures)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>testbed run {html.escape(summary['run'])}"
            f"</title><style>body{{font-family:sans-serif;max-width:960px;margin:auto}}td,th{{padding:2px 8px}}"
            f"</style></head><body><h1>Run {html.escape(summary['run'])}</h1>"
            f"<p>{summary['episodes']} episodes ({summary['ota_episodes']} over the air) in {summary['seconds']:.0f} s; "
            f"OTA share of wall time {100 * summary['ota_share']:.0f} %."
            + (f" Measured SINR minus the twin's prediction: {summary['ota_sinr']['median_error_db']:+.2f} dB median "
               f"({summary['ota_sinr']['median_abs_error_db']:.2f} dB median absolute) over "
               f"{summary['ota_sinr']['link_slots']} OTA link-slots." if summary.get("ota_sinr") else "")
            + "</p>"
            f"<h2>Evaluation (mean reward per slot, twin units)</h2>"
            f"<p>Per policy: the mean over the evaluation episodes, the 95 % t-interval of that mean over the "
            f"n episodes, and each episode's mean over its slots. The reward is in the twin's units: the sum over "
            f"the links of the twin's nominal rate of the chosen MCS (Mbit/s of a twin RRB) times the share of its "
            f"code blocks whose CRC passed over the air.</p>{ev}{delivered_html(summary)}"
            f"<h2>Calibration used</h2>{cal_html}<h2>Plots</h2>{imgs}</body></html>")
    return page


def hetnet_report(directory: Path, summary: dict[str, Any], history: list[dict[str, Any]],
                  records: list[dict[str, Any]], calibration: CalibrationRecord | None = None) -> str:
    """The ``report.html`` page of a HetNet run (its PNG figures are written into ``directory`` and embedded; the
    calibration's report is copied into ``calibration/``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([m["episode"] for m in history], [m["charts/return"] for m in history], ".-", ms=3)
    ax.set_xlabel("episode")
    ax.set_ylabel("return (eq. 10)")
    ax.set_title("MADDQN-DMADDPG training in the HetNet twin")
    fig.tight_layout()
    fig.savefig(directory / "training.png", dpi=90)
    plt.close(fig)
    figures.append(("training.png", "Episode return in the twin (mean over the B networks)."))
    evaluation = summary.get("evaluation") or {}
    if evaluation:
        labels = list(evaluation)
        fig, (ax_air, ax_twin) = plt.subplots(1, 2, figsize=(9, 3))
        x = range(len(labels))
        ax_air.bar(list(x), [evaluation[k]["ota_throughput_mbps"] for k in labels], 0.5)
        ax_air.set_xticks(list(x), labels)
        ax_air.set_ylabel("Mbit/s (delivered bits / air time)")
        ax_air.set_title("over the air", fontsize=9)
        ax_twin.bar([i - 0.2 for i in x], [evaluation[k]["credited_twin_mbps"] for k in labels], 0.4,
                    label="credited (measured CRC outcome)")
        ax_twin.bar([i + 0.2 for i in x], [evaluation[k]["twin_throughput_mbps"] for k in labels], 0.4,
                    label="twin Shannon, same decisions", color="tab:grey")
        ax_twin.set_xticks(list(x), labels)
        ax_twin.set_ylabel("twin units (Mbit/s of the twin's blocks)")
        ax_twin.set_title("in the twin's units", fontsize=9)
        ax_twin.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(directory / "evaluation.png", dpi=90)
        plt.close(fig)
        figures.append(("evaluation.png", "Greedy policies on the same deployments. Left: information bits of "
                                          "CRC-passed blocks per second of air time, in the carrier's real Mbit/s. "
                                          "Right, in the twin's units: what the learner is credited for the measured "
                                          "decoding outcome, and what the twin's Shannon rates give for the same "
                                          "decisions."))
    pairs = [(r["predicted_sinr_db"], r["sinr_db"]) for r in records
             if r["sinr_db"] is not None and r["predicted_sinr_db"] is not None and math.isfinite(r["sinr_db"])]
    if pairs:
        sinr_scatter(directory / "sinr.png", pairs, "predicted SINR (dB)", "over-the-air UE-slots")
        figures.append(("sinr.png", "Every UE-slot played: measured SINR against the calibrated model's prediction for "
                                    "the rendering (the twin's SINR as rendered, with the round's leakage and "
                                    "distortion)."))
    keys = ("ota_throughput_mbps", "credited_twin_mbps", "twin_throughput_mbps", "jain", "qos_non_compliance",
            "energy_efficiency", "handover_rate", "return", "bler", "sinr_error_db")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("policy",) + keys)
    rows = "".join("<tr><td>" + html.escape(label) + "</td>" + "".join(
        f"<td>{m[k]:.3f}</td>" if isinstance(m.get(k), (int, float)) else "<td>-</td>" for k in keys) + "</tr>"
        for label, m in evaluation.items())
    imgs = figures_html(directory, figures)
    spread = summary.get("evaluation_ci95") or {}
    spread_html = ("<h3>ota_throughput_mbps over the evaluation episodes</h3><p>The mean over the episodes, its 95 % "
                   "t-interval over the n episodes, and each episode's mean over its slots (real Mbit/s).</p>"
                   + spread_rows(spread)) if spread else ""
    report = copy_calibration_report(calibration, directory)
    link = f' (<a href="{html.escape(report)}">report</a>)' if report else ""
    choice = (summary.get("calibration_choice") or {}).get("message")
    choice_html = f"<p>{html.escape(choice)}</p>" if choice else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>testbed run {html.escape(summary['run'])}"
            f"</title><style>body{{font-family:sans-serif;max-width:960px;margin:auto}}td,th{{padding:2px 8px}}"
            f"</style></head><body><h1>Run {html.escape(summary['run'])} (MADDQN-DMADDPG)</h1>"
            f"<p>{summary['episodes']} training episodes in the HetNet twin, evaluation over the air on "
            f"{html.escape(', '.join(summary['radios']))}; {summary['seconds']:.0f} s in all. Calibration "
            f"{summary['calibration_id']}{link}.</p>{choice_html}<h2>Evaluation over the air (means over slots)</h2>"
            f"<p>{UNITS_NOTE}</p><table><tr>{head}</tr>{rows}</table>{spread_html}<h2>Plots</h2>{imgs}"
            f"</body></html>")
    return page
