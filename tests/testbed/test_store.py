"""The SQLite context store: WAL, atomic writes, reuse lookup, survival of a killed writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from testbed.store import Store, StoreError


def test_wal_mode_and_schema_version(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        assert s.journal_mode() == "wal"
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(tmp_path / "s.sqlite")


def test_not_a_database_is_a_clear_error(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite store"):
        Store(p)


def test_calibration_round_trip_and_reuse_lookup(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        old = s.add_calibration(["sim1", "sim0"], "lo=2.44e9", {"kappa_t": {"sim0": [0.03, 0.028, 0.032]}},
                                {"sweep": [1, 2, 3]}, created_at=time.time() - 7200)
        new = s.add_calibration(["sim0", "sim1"], "lo=2.44e9", {"phi": [0.4, 0.3, 0.5]}, {"sweep": []},
                                notes=["dropped point 3: clipping"], temperature_c=41.0)
        s.add_calibration(["sim0", "sim1"], "lo=5.8e9", {}, {})
        got = s.latest_calibration(["sim1", "sim0"], "lo=2.44e9", max_age_s=3600)
        assert got is not None and got.id == new and got.results["phi"] == [0.4, 0.3, 0.5]
        assert got.notes == ["dropped point 3: clipping"] and got.radios == ["sim0", "sim1"]
        assert s.latest_calibration(["sim0"], "lo=2.44e9") is None
        assert s.calibration(old).raw == {"sweep": [1, 2, 3]}
        with pytest.raises(StoreError, match="no calibration with id 999"):
            s.calibration(999)
        assert [c.id for c in s.calibrations()] == [new + 1, new, old]


def test_failed_transaction_leaves_nothing(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.create_run("r1", str(tmp_path), {"a": 1})
        rows = [{"step": 0, "link": 0, "state": [0] * 6, "action": 3, "reward": 1.0, "next_state": [1] * 6},
                {"step": 1, "link": 0, "state": [0] * 6, "action": "not a number", "reward": 1.0,
                 "next_state": [1] * 6}]
        with pytest.raises(ValueError):
            s.add_experiences("r1", 0, rows)
        assert list(s.experiences("r1")) == []
        with pytest.raises(sqlite3.IntegrityError):
            s.add_experiences("no-such-run", 0, rows[:1])  # foreign key


def test_sigkilled_writer_never_leaves_half_an_episode(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.create_run("r1", str(tmp_path), {})
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from testbed.store import Store
        s = Store({str(path)!r})
        ep = 0
        while True:
            rows = [{{"step": i, "link": l, "state": [0.0] * 6, "action": 1, "reward": 0.5,
                      "next_state": [0.0] * 6}} for i in range(20) for l in range(5)]
            s.add_experiences("r1", ep, rows)
            ep += 1
            print(ep, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(path) as s:
        per_episode: dict[int, int] = {}
        for e in s.experiences("r1"):
            per_episode[e["episode"]] = per_episode.get(e["episode"], 0) + 1
    assert len(per_episode) >= 5
    assert set(per_episode.values()) == {100}  # every committed episode is whole


def test_kpms_and_radios(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.upsert_radio({"name": "sim0", "driver": "sim"})
        s.upsert_radio({"name": "sim0", "driver": "sim", "serial": "x"})
        assert [r["serial"] for r in s.radios()] == ["x"]
        s.add_kpms([{"name": "ota/evm", "value": 0.03, "ts": 2.0}, {"name": "ota/evm", "value": 0.04, "ts": 1.0}])
        assert s.kpms("ota/evm") == [(1.0, 0.04), (2.0, 0.03)]


def test_a_version_1_store_is_upgraded_and_resume_drops_the_episode_in_flight(tmp_path):
    """A store written before KPM samples carried their episode opens, gains the column, and keeps its data;
    dropping episodes after a checkpoint removes their experiences and KPM samples, nothing else."""
    import sqlite3

    from testbed.store import _SCHEMA

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA.replace("    value REAL,\n    episode INTEGER                  -- the run's episode "
                                     "that produced it (NULL outside runs)\n", "    value REAL\n"))
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO kpm_samples (run_id, ts, name, value) VALUES (NULL, 1.0, 'ota/evm', 0.05)")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.kpms("ota/evm") == [(1.0, 0.05)]
        store.create_run("r", str(tmp_path), {})
        for episode in (1, 2):
            store.add_experiences("r", episode, [{"step": 0, "link": 0, "state": [0.0], "action": 1, "reward": 1.0,
                                                  "next_state": [0.0]}])
            store.add_kpms([{"name": "ota/sinr_db", "value": 10.0 + episode, "episode": episode}], "r")
        store.delete_experiences_after("r", 1)
        assert [row["episode"] for row in store.experiences("r")] == [1]
        assert [v for _, v in store.kpms("ota/sinr_db", "r")] == [11.0]


def test_recent_calibrations_and_identity_keys_round_trip(tmp_path):
    """Candidates for reuse: every record of exactly these names younger than the limit, newest first, with the
    identity keys stored beside it (which must name exactly the record's radios)."""
    keys = {"sim0": "a" * 64, "sim1": None}
    with Store(tmp_path / "s.sqlite") as s:
        old = s.add_calibration(["sim0", "sim1"], "k", {}, {}, created_at=time.time() - 7200, identity_keys=keys)
        new = s.add_calibration(["sim1", "sim0"], "other", {}, {})
        s.add_calibration(["sim0", "sim2"], "k", {}, {})
        assert [r.id for r in s.recent_calibrations(["sim1", "sim0"])] == [new, old]
        assert [r.id for r in s.recent_calibrations(["sim0", "sim1"], max_age_s=3600)] == [new]
        assert s.calibration(old).identity_keys == keys and s.calibration(new).identity_keys is None
        with pytest.raises(StoreError, match=r"identity keys for \['sim0'\]; the record's radios are"):
            s.add_calibration(["sim0", "sim1"], "k", {}, {}, identity_keys={"sim0": "b" * 64})


def test_a_version_2_store_gains_identity_keys_and_its_records_have_none(tmp_path):
    """A store written before calibrations carried their radios' identity keys opens, gains the column (schema 3)
    and keeps its records; they read back without identity keys, so nothing reuses them."""
    from testbed.store import SCHEMA_VERSION, _SCHEMA

    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    lines = [line for line in _SCHEMA.splitlines() if "identity_keys_json" not in line]
    old_schema = "\n".join(lines).replace("meta_json TEXT NOT NULL,", "meta_json TEXT NOT NULL")
    assert "identity_keys_json" not in old_schema
    db.executescript(old_schema)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO calibrations (created_at, radios, settings_key, results_json, raw_json, notes_json, "
               "meta_json) VALUES (?, 'sim0,sim1', 'k', '{}', '{}', '[]', '{}')", (time.time(),))
    db.commit()
    db.close()
    with Store(path) as s:
        (row,) = s.recent_calibrations(["sim0", "sim1"], max_age_s=3600)
        assert row.identity_keys is None and row.settings_key == "k"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    db.close()
