"""CurveZMQ authentication: only allow-listed client keys get through; a wrong key, no key, a wrong server key and
a replayed handshake are refused and logged, and nothing they send reaches the radio."""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
import pytest

from _remote_testlib import KeySet, RecordingProxy, ism_guard, served, sim_spy, wait_until
from radio import RadioConfigError, RadioDisconnected, TxGuardRefused
from radio.remote import RadioServer, RemoteRadio
from radio.remote.keys import ServerKeys, generate_keypair, parse_public_key

SETTINGS = dict(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, tx_gain_db=-10.0, rx_gain_db=20.0)


@pytest.fixture(scope="module")
def keyset(tmp_path_factory) -> KeySet:
    return KeySet(tmp_path_factory.mktemp("keys"))


def test_authorized_client_works_over_curve(keyset):
    spy = sim_spy()
    with served(spy, keys=keyset.server) as server, keyset.radio(server.endpoint) as remote:
        remote.configure(**SETTINGS)
        remote.transmit(np.full(64, 0.1, np.complex64), cyclic=True, occupied_bw_hz=1e6)
        samples, meta = remote.receive(1920)
        assert samples.size == 1920 and meta.extra["transmitters_heard"] == 1
        assert server.stats.refused_clients == 0 and server.stats.accepted_handshakes >= 1
    assert spy.transmits_reaching_radio == 1


def test_unknown_client_key_is_refused_at_once_and_logged(keyset, caplog):
    spy = sim_spy()
    caplog.set_level(logging.WARNING, logger="radio.remote.server")
    with served(spy, keys=keyset.server) as server:
        with pytest.raises(RadioDisconnected, match="refused this client .* not in the server's allow-list"):
            keyset.radio(server.endpoint, client_keypair=keyset.intruder, timeout_s=2.0, retries=1)
        assert wait_until(lambda: server.stats.refused_clients >= 1)
        assert server.stats.requests == 0
    assert any(keyset.intruder.public_text in r.getMessage() and "not in the allow-list" in r.getMessage()
               for r in caplog.records)
    assert spy.configures_reaching_radio == 0 and spy.transmits_reaching_radio == 0


@pytest.mark.parametrize("how", ["no key (plaintext client)", "wrong server key"])
def test_client_without_the_right_keys_is_refused(keyset, how, caplog):
    spy = sim_spy()
    caplog.set_level(logging.WARNING, logger="radio.remote.server")
    with served(spy, keys=keyset.server) as server:
        with pytest.raises(RadioDisconnected, match="no answer .* handshake failed"):
            if how.startswith("no key"):
                RemoteRadio("r0", server.endpoint, insecure=True, timeout_s=0.3, retries=1, heartbeat_s=0)
            else:
                keyset.radio(server.endpoint, server_key=keyset.intruder.public, timeout_s=0.3, retries=1)
        assert wait_until(lambda: server.stats.refused_clients >= 1)
        assert server.stats.requests == 0
    assert any("handshake failed" in r.getMessage() for r in caplog.records)
    assert spy.configures_reaching_radio == 0


def test_replayed_handshake_and_requests_are_refused(keyset):
    spy = sim_spy()
    with served(spy, keys=keyset.server) as server:
        port = int(server.endpoint.rsplit(":", 1)[1])
        proxy = RecordingProxy(port)
        try:
            with keyset.radio(f"tcp://127.0.0.1:{proxy.port}") as remote:
                remote.configure(**SETTINGS)
                remote.transmit(np.full(64, 0.1, np.complex64), occupied_bw_hz=1e6)
        finally:
            proxy.close()
        assert spy.transmits_reaching_radio == 1
        requests, refused = server.stats.requests, server.stats.refused_clients
        recorded = bytes(proxy.recorded)
        assert len(recorded) > 200  # greeting, HELLO, INITIATE and the encrypted requests
        # Replay everything the legitimate client sent, byte for byte, on a fresh connection.
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as raw:
            raw.sendall(recorded)
            deadline = time.monotonic() + 2.0
            try:
                while time.monotonic() < deadline and raw.recv(65536):
                    pass
            except (TimeoutError, socket.timeout, ConnectionResetError):
                pass
        assert wait_until(lambda: server.stats.refused_clients > refused)
        assert server.stats.requests == requests
    assert spy.transmits_reaching_radio == 1 and spy.configures_reaching_radio == 1


def test_server_refuses_plaintext_off_loopback_and_needs_keys():
    with pytest.raises(RadioConfigError, match="plaintext .* refused; allowed: a loopback address"):
        RadioServer(sim_spy(), "tcp://0.0.0.0:0", insecure=True)
    with pytest.raises(RadioConfigError, match="no server keys"):
        RadioServer(sim_spy(), "tcp://0.0.0.0:0")


def test_key_directory_errors_name_the_missing_piece(tmp_path):
    with pytest.raises(RadioConfigError, match="does not exist"):
        ServerKeys.from_directory(tmp_path / "nowhere")
    generate_keypair(tmp_path, "server")
    with pytest.raises(RadioConfigError, match="authorized_clients does not exist"):
        ServerKeys.from_directory(tmp_path)
    (tmp_path / "authorized_clients").mkdir()
    with pytest.raises(RadioConfigError, match="no client is authorized"):
        ServerKeys.from_directory(tmp_path)
    with pytest.raises(RadioConfigError, match="already exists"):
        generate_keypair(tmp_path, "server")
    with pytest.raises(RadioConfigError, match="key name '../x'"):
        generate_keypair(tmp_path, "../x")
    assert parse_public_key(str(tmp_path / "server.key")) == parse_public_key(
        (tmp_path / "server.key").read_text().split('"')[1])
    with pytest.raises(RadioConfigError, match="neither 40 Z85 characters nor an existing key file"):
        parse_public_key("short")


def test_curve_client_checks_its_own_guard_too(keyset):
    # The remote radio is a Radio like any other: an out-of-band transmit is refused before it leaves the client.
    spy = sim_spy()
    with served(spy, keys=keyset.server) as server, keyset.radio(server.endpoint) as remote:
        remote.configure(**{**SETTINGS, "lo_hz": 3.5e9})
        assert not ism_guard().allows("r0", 3.5e9, 1e6, -10)
        with pytest.raises(TxGuardRefused, match="TX guard"):
            remote.transmit(np.full(64, 0.1, np.complex64), occupied_bw_hz=1e6)
    assert spy.transmits_reaching_radio == 0
