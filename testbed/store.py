"""The context store: one SQLite database (WAL mode) holding radios, calibration records, runs, over-the-air
experiences, KPM samples and the jobs of sweeps.

Every write is one transaction, so a crash (even SIGKILL) leaves either the whole record or none of it. The
schema carries a version (``PRAGMA user_version``); opening a database written by a newer version is refused
rather than guessed at. Default location: ``$TESTBED_STORE``, else ``$XDG_DATA_HOME/testbed/testbed.sqlite``
(``~/.local/share/testbed/testbed.sqlite``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from calibration.record import CalibrationRecord

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS radios (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    serial TEXT,
    identity_json TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    radios TEXT NOT NULL,            -- comma-separated, sorted
    settings_key TEXT NOT NULL,      -- what must match for a record to be reused (LO, rate, bandwidth, ...)
    temperature_c REAL,
    results_json TEXT NOT NULL,      -- every fitted value with its confidence interval
    raw_json TEXT NOT NULL,          -- sweep data (or capture paths) so any figure can be recomputed
    notes_json TEXT NOT NULL,        -- dropped points and why
    meta_json TEXT NOT NULL,         -- radios' identities, settings, versions, report paths
    identity_keys_json TEXT          -- {radio name: identity key} (radio.identity); NULL: never reused
);
CREATE INDEX IF NOT EXISTS calibrations_lookup ON calibrations (radios, settings_key, created_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    calibration_id INTEGER REFERENCES calibrations(id),
    config_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ota_experiences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    episode INTEGER NOT NULL,
    step INTEGER NOT NULL,
    link INTEGER NOT NULL,
    state_json TEXT NOT NULL,
    action INTEGER NOT NULL,
    reward REAL NOT NULL,
    next_state_json TEXT NOT NULL,
    measured_json TEXT NOT NULL,     -- SINR, EVM, BLER, bits as measured
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ota_by_run ON ota_experiences (run_id, episode);
CREATE TABLE IF NOT EXISTS kpm_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT REFERENCES runs(id),
    ts REAL NOT NULL,
    radio TEXT,
    link INTEGER,
    name TEXT NOT NULL,
    value REAL,
    episode INTEGER                  -- the run's episode that produced it (NULL outside runs)
);
CREATE INDEX IF NOT EXISTS kpm_by_run ON kpm_samples (run_id, name, ts);
"""


