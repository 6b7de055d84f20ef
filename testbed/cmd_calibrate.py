"""``testbed calibrate`` and ``testbed calibrations``: measure the radios' front ends, store and show the records.

A calibration record is written to the SQLite context store in one transaction (whole or not at all), then its
report (JSON, HTML, PNG plots) goes to ``--out`` (default: ``calibrations/<id>/`` next to the store).

A record keeps each radio's identity key (:func:`radio.identity.identity_key`: a Pluto's or USRP's serial, a remote
server's radio, a simulated radio's resolved parameters and seed) and its depth. A run reuses a record only when
every radio is the same unit, the carrier, rate, gains and sweep settings are the same, and it is young enough.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import click

from testbed.cliutil import BadInput, emit, handle_errors, json_option
from testbed.inventory import load_config, open_radios, parse_radio_list, radio_options

__all__ = ["calibrate", "calibrate_or_reuse", "calibration_depth", "calibrations", "radio_identity_keys",
           "store_option"]

_CARRIER_FIELDS = ("numerology", "lo_hz", "tx_gain_db", "rx_gain_db")
"""Settings the settings key already covers; the others say how deep the sweeps go."""
_MAX_SKIPPED_LINES = 5


def store_option(f: Any) -> Any:
    """``--store PATH`` (default ``$TESTBED_STORE``, else the user's data directory)."""
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
                        envvar="TESTBED_STORE",
                        help="SQLite context store (default: $TESTBED_STORE, else ~/.local/share/testbed/).")(f)


def _settings(quick: bool, lo_hz: float | None):
    from calibration.session import CalibrationSettings

    changes: dict[str, Any] = {}
    if quick:
        changes.update(evm_levels_db=(-15.0, -9.0, -3.0, 0.0), leakage_levels_db=(0.0, 6.0),
                       aclr_levels_db=(-6.0, 0.0), slots_per_point=1, aclr_capture_slots=4,
                       mcs_levels_db=tuple(float(x) for x in range(-36, 1, 6)))
    if lo_hz is not None:
        changes["lo_hz"] = lo_hz
    return CalibrationSettings(**changes)


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so stored and fresh settings compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _sweep_part(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _plain(settings).items() if k not in _CARRIER_FIELDS}


def calibration_depth(settings: dict[str, Any]) -> str:
    """``"full"`` (the default sweeps), ``"quick"`` (``testbed calibrate --quick``) or ``"custom"``, from a record's
    ``meta["settings"]`` (``CalibrationSettings.as_dict()``); the carrier, rate and gains do not count."""
    sweep = _sweep_part(settings)
    if sweep == _sweep_part(_settings(False, None).as_dict()):
        return "full"
    if sweep == _sweep_part(_settings(True, None).as_dict()):
        return "quick"
    return "custom"


def _record_depth(meta: dict[str, Any] | None) -> str:
    """A stored record's depth (:func:`calibration_depth`), "unknown" when its meta holds no sweep settings."""
    settings = (meta or {}).get("settings")
    return calibration_depth(settings) if isinstance(settings, dict) else "unknown"


def radio_identity_keys(radios: dict[str, Any]) -> dict[str, str | None]:
    """Each opened radio's :func:`radio.identity.identity_key` by name (None: the unit cannot be identified)."""
    from radio.identity import identity_key

    return {name: identity_key(radio.identity()) for name, radio in radios.items()}


