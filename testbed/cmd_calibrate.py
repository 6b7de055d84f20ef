"""``testbed calibrate`` and ``testbed calibrations``: measure the radios' front ends, store and show the records.

A calibration record is written to the SQLite context store in one transaction (whole or not at all), then its
report (JSON, HTML, PNG plots) goes to ``--out`` (default: ``calibrations/<id>/`` next to the store); see
:mod:`testbed.calibration_reuse` for when a run reuses a stored record.
"""

from __future__ import annotations

import math
import time
from typing import Any

import click

from calibration.record import CalibrationRecord
from calibration.report import format_value
from calibration.settings import CalibrationSettings, calibration_depth
from testbed.calibration_reuse import calibrate_radios
from testbed.cliutil import BadInput, emit, handle_errors, json_option, store_option
from testbed.inventory import load_config, open_radios, parse_radio_list, radio_options

__all__ = ["calibrate", "calibrations"]


def _summary(record: CalibrationRecord) -> dict[str, Any]:
    r = record.results
    return {"id": record.id, "kappa_t": r["kappa"]["kappa_t"], "kappa_r": r["kappa"]["kappa_r"],
            "separated": r["kappa"]["separated"], "twin": record.twin.as_dict(), "phi_hwi": r["phi_hwi"],
            "phi_aci": r["phi_aci"], "phi": r["phi"], "aclr": r["aclr"], "notes": record.notes,
            "report": record.meta.get("report"), "duration_s": record.meta.get("duration_s")}


def _human(s: dict[str, Any]) -> None:
    def est(e: dict[str, Any] | None, scale: float = 1.0) -> str:
        if not e:
            return "n/a"
        return f"{e['value'] * scale:.3g} [{e['ci95'][0] * scale:.3g}, {e['ci95'][1] * scale:.3g}]"

    click.echo(f"calibration {s['id']} ({s.get('duration_s') or 0:.1f} s)")
    for name in sorted(s["kappa_t"]):
        click.echo(f"  {name:<8} kappa_t {est(s['kappa_t'][name], 100)} %   "
                   f"kappa_r {est(s['kappa_r'].get(name), 100)} %")
    for pair, rows in sorted(s["aclr"].items()):
        top = max(rows, key=lambda r: r["channel_power_dbfs"])
        click.echo(f"  {pair:<12} at {top['channel_power_dbfs']:.1f} dBFS: ACLR1 {top['aclr1_db']:.1f} dB, "
                   f"ACLR2 {top['aclr2_db']:.1f} dB, ACIR1 {top['acir1_db']:.1f} dB")
    click.echo(f"  phi_hwi {est(s['phi_hwi'])}   phi_aci {est(s['phi_aci'])}   phi {est(s['phi'])}")
    click.echo("  twin: " + ", ".join(f"{k} {format_value(v)}" for k, v in s["twin"].items()))
    for note in s["notes"]:
        click.echo(f"  note: {note}")
    if s.get("report"):
        click.echo(f"report: {s['report']['html']}")


@click.command("calibrate")
@click.option("--radios", "radio_list", required=True, help="Comma-separated radios (at least two), e.g. sim0,sim1.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report directory (default: calibrations/<id>/ next to the store).")
@click.option("--lo", "lo_hz", type=float, default=None, help="Carrier frequency (Hz); default 2.45e9.")
@click.option("--quick", is_flag=True, help="Fewer sweep points (a quick check, wider intervals).")
@click.option("--seed", type=int, default=None, help="Seed of the simulated air (simulated radios only).")
@store_option
@radio_options
@json_option
@handle_errors
def calibrate(radio_list: str, out_dir: str | None, lo_hz: float | None, quick: bool, seed: int | None,
              store_path: str | None, config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """Measure EVM (TX/RX split), ACLR/ACS/ACIR and phi of the radios; store one record and write its report."""
    from testbed.store import Store

    names = parse_radio_list(radio_list)
    if len(set(names)) < 2:
        raise BadInput(f"--radios {radio_list!r}; allowed: at least two different radios, e.g. sim0,sim1")
    cfg = load_config(config_path, sim_config)
    for n in names:
        cfg.entry(n)
    try:
        settings = CalibrationSettings.at_depth(quick, lo_hz)
    except ValueError as e:
        raise BadInput(str(e)) from None
    with Store(store_path) as store, open_radios(names, cfg, seed=seed) as radios:
        record = calibrate_radios(radios, store, settings, out_dir, show_progress=not as_json)
    emit(_summary(record), as_json, _human)


@click.command("calibrations")
@click.option("--show", "show_id", type=int, default=None, help="Show one record in full (its id).")
@click.option("--limit", type=int, default=20, show_default=True, help="Records to list.")
@store_option
@json_option
@handle_errors
def calibrations(show_id: int | None, limit: int, store_path: str | None, as_json: bool) -> None:
    """List calibration records, or show one."""
    from testbed.store import Store, StoreError

    if limit < 1:
        raise BadInput(f"--limit {limit}; allowed: an integer >= 1")
    with Store(store_path) as store:
        if show_id is not None:
            try:
                row = store.calibration(show_id)
            except StoreError as e:
                raise BadInput(f"--show {show_id}: {e}") from None
            emit({**_summary(row.record()), "created_at": row.created_at, "radios": row.radios,
                  "settings_key": row.settings_key}, as_json, _human)
            return
        rows = store.calibrations(limit)
    listing = [{"id": r.id, "created_at": r.created_at, "radios": r.radios, "settings_key": r.settings_key,
                "phi": (r.results.get("phi") or {}).get("value"), "kappa_t": r.results["twin"]["kappa_t"],
                "kappa_r": r.results["twin"]["kappa_r"], "notes": len(r.notes),
                "depth": calibration_depth((r.meta or {}).get("settings"))}
               for r in rows]

    def human(result: dict[str, Any]) -> None:
        if not result["calibrations"]:
            click.echo("no calibration records")
        for r in result["calibrations"]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))
            phi = "n/a" if r["phi"] is None or not math.isfinite(r["phi"]) else f"{r['phi']:+.3f}"
            click.echo(f"{r['id']:>4}  {when}  {r['depth']:<7} {','.join(r['radios']):<14} "
                       f"kappa_t {100 * r['kappa_t']:.2f} %  "
                       f"kappa_r {100 * r['kappa_r']:.2f} %  phi {phi}  ({r['notes']} notes)")

    emit({"calibrations": listing}, as_json, human)