_SWEEP_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweep_jobs (
    sweep TEXT NOT NULL,             -- the sweep's name
    job_key TEXT NOT NULL,           -- agents.jobs.job_key of the job's config
    config_json TEXT NOT NULL,       -- the resolved training config, grid point and seed
    status TEXT NOT NULL,            -- 'done' or 'failed'
    result_json TEXT,                -- metrics of a finished job
    error TEXT,                      -- exception and traceback of a failed job
    seconds REAL,                    -- wall-clock time of the job in its worker
    updated_at REAL NOT NULL,
    PRIMARY KEY (sweep, job_key)
);
"""
# Created on first use rather than by a schema version: a store without the table is still a valid store, and an
# older testbed that opens one with it simply ignores it.


class StoreError(RuntimeError):
    """The store cannot be opened or is inconsistent."""


def default_store_path() -> Path:
    env = os.environ.get("TESTBED_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "testbed" / "testbed.sqlite"


def _dumps(obj: Any) -> str:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if hasattr(o, "tolist"):
            return clean(o.tolist())
        if hasattr(o, "item"):
            return clean(o.item())
        return o
    return json.dumps(clean(obj), sort_keys=True, allow_nan=False)


@dataclass(frozen=True)
class CalibrationRow:
    """One calibration record as stored."""

    id: int
    created_at: float
    radios: list[str]
    settings_key: str
    temperature_c: float | None
    results: dict[str, Any]
    raw: dict[str, Any]
    notes: list[Any]
    meta: dict[str, Any]
    identity_keys: dict[str, str | None] | None = None
    """Each radio's :func:`radio.identity.identity_key` when the record was made; None for records from before
    identities were kept (never reused)."""

    def record(self) -> "CalibrationRecord":
        """The stored record as a :class:`calibration.record.CalibrationRecord` (without its raw points when the
        row was read without them)."""
        from calibration.record import CalibrationRecord

        return CalibrationRecord.from_dict({"id": self.id, "results": self.results, "raw": self.raw,
                                            "notes": self.notes, "meta": self.meta})

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "radios": self.radios,
                "settings_key": self.settings_key, "temperature_c": self.temperature_c, "results": self.results,
                "raw": self.raw, "notes": self.notes, "meta": self.meta, "identity_keys": self.identity_keys}


class Store:
    """The SQLite context store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable SQLite store: {e}") from None
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(f"{self.path} has schema version {version}; this testbed knows up to "
                             f"{SCHEMA_VERSION}: upgrade testbed")
        if version == 0:
            # Idempotent DDL, with the version written last: an interrupted creation is simply redone.
            self._db.executescript(f"BEGIN;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
        elif version < SCHEMA_VERSION:
            # Version 2 adds the episode of a KPM sample (so a resumed run can drop the in-flight episode's);
            # version 3 the identity keys of a calibration's radios (records from before have none, so they are
            # never reused: nothing says which units they measured).
            steps = {1: ("kpm_samples", "episode", "INTEGER"), 2: ("calibrations", "identity_keys_json", "TEXT")}
            todo = ""
            for table, column, kind in (steps[v] for v in range(version, SCHEMA_VERSION)):
                if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                    todo += f"ALTER TABLE {table} ADD COLUMN {column} {kind};"
            self._db.executescript(f"BEGIN;{todo}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")

    # ---- plumbing ------------------------------------------------------------------------------------------------
    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *exc: Any) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def transaction(self) -> "Store._Tx":
        """``with store.transaction() as db:`` — all or nothing."""
        return Store._Tx(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # ---- radios --------------------------------------------------------------------------------------------------
    def upsert_radio(self, identity: Mapping[str, Any]) -> None:
        """Record that a radio was seen (``identity`` has name, driver and optionally serial)."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO radios (name, driver, serial, identity_json, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET driver=excluded.driver, "
                "serial=excluded.serial, identity_json=excluded.identity_json, last_seen=excluded.last_seen",
                (identity["name"], identity["driver"], identity.get("serial"), _dumps(identity), now, now))

    def radios(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT identity_json, first_seen, last_seen FROM radios ORDER BY name").fetchall()
        return [{**json.loads(r[0]), "first_seen": r[1], "last_seen": r[2]} for r in rows]

    # ---- calibrations --------------------------------------------------------------------------------------------
    def add_calibration(self, radios: Sequence[str], settings_key: str, results: Mapping[str, Any],
                        raw: Mapping[str, Any], *, notes: Sequence[Any] = (), meta: Mapping[str, Any] | None = None,
                        temperature_c: float | None = None, created_at: float | None = None,
                        identity_keys: Mapping[str, str | None] | None = None) -> int:
        """Insert one calibration record; returns its id. ``identity_keys``: each radio's identity key (a record
        without them is never reused); when given, exactly the names in ``radios``."""
        if identity_keys is not None and set(identity_keys) != set(radios):
            raise StoreError(f"identity keys for {sorted(identity_keys)}; the record's radios are {sorted(radios)}")
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO calibrations (created_at, radios, settings_key, temperature_c, results_json, raw_json, "
                "notes_json, meta_json, identity_keys_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time() if created_at is None else created_at, ",".join(sorted(radios)), settings_key,
                 temperature_c, _dumps(results), _dumps(raw), _dumps(list(notes)), _dumps(meta or {}),
                 None if identity_keys is None else _dumps(dict(identity_keys))))
            return int(cur.lastrowid)

    def add_calibration_record(self, radios: Sequence[str], record: "CalibrationRecord", *,
                               identity_keys: Mapping[str, str | None] | None = None) -> int:
        """Insert a :class:`calibration.record.CalibrationRecord` of ``radios`` in one transaction; returns its id
        (the record itself is not changed)."""
        return self.add_calibration(radios, record.settings_key, record.stored_results(), record.raw,
                                    notes=record.notes, meta=record.meta,
                                    temperature_c=record.meta.get("temperature_c"), identity_keys=identity_keys)

    def update_calibration_meta(self, cal_id: int, meta: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            if db.execute("UPDATE calibrations SET meta_json=? WHERE id=?", (_dumps(meta), cal_id)).rowcount != 1:
                raise StoreError(f"no calibration with id {cal_id}")

    def _cal(self, row: Sequence[Any]) -> CalibrationRow:
        return CalibrationRow(int(row[0]), float(row[1]), row[2].split(",") if row[2] else [], row[3], row[4],
                              json.loads(row[5]), json.loads(row[6]), json.loads(row[7]), json.loads(row[8]),
                              None if row[9] is None else json.loads(row[9]))

    _CAL_COLS = ("id, created_at, radios, settings_key, temperature_c, results_json, raw_json, notes_json, meta_json, "
                 "identity_keys_json")

    def calibration(self, cal_id: int) -> CalibrationRow:
        row = self._db.execute(f"SELECT {self._CAL_COLS} FROM calibrations WHERE id=?", (cal_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self._db.execute("SELECT id FROM calibrations ORDER BY id DESC LIMIT 10")]
            raise StoreError(f"no calibration with id {cal_id}; latest ids: {known or 'none'}")
        return self._cal(row)

    def calibrations(self, limit: int = 100) -> list[CalibrationRow]:
        rows = self._db.execute(f"SELECT {self._CAL_COLS} FROM calibrations ORDER BY id DESC LIMIT ?", (limit,))
        return [self._cal(r) for r in rows.fetchall()]

    def recent_calibrations(self, radios: Iterable[str], max_age_s: float | None = None) -> list[CalibrationRow]:
        """Records of exactly these radio names (any settings), newest first, younger than ``max_age_s`` (all when
        None). The candidates for reuse: which one matches the radios' identities and the settings is the
        caller's decision."""
        since = -math.inf if max_age_s is None else time.time() - max_age_s
        rows = self._db.execute(
            f"SELECT {self._CAL_COLS} FROM calibrations WHERE radios=? AND created_at>=? "
            "ORDER BY created_at DESC, id DESC", (",".join(sorted(radios)), since)).fetchall()
        return [self._cal(r) for r in rows]

    def latest_calibration(self, radios: Iterable[str], settings_key: str,
                           max_age_s: float | None = None) -> CalibrationRow | None:
        """The newest record for exactly these radio names and settings, if younger than ``max_age_s``. Names
        only: whether the record measured the same units is not checked here (see
        :func:`testbed.calibration_reuse.calibrate_or_reuse`)."""
        row = self._db.execute(
            f"SELECT {self._CAL_COLS} FROM calibrations WHERE radios=? AND settings_key=? "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (",".join(sorted(radios)), settings_key)).fetchone()
        if row is None:
            return None
        cal = self._cal(row)
        if max_age_s is not None and time.time() - cal.created_at > max_age_s:
            return None
        return cal

    # ---- runs, experiences, KPMs ---------------------------------------------------------------------------------
    def create_run(self, run_id: str, run_dir: str, config: Mapping[str, Any],
                   calibration_id: int | None = None) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO runs (id, created_at, run_dir, status, calibration_id, config_json) "
                       "VALUES (?, ?, ?, 'running', ?, ?)", (run_id, time.time(), run_dir, calibration_id,
                                                            _dumps(config)))

    def set_run_status(self, run_id: str, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT id, created_at, run_dir, status, calibration_id, config_json FROM runs "
                               "WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return None
        return {"id": row[0], "created_at": row[1], "run_dir": row[2], "status": row[3], "calibration_id": row[4],
                "config": json.loads(row[5])}

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` run records, newest first, each as :meth:`run` returns it."""
        rows = self._db.execute("SELECT id, created_at, run_dir, status, calibration_id, config_json FROM runs "
                                "ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "created_at": r[1], "run_dir": r[2], "status": r[3], "calibration_id": r[4],
                 "config": json.loads(r[5])} for r in rows]

    def add_experiences(self, run_id: str, episode: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert one episode's OTA transitions atomically (keys: step, link, state, action, reward,
        next_state, measured). Returns the number inserted."""
        now = time.time()
        values = [(run_id, episode, int(r["step"]), int(r["link"]), _dumps(r["state"]), int(r["action"]),
                   float(r["reward"]), _dumps(r["next_state"]), _dumps(r.get("measured", {})), now) for r in rows]
        with self.transaction() as db:
            db.executemany("INSERT INTO ota_experiences (run_id, episode, step, link, state_json, action, reward, "
                           "next_state_json, measured_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           values)
        return len(values)

    def delete_experiences_after(self, run_id: str, episode: int) -> int:
        """Drop experiences and KPM samples of episodes after ``episode`` (used by resume to discard an episode in
        flight). Returns the number of experiences dropped."""
        with self.transaction() as db:
            db.execute("DELETE FROM kpm_samples WHERE run_id=? AND episode>?", (run_id, episode))
            return db.execute("DELETE FROM ota_experiences WHERE run_id=? AND episode>?", (run_id, episode)).rowcount

    def experiences(self, run_id: str) -> Iterator[dict[str, Any]]:
        for r in self._db.execute("SELECT episode, step, link, state_json, action, reward, next_state_json, "
                                  "measured_json FROM ota_experiences WHERE run_id=? ORDER BY id", (run_id,)):
            yield {"episode": r[0], "step": r[1], "link": r[2], "state": json.loads(r[3]), "action": r[4],
                   "reward": r[5], "next_state": json.loads(r[6]), "measured": json.loads(r[7])}

    def add_kpms(self, samples: Iterable[Mapping[str, Any]], run_id: str | None = None) -> int:
        """KPM samples (keys: name, value, and optionally ts, radio, link, episode)."""
        now = time.time()
        values = [(run_id, float(s.get("ts", now)), s.get("radio"), s.get("link"), str(s["name"]),
                   None if s["value"] is None else float(s["value"]), s.get("episode")) for s in samples]
        with self.transaction() as db:
            db.executemany("INSERT INTO kpm_samples (run_id, ts, radio, link, name, value, episode) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        return len(values)

    def kpms(self, name: str, run_id: str | None = None) -> list[tuple[float, float | None]]:
        q = "SELECT ts, value FROM kpm_samples WHERE name=?" + (" AND run_id=?" if run_id else "") + " ORDER BY ts"
        return [(r[0], r[1]) for r in self._db.execute(q, (name, run_id) if run_id else (name,))]

    # ---- sweep jobs ----------------------------------------------------------------------------------------------
    def _sweep_table(self) -> None:
        if not getattr(self, "_sweep_table_ready", False):
            self._db.executescript(_SWEEP_SCHEMA)
            self._sweep_table_ready = True

    def save_sweep_job(self, sweep: str, job_key: str, config: Mapping[str, Any], *, status: str,
                       result: Mapping[str, Any] | None = None, error: str | None = None,
                       seconds: float | None = None) -> None:
        """Record one job of a sweep (``status`` ``done`` with its ``result``, or ``failed`` with its ``error``),
        replacing an earlier record of the same job."""
        if status not in ("done", "failed"):
            raise StoreError(f"sweep job status {status!r}; allowed: done, failed")
        self._sweep_table()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO sweep_jobs (sweep, job_key, config_json, status, result_json, error, "
                       "seconds, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (sweep, job_key, _dumps(config), status, None if result is None else _dumps(result), error,
                        None if seconds is None or not math.isfinite(seconds) else float(seconds), time.time()))

    def sweep_jobs(self, sweep: str) -> dict[str, dict[str, Any]]:
        """Every recorded job of ``sweep``: job key -> ``{"config", "status", "result", "error", "seconds",
        "updated_at"}``."""
        self._sweep_table()
        rows = self._db.execute("SELECT job_key, config_json, status, result_json, error, seconds, updated_at "
                                "FROM sweep_jobs WHERE sweep=? ORDER BY updated_at", (sweep,)).fetchall()
        return {r[0]: {"config": json.loads(r[1]), "status": r[2], "result": None if r[3] is None else json.loads(r[3]),
                       "error": r[4], "seconds": r[5], "updated_at": r[6]} for r in rows}

    def delete_sweep_jobs(self, sweep: str, job_keys: Iterable[str] | None = None) -> int:
        """Forget jobs of ``sweep`` (all of them when ``job_keys`` is None), so that the next call runs them
        again. Returns the number forgotten."""
        self._sweep_table()
        with self.transaction() as db:
            if job_keys is None:
                return db.execute("DELETE FROM sweep_jobs WHERE sweep=?", (sweep,)).rowcount
            return sum(db.execute("DELETE FROM sweep_jobs WHERE sweep=? AND job_key=?", (sweep, key)).rowcount
                       for key in job_keys)
