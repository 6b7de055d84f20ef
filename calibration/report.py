"""The calibration report: a JSON file and an HTML page with PNG plots, all recomputed from a record.

Plots: constellation, spectrum with the ACLR bands shaded, EVM versus power with the fit, ACLR/ACIR versus
power, and the phi fit (measured over nominal, point by point, with the estimate and its interval).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from calibration.fit import Estimate, KappaFit
from calibration.record import CalibrationRecord
from calibration.session import ACLR_BLOCKS, ANALYSER_LIMITED_MARGIN_DB

__all__ = ["format_value", "write_report"]


def _kappa_fit(results: Mapping[str, Any]) -> KappaFit:
    k = results["kappa"]

    def est(d: Mapping[str, Any]) -> Estimate:
        return Estimate(d["value"], d["ci95"][0], d["ci95"][1], d["points"])

    return KappaFit({n: est(v) for n, v in k["kappa_t"].items()}, {n: est(v) for n, v in k["kappa_r"].items()},
                    dict(k["noise_term"]), dict(k["tx_floor_term"]), dict(k["tx_compression_term"]),
                    bool(k["separated"]), float(k["residual_rms"]))


def _plots(record: CalibrationRecord, out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, points = record.results, record.raw.get("points", [])
    made: list[tuple[str, str]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append((name, caption))

    cons = results.get("constellation") or {}
    if cons:
        pair, c = next(iter(sorted(cons.items())))
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        ax.plot(c["i"], c["q"], ".", ms=2)
        ax.set_aspect("equal")
        ax.set_title(f"constellation {pair} at {c['level_db']:g} dB")
        ax.set_xlabel("I")
        ax.set_ylabel("Q")
        save(fig, "constellation.png", f"Equalised QPSK symbols, {pair}, slot power {c['level_db']:g} dB.")

    aclr_pts = [p for p in points if p.get("sweep") == "aclr"]
    if aclr_pts:
        p = max(aclr_pts, key=lambda q: q["level_db"])
        sp = p["spectrum"]
        f = np.asarray(sp["freq_hz"]) / 1e6
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.plot(f, sp["psd_db"], lw=0.8, label="transmitter on")
        ax.plot(f, sp["noise_db"], lw=0.6, color="grey", label="transmitter off")
        bw, mw = sp["channel_bw_hz"] / 1e6, sp["measurement_bw_hz"] / 1e6
        for k, colour in ((0, "tab:green"), (-1, "tab:orange"), (1, "tab:orange"), (-2, "tab:red"), (2, "tab:red")):
            ax.axvspan(k * bw - mw / 2, k * bw + mw / 2, color=colour, alpha=0.12)
        ax.set_xlabel("frequency (MHz)")
        ax.set_ylabel("PSD (dB re FS/Hz)")
        ax.set_title(f"{p['tx']}->{p['rx']} at {p['level_db']:g} dB; ACLR1 "
                     f"{min(p['aclr_db']['-1'], p['aclr_db']['1']):.1f} dB")
        ax.legend(fontsize=8)
        save(fig, "spectrum.png", "Spectrum at the receiver with the wanted (green), first (orange) and second (red) "
                                  "adjacent-channel measurement bands.")

    evm_pts = [p for p in points if p.get("sweep") == "evm"]
    if evm_pts:
        fit = _kappa_fit(results)
        fig, ax = plt.subplots(figsize=(7, 4))
        series: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        for p in evm_pts:
            label = (p["kind"], p["tx"], p["rx"] if p["kind"] == "total" else f"{p['rx']}&{p['rx2']}")
            series.setdefault(label, []).append((p["power"], p["value"]))
        for (kind, tx, rx), pts in sorted(series.items()):
            pw = np.asarray([q[0] for q in pts])
            val = np.asarray([q[1] for q in pts])
            lvl = 10 * np.log10(pw)
            line = ax.plot(lvl, 10 * np.log10(np.maximum(val, 1e-8)), "o" if kind == "total" else "x", ms=4,
                           label=f"{kind} {tx}->{rx}")[0]
            grid = np.linspace(pw.min(), pw.max(), 40)
            model = [fit.model(kind, tx, rx.split("&")[0], g) for g in grid]
            ax.plot(10 * np.log10(grid), 10 * np.log10(np.maximum(model, 1e-8)), "-", color=line.get_color(), lw=0.8)
        ax.set_xlabel("slot RMS power (dBFS)")
        ax.set_ylabel("EVM^2 (dB)")
        ax.set_title("EVM versus TX power, with the fit")
        ax.legend(fontsize=7, ncol=2)
        save(fig, "evm_vs_power.png", "EVM^2 per receiver (o) and the TX distortion shared by two receivers (x), "
                                      "lines: the fitted model.")

    if aclr_pts:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for pair, rows in sorted(results["aclr"].items()):
            lv = [r["channel_power_dbfs"] for r in rows]
            for key, style in (("aclr1_db", "o-"), ("aclr2_db", "s-"), ("acir1_db", "o--"), ("acir2_db", "s--")):
                ax.plot(lv, [r[key] if r[key] is not None else math.nan for r in rows], style, ms=4,
                        label=f"{key[:-3].upper()} {pair}")
        ax.set_xlabel("received channel power (dBFS)")
        ax.set_ylabel("dB")
        ax.set_title("ACLR and ACIR versus power")
        ax.legend(fontsize=7, ncol=2)
        save(fig, "aclr_acir_vs_power.png", "ACLR (TX leakage, wide capture) and ACIR (what lands in the "
                                            "receiver's adjacent channel) per pair and power.")

    hw = results.get("hwi_points") or []
    leak = [p for p in points if p.get("sweep") == "leakage"]
    if hw or leak:
        nom = results["nominal"]
        nominal_hwi = nom["kappa_t"] ** 2 + nom["kappa_r"] ** 2
        nominal_aci = 2 * 10 ** (-nom["acir1_db"] / 10) + 2 * 10 ** (-nom["acir2_db"] / 10)
        fig, ax = plt.subplots(figsize=(7, 3.6))
        if hw:
            ax.plot([10 * math.log10(r["power"]) for r in hw], [r["distortion"] / nominal_hwi for r in hw], "o",
                    ms=4, label="HWI measured / nominal")
        if leak:
            ax.plot([p["level_db"] - 12 for p in leak], [sum(p["leak"].values()) / nominal_aci for p in leak], "s",
                    ms=4, label="ACI measured / nominal")
        for key, colour in (("phi_hwi", "tab:blue"), ("phi_aci", "tab:orange"), ("phi", "tab:green")):
            e = results.get(key)
            if e:
                ax.axhline(1 + e["value"], color=colour, lw=1, label=f"1 + {key} = {1 + e['value']:.3f}")
                ax.axhspan(1 + e["ci95"][0], 1 + e["ci95"][1], color=colour, alpha=0.12)
        ax.set_xlabel("power (dBFS)")
        ax.set_ylabel("measured / nominal")
        ax.set_title("phi fit against the twin's nominal model")
        ax.legend(fontsize=7)
        save(fig, "phi_fit.png", "Measured over nominal distortion and ACI, point by point; lines: 1 + phi, bands: "
                                 "95 % intervals.")
    return made


def format_value(v: Any) -> str:
    """A parameter for people: numbers to 4 significant digits, lists element by element."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def _fmt(e: Mapping[str, Any] | None, scale: float = 1.0, unit: str = "") -> str:
    if not e:
        return "not measured"
    return (f"{e['value'] * scale:.4g}{unit} (95 % CI {e['ci95'][0] * scale:.4g} to {e['ci95'][1] * scale:.4g}, "
            f"{e['points']} points)")


