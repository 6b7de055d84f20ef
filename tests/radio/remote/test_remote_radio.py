"""A remote radio behaves like the local radio it serves: same samples, same typed errors, the TX guard on both
sides; it survives a server restart (settings and cyclic transmission re-applied) and gives up cleanly when the
server is gone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _remote_testlib import free_port, insecure_client, served, sim_spy, wait_until
from radio import (RadioConfigError, RadioDisconnected, RadioOverflow, RadioSettings, RadioTimeout, TxGuard,
                   TxGuardRefused)
from radio.remote import protocol as proto
from radio.remote.client import RemoteRadio
from radio.sim import SimulatedAir
from radio.sim.faults import FaultPlan

SETTINGS = dict(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, tx_gain_db=-10.0, rx_gain_db=20.0)


def tone(n: int = 480, amp: float = 0.3) -> np.ndarray:
    return (amp * np.exp(2j * np.pi * 0.1 * np.arange(n))).astype(np.complex64)


def test_remote_receive_is_bit_identical_to_the_local_radio_it_serves():
    local = SimulatedAir(seed=3).radio("sim0", TxGuard.from_config({"allowed_bands": [[2.4e9, 2.5e9]],
                                                                    "max_tx_gain_db": 0}))
    served_radio = sim_spy("sim0", seed=3)
    with served(served_radio) as server, insecure_client(server.endpoint) as remote:
        for r in (local, remote):
            r.configure(**SETTINGS)
            r.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
        for _ in range(5):
            a, meta_a = local.receive(1920)
            b, meta_b = remote.receive(1920)
            assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
            assert meta_b.timestamp_s == meta_a.timestamp_s and meta_b.clip_count == meta_a.clip_count
            assert meta_b.lo_hz == SETTINGS["lo_hz"] and meta_b.radio == "sim0"
        assert b.flags.writeable and b.dtype == np.complex64
        assert remote.capabilities.lo_hz == local.capabilities.lo_hz
        assert remote.identity()["server"]["driver"] == "sim"
        remote.stop_transmit()
        assert not served_radio.transmitting
    local.close()


def test_server_guard_refuses_what_the_client_guard_allows():
    deny = TxGuard.from_config({"allowed_bands": [[5.7e9, 5.8e9]], "max_tx_gain_db": 0})
    spy = sim_spy(guard=deny)
    with served(spy) as server, insecure_client(server.endpoint) as remote:  # client guard: 2.4 GHz ISM
        remote.configure(**SETTINGS)
        with pytest.raises(TxGuardRefused, match="TX guard: sim0 .* 5700-5800 MHz"):
            remote.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
        assert not remote.transmitting
    assert spy.transmits_reaching_radio == 0 and not spy.transmitting


def test_client_guard_refuses_before_anything_is_sent():
    spy = sim_spy()
    with served(spy) as server:
        remote = insecure_client(server.endpoint, guard=TxGuard.deny_all())
        remote.configure(**SETTINGS)
        requests = server.stats.requests
        with pytest.raises(TxGuardRefused):
            remote.transmit(tone())
        assert server.stats.requests == requests
        remote.close()
    assert spy.transmits_reaching_radio == 0


def test_server_side_faults_arrive_as_the_same_typed_exceptions():
    plan = FaultPlan(timeout_every=3, overflow_every=4, nan_every=5, disconnect_after=12)
    spy = sim_spy(plan=plan)
    with served(spy) as server, insecure_client(server.endpoint) as remote:
        remote.configure(**SETTINGS)  # call 1
        seen = []
        for _ in range(12):
            try:
                samples, meta = remote.receive(256)
                seen.append(meta.extra.get("injected_fault", "ok"))
                if seen[-1] == "nan":
                    assert np.isnan(samples).any()
            except (RadioTimeout, RadioOverflow, RadioDisconnected) as e:
                seen.append(type(e).__name__)
        assert seen == ["ok", "ok", "RadioTimeout", "RadioOverflow", "nan", "RadioTimeout", "ok", "RadioOverflow",
                        "RadioTimeout", "nan", "ok", "RadioDisconnected"]
        with pytest.raises(RadioDisconnected):
            remote.receive(16)


def test_server_validates_settings_again_and_names_the_range():
    spy = sim_spy()
    with served(spy) as server:
        bad = {**RadioSettings().as_dict(), "lo_hz": 1e12}
        reply = proto.decode_reply(server.handle(proto.encode_request(1, "configure", "c", server.session,
                                                                      {"settings": bad})))
        with pytest.raises(RadioConfigError, match="lo_hz = 1e\\+12 Hz is out of range; allowed 7e\\+07 to 6e\\+09"):
            reply.raise_error()
    assert spy.configures_reaching_radio == 0


def test_a_retried_request_is_answered_from_the_cache_and_transmits_once():
    spy = sim_spy()
    server_session = None
    with served(spy) as server:
        server_session = server.session
        configure = proto.encode_request(1, "configure", "c", server_session,
                                         {"settings": RadioSettings(**SETTINGS).as_dict()})
        transmit = proto.encode_request(2, "transmit", "c", server_session,
                                        {"num_samples": 480, "cyclic": True, "occupied_bw_hz": 1e6}, tone())
        for frames in (configure, transmit, transmit):
            assert proto.decode_reply(server.handle(frames)).ok
        assert spy.transmits_reaching_radio == 1 and server.stats.replayed_from_cache == 1


def test_unreachable_server_raises_disconnected_after_bounded_retries():
    port = free_port()
    with pytest.raises(RadioDisconnected, match=r"no answer from tcp://127.0.0.1:\d+ to hello after 3 attempts"):
        RemoteRadio("r0", f"tcp://127.0.0.1:{port}", insecure=True, timeout_s=0.2, retries=2, heartbeat_s=0)


def test_server_restart_reapplies_settings_and_the_cyclic_transmission():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    first = sim_spy(seed=5)
    server = served(first, endpoint)
    server.__enter__()
    remote = insecure_client(endpoint, timeout_s=1.0, retries=8)
    try:
        remote.configure(**SETTINGS)
        remote.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
        remote.receive(1920)
        server.__exit__(None, None, None)  # the server goes away ...
        assert not first.transmitting  # ... and stops transmitting when it does
        second = sim_spy(seed=5)  # ... and a fresh one, with default settings, comes back on the same port
        assert second.settings.lo_hz != SETTINGS["lo_hz"]
        restarted = served(second, endpoint)
        timer = threading.Timer(0.3, restarted.__enter__)
        timer.start()  # while the client is already waiting for its answer
        try:
            samples, meta = remote.receive(1920)
        finally:
            timer.join()
        assert meta.lo_hz == SETTINGS["lo_hz"] and meta.rate_sps == SETTINGS["rate_sps"]
        assert second.settings == RadioSettings(**SETTINGS)
        assert second.transmitting and second.transmits_reaching_radio == 1
        assert meta.extra["transmitters_heard"] == 1
        assert remote.reconnects >= 1 and remote.transmitting
        remote.close()
        assert not second.transmitting
    finally:
        remote.close()
        server.__exit__(None, None, None)
        restarted.__exit__(None, None, None)


def test_a_silent_clients_cyclic_transmission_is_stopped():
    spy = sim_spy()
    with served(spy, client_timeout_s=0.3) as server:
        remote = insecure_client(server.endpoint, heartbeat_s=0)
        remote.configure(**SETTINGS)
        remote.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
        assert wait_until(lambda: server.stats.transmissions_stopped_for_silence == 1)
        assert not spy.transmitting
        remote.close()


def test_heartbeats_are_answered_and_keep_the_client_known():
    spy = sim_spy()
    with served(spy) as server:
        remote = insecure_client(server.endpoint, heartbeat_s=0.05)
        assert wait_until(lambda: remote._heartbeat.answered >= 3)
        assert remote.connected
        remote.close()
        assert not remote._heartbeat._thread.is_alive()


def test_closed_remote_radio_raises_disconnected_and_close_is_idempotent():
    with served(sim_spy()) as server:
        remote = insecure_client(server.endpoint)
        remote.close()
        remote.close()
        with pytest.raises(RadioDisconnected, match="closed"):
            remote.receive(16)


def test_plaintext_to_a_non_loopback_address_is_refused():
    with pytest.raises(RadioConfigError, match="loopback only"):
        RemoteRadio("r0", "tcp://192.168.1.2:5555", insecure=True)
    with pytest.raises(RadioConfigError, match="CurveZMQ needs server_key"):
        RemoteRadio("r0", "tcp://192.168.1.2:5555")
