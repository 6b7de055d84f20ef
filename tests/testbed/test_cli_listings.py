"""The listing commands a lab user starts with: ``radios`` (exit 3 when a named radio does not answer; a broken
libiio shows the install hint), ``calibrations`` (which records are ``--quick``) and ``runs`` (the store's runs with
their status and key results)."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

from click.testing import CliRunner

from testbed.cli import main
from testbed.store import Store


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"TESTBED_CONFIG": None, "TESTBED_STORE": None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_a_named_radio_that_does_not_answer_exits_3_with_the_install_hint_for_a_broken_libiio(tmp_path, monkeypatch):
    """pyadi-iio installed over a libiio without the symbols it needs fails inside ctypes (OSError/AttributeError,
    not ImportError): ``radios --radios pluto0`` shows the install hint, not the raw loader error, and exits 3;
    simulated radios named alone answer (exit 0)."""
    config = tmp_path / "testbed.toml"
    config.write_text('[radios.pluto0]\ndriver = "pluto"\nuri = "ip:192.0.2.1"\n', encoding="utf-8")
    real_import = builtins.__import__

    def broken_libiio(name, *args, **kwargs):
        if name == "adi":
            raise OSError("/usr/lib/libiio.so.0: undefined symbol: iio_get_backends_count")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken_libiio)
    code, out, err = invoke("radios", "--radios", "sim0,pluto0", "--config", str(config), "--json")
    assert code == 3, (out, err)
    rows = {r["name"]: r for r in last_json(out)["radios"]}
    assert rows["sim0"]["answers"] is True and rows["pluto0"]["answers"] is False
    assert "pip install -e '.[pluto]'" in rows["pluto0"]["error"] and "libiio0" in rows["pluto0"]["error"]
    assert "pluto0 did not answer" in err and "sim0" not in err
    code, out, err = invoke("radios", "--radios", "sim0,sim1", "--config", str(config))
    assert code == 0, err


def test_calibrations_shows_which_records_are_quick(tmp_path):
    store = tmp_path / "s.sqlite"
    code, out, err = invoke("calibrate", "--radios", "sim0,sim1", "--quick", "--store", str(store), "--json")
    assert code == 0, err
    cal_id = last_json(out)["id"]
    code, out, err = invoke("calibrations", "--store", str(store), "--json")
    assert code == 0, err
    assert [(r["id"], r["depth"]) for r in last_json(out)["calibrations"]] == [(cal_id, "quick")]
    code, out, err = invoke("calibrations", "--store", str(store))
    assert code == 0 and out.split()[3] == "quick", out


def test_runs_lists_the_store_s_runs_with_status_mode_and_key_metrics(tmp_path):
    """A finished analytic run is listed with its directory, mode and episodes; a run recorded as running whose
    directory nobody holds (killed) is listed as killed; --show gives one run's config and summary; an unknown id
    exits 2 naming it."""
    store = tmp_path / "s.sqlite"
    run_dir = tmp_path / "done"
    code, out, err = invoke("run", "--physical", "analytic:phi=0.4", "--episodes", "2", "--ota-every", "2",
                            "--eval-episodes", "1", "--run-dir", str(run_dir), "--store", str(store), "--json")
    assert code == 0, err
    finished = last_json(out)
    (tmp_path / "dead").mkdir()
    with Store(store) as s:
        s.create_run("dead", str(tmp_path / "dead"), {"policy": "dqn", "physical": {"kind": "ota"},
                                                    "radios": ["sim0", "sim1"]})
    code, out, err = invoke("runs", "--store", str(store), "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in last_json(out)["runs"]}
    assert set(rows) == {"done", "dead"}
    assert rows["done"]["status"] == "finished" and rows["done"]["mode"] == "dqn/analytic"
    assert Path(rows["done"]["run_dir"]) == run_dir.resolve() and rows["done"]["episodes"] == 2
    assert rows["done"]["policy_mbps"] == finished["evaluation"]["policy"]
    assert rows["dead"]["status"] == "killed" and rows["dead"]["mode"] == "dqn/ota"
    code, out, err = invoke("runs", "--store", str(store))
    assert code == 0 and "done" in out and "killed" in out
    code, out, err = invoke("runs", "--show", "done", "--store", str(store), "--json")
    assert code == 0 and last_json(out)["summary"]["episodes"] == 2
    code, out, err = invoke("runs", "--show", "nosuch", "--store", str(store))
    assert code == 2 and "nosuch" in err
