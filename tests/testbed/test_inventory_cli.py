"""Config loading, the radio inventory, and the ``radios`` / ``capture`` commands (exit codes, --json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from radio import RadioConfigError
from radio.recording import read_sigmf
from testbed.cli import main
from testbed.inventory import ConfigError, load_config, open_radios


def write(tmp_path, text: str, name: str = "testbed.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_builtin_defaults_allow_ism_only(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TESTBED_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.source == "built-in defaults"
    assert cfg.guard.allows("sim0", 2.44e9, 5e6, 0.0)
    assert not cfg.guard.allows("sim0", 3.5e9, 5e6, 0.0)
    assert cfg.entry("sim7").driver == "sim" and cfg.entry("loop3").driver == "loopback"


@pytest.mark.parametrize("text, match", [
    ("[radios.p0]\ndriver = 'plutox'\n", r"\[radios.p0\] driver = 'plutox'; allowed: sim, loopback"),
    ("[radios.p0]\ndriver = 'pluto'\nurl = 'ip:1'\n", r"unknown key\(s\) \['url'\] for driver 'pluto'"),
    ("[safety]\nallowed_bands = [[2.5e9, 2.4e9]]\n", r"\[safety\] allowed_bands\[0\]"),
    ("[safty]\n", "unknown top-level key 'safty'"),
    ("[radios.r]\ndriver = 'replay'\n", "needs path"),
    ("not toml = = 3\n", "not valid TOML"),
    ("[defaults]\nlo = 3\n", r"\[defaults\] keys \['lo'\] unknown"),
])
def test_malformed_config_names_file_and_key(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(p)
    assert str(p) in str(e.value) or "not valid TOML" in str(e.value)


def test_open_radios_rejects_unknown_names_before_opening_any(tmp_path):
    cfg = load_config(write(tmp_path, "[safety]\nallowed_bands=[[2.4e9,2.5e9]]\nmax_tx_gain_db=0\n"))
    with pytest.raises(RadioConfigError, match="unknown radio 'pluto0'; known: sim0"):
        with open_radios(["loop0", "pluto0"], cfg):
            pass


def test_open_radios_applies_defaults_and_closes(tmp_path):
    cfg = load_config(write(tmp_path, "[safety]\nallowed_bands=[[2.4e9,2.5e9]]\nmax_tx_gain_db=0\n"
                                      "[defaults]\nlo_hz = 2.42e9\nrate_sps = 1.92e6\n"))
    with open_radios(["loop0", "loop1"], cfg) as radios:
        assert radios["loop1"].settings.lo_hz == 2.42e9
        kept = list(radios.values())
    assert all(r._closed for r in kept)


def test_radios_command_lists_answering_and_unreachable_radios(tmp_path):
    p = write(tmp_path, "[safety]\nallowed_bands=[[2.4e9,2.5e9]]\nmax_tx_gain_db=0\n"
                        "[radios.rec0]\ndriver='replay'\npath='missing.sigmf-meta'\n")
    code, out = run("radios", "--config", str(p), "--radios", "loop0,rec0", "--json")
    assert code == 3, out  # a named radio that does not answer is a radio fault
    assert "rec0 did not answer" in out
    rows = {r["name"]: r for r in json.loads([x for x in out.splitlines() if x.startswith("{")][-1])["radios"]}
    assert rows["loop0"]["answers"] and rows["loop0"]["capabilities"]["lo_hz"]["high"] == 6e9
    assert not rows["rec0"]["answers"] and "does not exist" in rows["rec0"]["error"]


def test_radios_command_bad_input_exit_codes(tmp_path):
    code, out = run("radios", "--radios", "nope0")
    assert code == 2 and "unknown radio 'nope0'" in out
    code, out = run("radios", "--config", str(write(tmp_path, "[safty]\n")))
    assert code == 2 and "safty" in out


def test_capture_writes_a_valid_recording(tmp_path):
    out_file = tmp_path / "cap"
    code, out = run("capture", "--radio", "loop0", "--lo", "2.44e9", "--rate", "1.92e6", "--samples", "3000",
                    "--out", str(out_file), "--json")
    assert code == 0, out
    info = last_json(out)
    rec = read_sigmf(info["meta"])
    assert rec.samples.size == 3000 and rec.rate_sps == 1.92e6 and rec.lo_hz == 2.44e9
    assert rec.meta["global"]["testbed:radio"] == "loop0"
    code, out = run("capture", "--radio", "loop0", "--lo", "2.44e9", "--rate", "1.92e6", "--samples", "10",
                    "--out", str(out_file))
    assert code == 2 and "already exists" in out
    np.testing.assert_array_equal(read_sigmf(info["meta"]).samples, rec.samples)  # untouched


@pytest.mark.parametrize("args, match", [
    (["--lo", "9e9", "--rate", "1e6"], "lo_hz = 9e+09 Hz is out of range"),
    (["--lo", "2.4e9", "--rate", "1e9"], "rate_sps = 1e+09"),
])
def test_capture_out_of_range_exits_2_naming_the_range(tmp_path, args, match):
    code, out = run("capture", "--radio", "loop0", *args, "--samples", "10", "--out", str(tmp_path / "x"))
    assert code == 2 and match in out and "allowed" in out


def test_the_example_config_is_valid_and_means_what_it_says():
    from tests.conftest import REPO

    cfg = load_config(REPO / "testbed.example.toml")
    assert cfg.entry("pluto0").driver == "pluto" and cfg.entry("usrp0").options["args"] == "type=b200"
    assert cfg.guard.allows("usrp0", 2.44e9, 5e6, 60.0) and not cfg.guard.allows("pluto0", 2.44e9, 5e6, 0.0)
    assert cfg.guard.allows("pluto0", 5.8e9, 5e6, -10.0) and not cfg.guard.allows("pluto0", 5.0e9, 5e6, -10.0)
