"""``testbed calibrate`` and ``testbed calibrations``: one record per run in the store, whole or not at all; the
report on disk; listing and showing records; exit code 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testbed.cli import main
from testbed.store import Store

PLOTS = ("constellation.png", "spectrum.png", "evm_vs_power.png", "aclr_acir_vs_power.png", "phi_fit.png")


def invoke(*args: str, env: dict[str, Any] | None = None) -> tuple[int, str, str]:
    """Run the CLI; returns (exit code, stdout, stderr). The testbed config is the built-in default."""
    result = CliRunner().invoke(main, list(args), env={"TESTBED_CONFIG": None, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two quick calibrations of sim0,sim1 into one store: the first with --out, the second with the default
    report directory (via TESTBED_STORE rather than --store)."""
    root = tmp_path_factory.mktemp("calibrate")
    store = root / "store" / "testbed.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        first = invoke("calibrate", "--radios", "sim0,sim1", "--quick", "--json", "--store", str(store),
                       "--out", str(root / "report1"))
        second = invoke("calibrate", "--radios", "sim0,sim1", "--quick", "--json",
                        env={"TESTBED_STORE": str(store)})
    for code, out, err in (first, second):
        assert code == 0, err
    return {"root": root, "store": store, "first": last_json(first[1]), "second": last_json(second[1])}


def test_two_calibrations_give_two_consistent_records(two_runs):
    """Each run stores exactly one record (ids 1 then 2) for the same radios and settings key; with the same
    simulated air (seed 0) and settings both measure the same kappa, and the estimates lie in their intervals."""
    first, second = two_runs["first"], two_runs["second"]
    assert (first["id"], second["id"]) == (1, 2)
    with Store(two_runs["store"]) as store:
        rows = store.calibrations()
    assert [r.id for r in rows] == [2, 1]
    assert rows[0].radios == rows[1].radios == ["sim0", "sim1"]
    assert rows[0].settings_key == rows[1].settings_key
    assert rows[0].settings_key.startswith("lte5|lo=2450000000|")
    for which in ("kappa_t", "kappa_r"):
        for name in ("sim0", "sim1"):
            a, b = first[which][name], second[which][name]
            assert a["value"] == pytest.approx(b["value"], rel=1e-9)
            assert a["ci95"][0] <= a["value"] <= a["ci95"][1]
            assert 0.0 < a["value"] < 0.2
    assert first["separated"] is True
    for phi in ("phi_hwi", "phi_aci", "phi"):
        assert first[phi] is not None and first[phi]["ci95"][0] <= first[phi]["value"] <= first[phi]["ci95"][1]
    # Both measured the same units at the same depth: each record keeps the radios' identity keys and its depth.
    assert rows[0].identity_keys == rows[1].identity_keys
    assert set(rows[0].identity_keys) == {"sim0", "sim1"} and all(rows[0].identity_keys.values())
    assert rows[0].meta["depth"] == rows[1].meta["depth"] == "quick"


def test_report_directories_hold_the_page_and_every_plot(two_runs):
    """--out puts the report where asked; without it the report goes to calibrations/<id>/ next to the store. Each
    holds report.html, calibration.json and the five plots, and the stored meta points at the page."""
    root = two_runs["root"]
    dirs = {1: root / "report1", 2: two_runs["store"].parent / "calibrations" / "2"}
    for cal_id, d in dirs.items():
        for name in ("report.html", "calibration.json") + PLOTS:
            assert (d / name).is_file() and (d / name).stat().st_size > 0, f"record {cal_id}: {d / name} missing"
        page = (d / "report.html").read_text()
        assert all(f'src="{p}"' in page for p in PLOTS)
        assert json.loads((d / "calibration.json").read_text())["id"] == cal_id
    assert Path(two_runs["first"]["report"]["html"]) == dirs[1] / "report.html"
    with Store(two_runs["store"]) as store:
        assert Path(store.calibration(2).meta["report"]["html"]) == dirs[2] / "report.html"


def test_calibrations_lists_and_shows_records(two_runs):
    """``calibrations --json`` lists both records newest first; ``--show 1 --json`` gives record 1's kappa and phi
    as calibrate printed them; the human listing has one line per record."""
    store = str(two_runs["store"])
    code, out, err = invoke("calibrations", "--json", "--store", store)
    assert code == 0, err
    listing = last_json(out)["calibrations"]
    assert [r["id"] for r in listing] == [2, 1]
    assert all(r["radios"] == ["sim0", "sim1"] for r in listing)
    assert listing[0]["settings_key"] == listing[1]["settings_key"]

    code, out, err = invoke("calibrations", "--show", "1", "--json", "--store", store)
    assert code == 0, err
    shown = last_json(out)
    first = two_runs["first"]
    assert shown["id"] == 1 and shown["radios"] == ["sim0", "sim1"]
    assert shown["kappa_t"] == first["kappa_t"] and shown["kappa_r"] == first["kappa_r"]
    assert shown["phi_hwi"] == first["phi_hwi"] and shown["phi"] == first["phi"]

    code, out, err = invoke("calibrations", "--store", store)
    assert code == 0, err
    lines = [line for line in out.splitlines() if "sim0,sim1" in line]
    assert len(lines) == 2 and lines[0].split()[0] == "2" and lines[1].split()[0] == "1"


def test_show_of_a_missing_record_is_bad_input(two_runs):
    """``--show 99`` exits 2 and the message names 99."""
    code, out, err = invoke("calibrations", "--show", "99", "--store", str(two_runs["store"]))
    assert code == 2
    assert "99" in err and "no calibration" in err


@pytest.mark.parametrize("radios, says", [
    ("sim0", "at least two different radios"),
    ("sim0,sim0", "at least two different radios"),
    ("sim0,nosuch", "nosuch"),
])
def test_bad_radio_lists_exit_2_and_store_nothing(tmp_path, monkeypatch, radios, says):
    """One radio, the same radio twice, or an unknown name: exit 2 with a message naming the problem, before any
    calibration is run or stored."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.sqlite"
    code, out, err = invoke("calibrate", "--radios", radios, "--quick", "--store", str(store))
    assert code == 2, (out, err)
    assert says in err
    if store.exists():
        with Store(store) as s:
            assert s.calibrations() == []


def test_a_failure_before_the_insert_leaves_no_record(tmp_path, monkeypatch):
    """An exception in the middle of a calibration (here: after some sweep points) propagates, and neither a
    record nor a report directory is left behind; a later listing is empty."""
    import calibration.session

    def broken(radios, settings=None, *, progress=None, on_total=None, fit_link_abstraction=None):
        on_total(10)
        progress(1)
        progress(1)
        raise RuntimeError("the air broke down mid-sweep")

    monkeypatch.setattr(calibration.session, "run_calibration", broken)
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(main, ["calibrate", "--radios", "sim0,sim1", "--quick", "--store", str(store)],
                                env={"TESTBED_CONFIG": None})
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    with Store(store) as s:
        assert s.calibrations() == []
    assert not (tmp_path / "calibrations").exists()
    code, out, err = invoke("calibrations", "--json", "--store", str(store))
    assert code == 0 and last_json(out) == {"calibrations": []}