def write_report(record: CalibrationRecord, out_dir: str | Path) -> dict[str, str]:
    """Write ``calibration.json`` (:meth:`CalibrationRecord.to_json`), the PNG plots and ``report.html`` into
    ``out_dir``.

    Args:
        record: what :func:`calibration.session.run_calibration` returned (with its ``id`` once stored).
        out_dir: directory (created).

    Returns:
        ``{"json": path, "html": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "calibration.json"
    json_path.write_text(record.to_json(), encoding="utf-8")
    plots = _plots(record, out)
    r = record.results
    rows = []
    for name, e in sorted(r["kappa"]["kappa_t"].items()):
        rows.append(f"<tr><td>kappa_t {html.escape(name)}</td><td>{_fmt(e, 100, ' %')}</td></tr>")
    for name, e in sorted(r["kappa"]["kappa_r"].items()):
        rows.append(f"<tr><td>kappa_r {html.escape(name)}</td><td>{_fmt(e, 100, ' %')}</td></tr>")
    for key in ("phi_hwi", "phi_aci", "phi"):
        rows.append(f"<tr><td>{key}</td><td>{_fmt(r.get(key))}</td></tr>")
    twin = record.twin.as_dict()
    rows.append("<tr><td>twin parameters</td><td>" + html.escape(", ".join(f"{k} = {format_value(v)}" for k, v in twin.items()))
                + "</td></tr>")
    aclr_rows = []
    for pair, pts in sorted(r["aclr"].items()):
        for p in pts:
            def aclr_cell(order: int) -> str:
                value = p.get(f"aclr{order}_db")
                if value is None:
                    return "not resolved"
                ci = p.get(f"aclr{order}_ci95") or [None, None]
                text = f"{value:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if None not in ci else "")
                floor = p.get(f"aclr{order}_floor_db")
                text += f"; floor {floor:.1f}" if floor is not None else ""
                return text + (" ANALYSER-LIMITED" if p.get(f"aclr{order}_analyser_limited") else "")

            cells = [pair, f"{p['channel_power_dbfs']:.1f}", aclr_cell(1), aclr_cell(2)] + [
                "-" if p[k] is None else f"{p[k]:.1f}" for k in ("acir1_db", "acir2_db", "acs1_db", "acs2_db")]
            aclr_rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    evm = r.get("evm") or {}
    evm_rows = "".join(f"<tr><td>{html.escape(pair)}</td><td>{e['level_db']:g}</td><td>{100 * e['evm']:.2f}</td>"
                       f"<td>{100 * e['evm_tracked']:.2f}</td></tr>" for pair, e in sorted(evm.get("by_pair", {}).items()))
    evm_html = (f"<h2>EVM (%) at the highest level</h2><p>EVM: {html.escape(evm.get('method', ''))}; window W = "
                f"{evm.get('window_samples')} samples. Tracked: the link receiver's EVM with per-symbol common-phase "
                f"correction (diagnostic). {html.escape(evm.get('kappa_input_reason', ''))}</p><table><tr><th>pair"
                f"</th><th>level (dB)</th><th>EVM (3GPP)</th><th>EVM tracked</th></tr>{evm_rows}</table>"
                if evm else "")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in record.notes) or "<li>none</li>"
    meta = record.meta
    figures = "".join(f'<figure><img src="{n}"><figcaption>{html.escape(c)}</figcaption></figure>' for n, c in plots)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Calibration {'' if record.id is None else record.id}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:auto}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
figure{{display:inline-block;margin:8px}}</style></head><body>
<h1>Calibration {'' if record.id is None else record.id}: {html.escape(', '.join(meta.get('radios', {})))}</h1>
<p>Settings: {html.escape(meta.get('settings_key', ''))}; duration {meta.get('duration_s', 0):.1f} s;
temperature {meta.get('temperature_c')}.</p>
<h2>Fitted values</h2><table>{''.join(rows)}</table>
<h2>ACLR, ACIR and ACS (dB) per pair and received power (dBFS)</h2>
<table><tr><th>pair</th><th>power</th><th>ACLR1</th><th>ACLR2</th><th>ACIR1</th><th>ACIR2</th><th>ACS1</th>
<th>ACS2</th></tr>{''.join(aclr_rows)}</table>
<p>ACLR is the transmitter's own (95 % interval from {ACLR_BLOCKS} blocks of the capture): the part of the
adjacent-channel power that a second receiver of the same air time shares; "floor" is the best ACLR the receiving
radio could show (its own distortion, phase noise and LNA products); within {ANALYSER_LIMITED_MARGIN_DB:g} dB of
it a value is ANALYSER-LIMITED and only a lower bound. ACS uses the transmitter's ACLR.</p>
{evm_html}
<p>ACS is "-" where the measured ACIR is not below the ACLR: the receiver's selectivity is then beyond what this
transmitter's leakage lets the pair measure.</p>
<h2>Notes</h2><ul>{notes}</ul>
<h2>Plots</h2>{figures}
</body></html>"""
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return {"json": str(json_path), "html": str(html_path)}
