"""``testbed keys`` and ``testbed serve``, and remote radios from the testbed config: the controller's commands use
a served radio exactly like a local one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from radio.recording import read_sigmf
from radio.remote.keys import ServerKeys, fingerprint, load_keypair
from testbed.cli import main
from testbed.inventory import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
SAFETY = '[safety]\nallowed_bands = [[2.4e9, 2.5e9]]\nmax_tx_gain_db = 0\n'


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def make_keys(tmp_path: Path) -> tuple[Path, Path, str]:
    server_dir, client_dir = tmp_path / "server-keys", tmp_path / "client-keys"
    code, out = run("keys", "generate", "--out", str(server_dir), "--name", "server", "--json")
    assert code == 0, out
    server_key = last_json(out)["public_key"]
    code, out = run("keys", "generate", "--out", str(client_dir), "--json")
    assert code == 0 and last_json(out)["secret_file"].endswith("client.key_secret"), out
    code, out = run("keys", "authorize", "--keys", str(server_dir), str(client_dir / "client.key"), "--json")
    assert code == 0 and Path(last_json(out)["authorized"]).is_file(), out
    return server_dir, client_dir, server_key


def test_keys_refuse_to_overwrite_and_to_authorize_a_secret_key(tmp_path):
    server_dir, client_dir, _ = make_keys(tmp_path)
    code, out = run("keys", "generate", "--out", str(server_dir), "--name", "server")
    assert code == 2 and "already exists" in out
    code, out = run("keys", "authorize", "--keys", str(server_dir), str(client_dir / "client.key_secret"))
    assert code == 2 and "holds a secret key; allowed: the public NAME.key file only" in out
    assert oct((client_dir / "client.key_secret").stat().st_mode & 0o777) == "0o600"


def test_two_controllers_with_the_same_key_file_name_are_both_authorized(tmp_path):
    server_dir, first_dir, _ = make_keys(tmp_path)
    second_dir = tmp_path / "second-controller"
    assert run("keys", "generate", "--out", str(second_dir))[0] == 0  # client.key, like the first controller's
    code, out = run("keys", "authorize", "--keys", str(server_dir), "--name", "lab-pc", str(second_dir / "client.key"),
                    "--json")
    assert code == 0 and last_json(out)["added"] and last_json(out)["label"] == "lab-pc", out
    second = last_json(out)
    assert Path(second["file"]).name == f"{second['fingerprint']}.key"
    # Authorizing either again changes nothing.
    for key_file in (first_dir / "client.key", second_dir / "client.key"):
        code, out = run("keys", "authorize", "--keys", str(server_dir), str(key_file), "--json")
        assert code == 0 and not last_json(out)["added"], out
    code, out = run("keys", "list", "--keys", str(server_dir), "--json")
    listed = last_json(out)["authorized"]
    assert code == 0 and len(listed) == 2 and len({e["fingerprint"] for e in listed}) == 2
    assert sorted(str(e["label"]) for e in listed) == ["None", "lab-pc"]
    public_keys = {load_keypair(d / "client.key").public_text for d in (first_dir, second_dir)}
    assert {e["public_key"] for e in listed} == public_keys
    assert len(ServerKeys.from_directory(server_dir).allowed_clients) == 2
    code, out = run("keys", "list", "--keys", str(server_dir))
    assert code == 0 and second["fingerprint"] in out and "lab-pc" in out

    # A relabelling and a label already in use are refused; nothing changes.
    code, out = run("keys", "authorize", "--keys", str(server_dir), "--name", "other", str(second_dir / "client.key"))
    assert code == 2 and "already authorized as 'lab-pc'" in out
    third_dir = tmp_path / "third"
    run("keys", "generate", "--out", str(third_dir))
    code, out = run("keys", "authorize", "--keys", str(server_dir), "--name", "lab-pc", str(third_dir / "client.key"))
    assert code == 2 and "label 'lab-pc' already names key" in out
    assert len(list((server_dir / "authorized_clients").glob("*.key"))) == 2

    # Revoking removes exactly the one named, by label or by fingerprint.
    code, out = run("keys", "revoke", "--keys", str(server_dir), "lab-pc", "--json")
    assert code == 0 and last_json(out)["fingerprint"] == second["fingerprint"], out
    assert not Path(second["file"]).exists()
    code, out = run("keys", "list", "--keys", str(server_dir), "--json")
    remaining = [e["public_key"] for e in last_json(out)["authorized"]]
    assert remaining == [load_keypair(first_dir / "client.key").public_text]


def test_revoke_refuses_unknown_and_ambiguous_names_naming_the_candidates(tmp_path):
    server_dir, client_dir, _ = make_keys(tmp_path)
    allowed = server_dir / "authorized_clients"
    code, out = run("keys", "list", "--keys", str(server_dir), "--json")
    (entry,) = last_json(out)["authorized"]
    code, out = run("keys", "revoke", "--keys", str(server_dir), "nosuch")
    assert code == 2 and "no authorized key is named 'nosuch'" in out and entry["fingerprint"] in out
    # An allow-list kept by hand may hold one key under two names: its fingerprint then names both files.
    (allowed / "controller.key").write_bytes((client_dir / "client.key").read_bytes())
    code, out = run("keys", "revoke", "--keys", str(server_dir), entry["fingerprint"])
    assert code == 2 and "names 2 keys" in out and "controller" in out and out.count(entry["fingerprint"]) >= 3
    assert len(list(allowed.glob("*.key"))) == 2
    code, out = run("keys", "revoke", "--keys", str(server_dir), "controller")
    assert code == 0 and not (allowed / "controller.key").exists() and Path(entry["file"]).exists()


def test_an_allow_list_of_name_key_files_still_works_and_is_listed(tmp_path):
    server_dir, client_dir, _ = make_keys(tmp_path)
    allowed = server_dir / "authorized_clients"
    for f in allowed.glob("*.key"):
        f.unlink()
    (allowed / "controller.key").write_bytes((client_dir / "client.key").read_bytes())  # as earlier versions did
    public = load_keypair(client_dir / "client.key").public
    assert ServerKeys.from_directory(server_dir).allowed_clients == {public: f"controller ({fingerprint(public)})"}
    code, out = run("keys", "list", "--keys", str(server_dir), "--json")
    assert code == 0 and last_json(out)["authorized"] == [{
        "fingerprint": fingerprint(public), "label": "controller", "file": str(allowed / "controller.key"),
        "public_key": public.decode()}]
    code, out = run("keys", "authorize", "--keys", str(server_dir), str(client_dir / "client.key"), "--json")
    assert code == 0 and not last_json(out)["added"] and len(list(allowed.glob("*.key"))) == 1


@pytest.mark.parametrize("args, message", [
    (["--bind", "tcp://0.0.0.0:0", "--insecure"], "allowed: a loopback address"),
    (["--bind", "tcp://127.0.0.1:0"], "no --keys DIR"),
    (["--bind", "tcp://127.0.0.1:0", "--insecure", "--keys", "x"], "--insecure and --keys both given"),
    (["--bind", "127.0.0.1:5555", "--insecure"], "allowed: tcp://HOST:PORT"),
    (["--bind", "tcp://127.0.0.1:0", "--keys", "/nonexistent/keys"], "does not exist"),
])
def test_serve_bad_input_exits_2_naming_the_problem(args, message, monkeypatch):
    monkeypatch.delenv("TESTBED_SERVER_KEYS", raising=False)
    code, out = run("serve", "--radio", "sim0", *args)
    assert code == 2 and message in out, out


def test_serve_unknown_radio_exits_2(tmp_path):
    code, out = run("serve", "--radio", "nosuch0", "--bind", "tcp://127.0.0.1:0", "--insecure")
    assert code == 2 and "unknown radio 'nosuch0'" in out


def test_served_radio_is_used_by_the_controller_like_a_local_one(tmp_path):
    server_dir, client_dir, server_key = make_keys(tmp_path)
    server_cfg = tmp_path / "server.toml"
    server_cfg.write_text(SAFETY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", "serve", "--radio", "sim0", "--bind", "tcp://127.0.0.1:0",
         "--keys", str(server_dir), "--config", str(server_cfg), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "listening" and ready["server_key"] == server_key
        # The controller's own directory: its keypair and a copy of the server's public key, named relative to
        # the config file.
        controller = tmp_path / "controller"
        controller.mkdir()
        (controller / "server.key").write_bytes((server_dir / "server.key").read_bytes())
        client_dir.rename(controller / "keys")
        client_cfg = controller / "testbed.toml"
        client_cfg.write_text(SAFETY + f'[radios.far0]\ndriver = "remote"\nendpoint = "{ready["endpoint"]}"\n'
                                       f'server_key = "server.key"\nclient_key = "keys/client.key_secret"\n'
                                       f'timeout_s = 10\n')

        code, out = run("radios", "--config", str(client_cfg), "--radios", "far0", "--json")
        assert code == 0, out
        row = last_json(out)["radios"][0]
        assert row["answers"] and row["driver"] == "remote" and row["identity"]["server"]["driver"] == "sim"
        assert row["capabilities"]["lo_hz"]["high"] == 6e9

        code, out = run("capture", "--config", str(client_cfg), "--radio", "far0", "--lo", "2.44e9",
                        "--rate", "1.92e6", "--samples", "19200", "--out", str(tmp_path / "cap"), "--json")
        assert code == 0, out
        recording = read_sigmf(tmp_path / "cap.sigmf-meta")
        assert recording.samples.size == 19200 and recording.rate_sps == 1.92e6 and recording.lo_hz == 2.44e9
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stopped = last_json(out)
    assert stopped["event"] == "stopped" and stopped["stats"]["receives"] >= 1
    assert stopped["stats"]["refused_clients"] == 0


@pytest.mark.parametrize("body, match", [
    ('driver = "remote"\n', r"\[radios.r0\]: endpoint = None; allowed: \"tcp://HOST:PORT\""),
    ('driver = "remote"\nendpoint = "tcp://10.0.0.2"\nserver_key = "k"\n', "allowed: tcp://HOST:PORT"),
    ('driver = "remote"\nendpoint = "tcp://10.0.0.2:5555"\n', "no server_key"),
    ('driver = "remote"\nendpoint = "tcp://10.0.0.2:5555"\ninsecure = true\n', "loopback address only"),
    ('driver = "remote"\nendpoint = "tcp://127.0.0.1:5555"\ninsecure = true\ntimeout_s = 0\n',
     "timeout_s = 0; allowed: 0 < value"),
    ('driver = "remote"\nendpoint = "tcp://127.0.0.1:5555"\ninsecure = true\nretries = -1\n', "retries = -1"),
    ('driver = "remote"\nendpoint = "tcp://127.0.0.1:5555"\ninsecure = true\nkey = 1\n',
     r"unknown key\(s\) \['key'\] for driver 'remote'"),
])
def test_remote_config_errors_name_the_key(tmp_path, body, match):
    p = tmp_path / "testbed.toml"
    p.write_text(SAFETY + "[radios.r0]\n" + body)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_unreachable_remote_radio_is_a_radio_fault_row_and_exit_3(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = tmp_path / "testbed.toml"
    p.write_text(SAFETY + f'[radios.r0]\ndriver = "remote"\nendpoint = "tcp://127.0.0.1:{port}"\n'
                          f'insecure = true\ntimeout_s = 0.2\nretries = 1\n')
    code, out = run("radios", "--config", str(p), "--radios", "r0", "--json")
    row = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])["radios"][0]
    assert code == 3 and not row["answers"]
    assert "RadioDisconnected" in row["error"]
    code, out = run("capture", "--config", str(p), "--radio", "r0", "--lo", "2.44e9", "--rate", "1.92e6",
                    "--samples", "100", "--out", str(tmp_path / "c"))
    assert code == 3 and "radio fault" in out
