"""Calibrate opened radios into the store, or reuse a stored record that measured the very same units.

A record is written to the SQLite context store in one transaction (whole or not at all), then its report (JSON,
HTML, PNG plots) goes to ``out_dir`` (default: ``calibrations/<id>/`` next to the store).

A record keeps each radio's identity key (:func:`radio.identity.identity_key`: a Pluto's or USRP's serial, a remote
server's radio, a simulated radio's resolved parameters and seed) and its depth. A run reuses a record only when
every radio is the same unit, the carrier, rate, gains and sweep settings are the same, and it is young enough.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

from calibration.record import CalibrationRecord
from calibration.settings import CalibrationSettings, calibration_depth, settings_key, sweep_settings

__all__ = ["CalibrationChoice", "calibrate_or_reuse", "calibrate_radios", "radio_identity_keys"]

MAX_SKIPPED_LINES = 5
"""At most this many "skipped calibration N" lines on stderr (then a count)."""


@dataclass(frozen=True)
class CalibrationChoice:
    """Why a run uses its calibration record: reused, or calibrated afresh, and the younger records skipped."""

    reused: bool
    """A stored record serves (False: the radios were calibrated now)."""
    message: str
    """The sentence printed on stderr."""
    skipped: list[str] = field(default_factory=list)
    """Younger records not reused, each with the reason."""

    def as_dict(self) -> dict[str, Any]:
        return {"reused": self.reused, "message": self.message, "skipped": list(self.skipped)}


def radio_identity_keys(radios: dict[str, Any]) -> dict[str, str | None]:
    """Each opened radio's :func:`radio.identity.identity_key` by name (None: the unit cannot be identified)."""
    from radio.identity import identity_key

    return {name: identity_key(radio.identity()) for name, radio in radios.items()}


def _age(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _short(key: str | None) -> str:
    return "unidentified" if key is None else key[:8]


def _sweep_gains(radios: dict[str, Any], settings: CalibrationSettings) -> dict[str, dict[str, float]]:
    """The TX and RX gains (dB) each radio sweeps at: ``settings``' when given, else the radio's configured ones
    (which the settings key does not cover)."""
    return {name: {"tx_gain_db": float(radio.settings.tx_gain_db if settings.tx_gain_db is None
                                       else settings.tx_gain_db),
                   "rx_gain_db": float(radio.settings.rx_gain_db if settings.rx_gain_db is None
                                       else settings.rx_gain_db)}
            for name, radio in radios.items()}


def _mismatch(row: Any, key: str, sweep: dict[str, Any], depth: str, keys: dict[str, str | None],
              gains: dict[str, dict[str, float]]) -> str | None:
    """Why stored record ``row`` must not be reused for radios with identity ``keys``, these settings and these
    gains; None when it may."""
    if row.identity_keys is None:
        return "made before radio identities were recorded, so which units it measured is unknown"
    others = [f"{n} is not the radio it measured (id {_short(row.identity_keys.get(n))}, now {_short(keys[n])})"
              for n in sorted(keys) if row.identity_keys.get(n) is None or row.identity_keys.get(n) != keys[n]]
    if others:
        return "; ".join(others)
    if row.settings_key != key:
        return f"other settings ({row.settings_key}; now {key})"
    stored = (row.meta or {}).get("settings")
    if not isinstance(stored, dict) or sweep_settings(stored) != sweep:
        stored_depth = calibration_depth(stored)
        return (f"a {stored_depth} calibration; this needs {depth} depth" if stored_depth != depth
                else "other sweep settings at the same depth")
    stored_gains = (row.meta or {}).get("gains_db")
    if stored_gains != gains:
        return f"other gains (recorded {stored_gains}; now {gains})"
    return None


def calibrate_radios(radios: dict[str, Any], store: Any, settings: CalibrationSettings, out_dir: str | Path | None,
                     show_progress: bool = True) -> CalibrationRecord:
    """Run a calibration session on opened radios (the twin's link abstraction fitted to its MCS sweep), store the
    record in one transaction and write its report.

    Returns:
        The stored record, with its ``id`` and ``meta`` ``depth``, ``gains_db`` and ``report`` (paths).
    """
    from tqdm import tqdm

    from calibration.report import write_report
    from calibration.session import run_calibration
    from twin.calibration_record import fit_link_abstraction

    gains = _sweep_gains(radios, settings)
    bar = tqdm(total=0, desc="calibrating", file=sys.stderr, leave=False, disable=not show_progress or None)
    try:
        record = run_calibration(radios, settings, progress=bar.update, on_total=lambda n: bar.reset(total=n),
                                 fit_link_abstraction=fit_link_abstraction)
    finally:
        bar.close()
    for radio in radios.values():
        store.upsert_radio(radio.identity())
    record.meta.update(depth=calibration_depth(record.meta["settings"]), gains_db=gains)
    record.id = store.add_calibration_record(list(radios), record, identity_keys=radio_identity_keys(radios))
    out = Path(out_dir) if out_dir is not None else Path(store.path).parent / "calibrations" / str(record.id)
    record.meta["report"] = write_report(record, out)
    store.update_calibration_meta(record.id, record.meta)
    return record


def calibrate_or_reuse(names: Sequence[str], radios: dict[str, Any], store: Any, settings: CalibrationSettings, *,
                       recalibrate: bool, max_age_s: float | None, out_dir: str | Path | None,
                       show_progress: bool = True) -> tuple[CalibrationRecord, CalibrationChoice]:
    """The newest record younger than ``max_age_s`` that measured these very radios with these settings, or a fresh
    calibration.

    A record is reused only when every radio's identity key (:func:`radio_identity_keys`) equals the one stored
    with it, its settings key (carrier, rate, gains) and sweep settings (its depth: a ``--quick`` record never
    serves a full-depth request) equal ``settings``', and each radio sweeps at the same gains (its configured ones
    where ``settings`` leaves them open). Records from before identities were stored never match; nor
    does anything when a radio cannot be identified (e.g. a Pluto reporting no serial). The decision is printed
    on stderr, one line per younger record skipped and why, and one for the record used.

    Returns:
        (the record as stored, the choice: reused or not, the line printed, the records skipped).
    """
    from radio.ofdm import numerology

    key = settings_key(settings, numerology(settings.numerology).sample_rate_hz)
    named = {n: radios[n] for n in names}
    keys = radio_identity_keys(named)
    gains = _sweep_gains(named, settings)
    sweep = sweep_settings(settings.as_dict())
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
                return row.record(), CalibrationChoice(True, message, skipped)
            skipped.append(f"skipped calibration {row.id} ({_age(now - row.created_at)} old): {reason}")
        window = "" if max_age_s is None else f" younger than {_age(max_age_s)}"
        why = (f"no stored record{window} measured these radios with these settings" if skipped
               else f"no record of {','.join(names)}{window}")
    message = f"calibrating {','.join(names)} ({depth} depth): {why}"
    _say(skipped, message)
    record = calibrate_radios(radios, store, settings, out_dir, show_progress)
    return record, CalibrationChoice(False, message, skipped)


def _say(skipped: list[str], message: str) -> None:
    """The reuse decision on stderr: the younger records skipped (at most a few lines), then the decision."""
    for line in skipped[:MAX_SKIPPED_LINES]:
        click.echo(line, err=True)
    if len(skipped) > MAX_SKIPPED_LINES:
        click.echo(f"... and {len(skipped) - MAX_SKIPPED_LINES} more younger records skipped", err=True)
    click.echo(message, err=True)