def _age(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _short(key: str | None) -> str:
    return "unidentified" if key is None else key[:8]


def _sweep_gains(radios: dict[str, Any], settings: Any) -> dict[str, dict[str, float]]:
    """The TX and RX gains (dB) each radio sweeps at: ``settings``' when given, else the radio's configured ones
    (which the settings key does not cover)."""
    return {name: {"tx_gain_db": float(radio.settings.tx_gain_db if settings.tx_gain_db is None
                                       else settings.tx_gain_db),
                   "rx_gain_db": float(radio.settings.rx_gain_db if settings.rx_gain_db is None
                                       else settings.rx_gain_db)}
            for name, radio in radios.items()}


def _mismatch(row: Any, settings_key: str, sweep: dict[str, Any], depth: str, keys: dict[str, str | None],
              gains: dict[str, dict[str, float]]) -> str | None:
    """Why stored record ``row`` must not be reused for radios with identity ``keys``, these settings and these
    gains; None when it may."""
    if row.identity_keys is None:
        return "made before radio identities were recorded, so which units it measured is unknown"
    others = [f"{n} is not the radio it measured (id {_short(row.identity_keys.get(n))}, now {_short(keys[n])})"
              for n in sorted(keys) if row.identity_keys.get(n) is None or row.identity_keys.get(n) != keys[n]]
    if others:
        return "; ".join(others)
    if row.settings_key != settings_key:
        return f"other settings ({row.settings_key}; now {settings_key})"
    stored = (row.meta or {}).get("settings")
    if not isinstance(stored, dict) or _sweep_part(stored) != sweep:
        stored_depth = calibration_depth(stored) if isinstance(stored, dict) else "unknown"
        return (f"a {stored_depth} calibration; this needs {depth} depth" if stored_depth != depth
                else "other sweep settings at the same depth")
    stored_gains = (row.meta or {}).get("gains_db")
    if stored_gains != _plain(gains):
        return f"other gains (recorded {stored_gains}; now {gains})"
    return None


def _fit_link_abstraction(record: dict[str, Any]) -> None:
    """Add the twin's decoder gains fitted to the MCS sweep's code blocks to the record's twin parameters."""
    from twin.calibration_record import fit_coding_gain
    from twin.config import DTNConfig

    blocks = record["results"].get("mcs_sweep") or []
    if not blocks:
        return
    gains, details = fit_coding_gain(blocks, DTNConfig())
    record["results"]["twin"]["coding_gain_db"] = list(gains)
    record["results"]["link_abstraction"] = {"coding_gain_db": list(gains), "per_rate": details,
                                             "nominal_coding_gain_db": list(DTNConfig().coding_gain_db)}


def calibrate_radios(radios: dict[str, Any], store: Any, settings: Any, out_dir: str | Path | None,
                     show_progress: bool = True) -> dict[str, Any]:
    """Run a calibration session on opened radios, store the record in one transaction and write its report.

    Returns the stored record (``id``, ``results``, ``notes``, ``meta`` with ``report`` paths).
    """
    from tqdm import tqdm

    from calibration.report import write_report
    from calibration.session import run_calibration

    import sys
    gains = _sweep_gains(radios, settings)
    bar = tqdm(total=0, desc="calibrating", file=sys.stderr, leave=False, disable=not show_progress or None)
    try:
        record = run_calibration(radios, settings, progress=bar.update, on_total=lambda n: bar.reset(total=n))
    finally:
        bar.close()
    _fit_link_abstraction(record)
    for radio in radios.values():
        store.upsert_radio(radio.identity())
    meta = dict(record["meta"])
    meta["depth"] = calibration_depth(meta["settings"])
    meta["gains_db"] = gains
    cal_id = store.add_calibration(list(radios), meta["settings_key"], record["results"], record["raw"],
                                   notes=record["notes"], meta=meta, temperature_c=meta.get("temperature_c"),
                                   identity_keys=radio_identity_keys(radios))
    record["id"] = cal_id
    out = Path(out_dir) if out_dir is not None else Path(store.path).parent / "calibrations" / str(cal_id)
    paths = write_report(record, out)
    meta["report"] = paths
    store.update_calibration_meta(cal_id, meta)
    record["meta"] = meta
    return record


def calibrate_or_reuse(names: Sequence[str], radios: dict[str, Any], store: Any, settings: Any, *,
                       recalibrate: bool, max_age_s: float | None, out_dir: str | Path | None,
                       show_progress: bool = True) -> tuple[dict[str, Any], bool]:
    """The newest record younger than ``max_age_s`` that measured these very radios with these settings, or a fresh
    calibration.

    A record is reused only when every radio's identity key (:func:`radio_identity_keys`) equals the one stored
    with it, its settings key (carrier, rate, gains) and sweep settings (its depth: a ``--quick`` record never
    serves a full-depth request) equal ``settings``', and each radio sweeps at the same gains (its configured ones
    where ``settings`` leaves them open). Records from before identities were stored never match; nor
    does anything when a radio cannot be identified (e.g. a Pluto reporting no serial). The decision is printed
    on stderr, one line per younger record skipped and why, and one for the record used.

    Returns:
        (record as stored: ``id``, ``results``, ``notes``, ``meta``, plus ``reuse``: ``{"reused", "message",
        "skipped"}`` (the lines printed); whether it was reused).
    """
    from calibration.session import settings_key
    from radio.ofdm import numerology

    key = settings_key(settings, numerology(settings.numerology).sample_rate_hz)
    named = {n: radios[n] for n in names}
    keys = radio_identity_keys(named)
    gains = _sweep_gains(named, settings)
    sweep = _sweep_part(settings.as_dict())
    depth = calibration_depth(settings.as_dict())
    skipped: list[str] = []
    unidentified = sorted(n for n, k in keys.items() if k is None)
    if recalibrate:
        why = "--recalibrate"
    elif unidentified:
        why = (f"{', '.join(unidentified)} cannot be identified (no serial number or server identity), so no stored "
               f"record is reused for it")
    else:
        now = time.time()
        for row in store.recent_calibrations(names, max_age_s):
            reason = _mismatch(row, key, sweep, depth, keys, gains)
            if reason is None:
                radios_text = ", ".join(f"{n} [id {_short(keys[n])}]" for n in names)
                message = (f"reusing calibration {row.id} ({_age(now - row.created_at)} old): same radios "
                           f"{radios_text}, same settings ({key}), {depth} depth")
                _say(skipped, message)
                return ({"id": row.id, "results": row.results, "notes": row.notes, "meta": row.meta,
                         "reuse": {"reused": True, "message": message, "skipped": skipped}}, True)
            skipped.append(f"skipped calibration {row.id} ({_age(now - row.created_at)} old): {reason}")
        window = "" if max_age_s is None else f" younger than {_age(max_age_s)}"
        why = (f"no stored record{window} measured these radios with these settings" if skipped
               else f"no record of {','.join(names)}{window}")
    message = f"calibrating {','.join(names)} ({depth} depth): {why}"
    _say(skipped, message)
    record = calibrate_radios(radios, store, settings, out_dir, show_progress)
    record["reuse"] = {"reused": False, "message": message, "skipped": skipped}
    return record, False


def _say(skipped: list[str], message: str) -> None:
    """The reuse decision on stderr: the younger records skipped (at most a few lines), then the decision."""
    for line in skipped[:_MAX_SKIPPED_LINES]:
        click.echo(line, err=True)
    if len(skipped) > _MAX_SKIPPED_LINES:
        click.echo(f"... and {len(skipped) - _MAX_SKIPPED_LINES} more younger records skipped", err=True)
    click.echo(message, err=True)


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    r = record["results"]
    return {"id": record["id"], "kappa_t": r["kappa"]["kappa_t"], "kappa_r": r["kappa"]["kappa_r"],
            "separated": r["kappa"]["separated"], "twin": r["twin"], "phi_hwi": r["phi_hwi"],
            "phi_aci": r["phi_aci"], "phi": r["phi"], "aclr": r["aclr"], "notes": record["notes"],
            "report": record["meta"].get("report"), "duration_s": record["meta"].get("duration_s")}


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


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
    click.echo("  twin: " + ", ".join(f"{k} {_value(v)}" for k, v in s["twin"].items()))
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
        settings = _settings(quick, lo_hz)
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
            record = {"id": row.id, "results": row.results, "notes": row.notes, "meta": row.meta}
            emit({**_summary(record), "created_at": row.created_at, "radios": row.radios,
                  "settings_key": row.settings_key}, as_json, _human)
            return
        rows = store.calibrations(limit)
    listing = [{"id": r.id, "created_at": r.created_at, "radios": r.radios, "settings_key": r.settings_key,
                "phi": (r.results.get("phi") or {}).get("value"), "kappa_t": r.results["twin"]["kappa_t"],
                "kappa_r": r.results["twin"]["kappa_r"], "notes": len(r.notes), "depth": _record_depth(r.meta)}
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
