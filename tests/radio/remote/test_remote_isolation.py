"""Clients of one server cannot reach each other's state, and nothing a client does holds up the safety watchdog.

- Per-client state (reply cache, last time heard, transmission owner) belongs to (authenticated key, declared id):
  a client declaring another key's client id and request id gets no cached reply of it and cannot keep its
  transmission alive.
- A flood of fresh declared ids keeps the server's tables bounded, and never costs the transmitting client its
  state.
- A receive that waits for its samples does not stop the loop: a silent client's cyclic transmission is stopped
  while the receive is still running.
- Revoking a key on a running server refuses its next request and its next handshake.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _remote_testlib import KeySet, SpyRadio, insecure_client, ism_guard, served, sim_spy, wait_until
from radio import RadioConfigError, RadioDisconnected, RadioSettings
from radio.remote import RadioServer
from radio.remote import protocol as proto
from radio.remote.client import close_dealer, open_dealer
from radio.remote.keys import fingerprint, revoke_client
from radio.remote.server import MAX_CLIENTS, MAX_IDS_PER_KEY
from radio.sim import SimulatedAir

SETTINGS = dict(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, tx_gain_db=-10.0, rx_gain_db=20.0)
TX_ARGS = {"num_samples": 480, "cyclic": True, "occupied_bw_hz": 1e6}


def tone(n: int = 480, amp: float = 0.3) -> np.ndarray:
    return (amp * np.exp(2j * np.pi * 0.1 * np.arange(n))).astype(np.complex64)


class RawClient:
    """A DEALER that sends hand-made requests (any declared client id and request id) and reads the replies."""

    def __init__(self, endpoint: str, server_key: bytes | None = None, keypair=None):
        self.sock, self.monitor = open_dealer(endpoint, server_key, keypair)

    def send(self, request_id: int, op: str, client: str, session: str | None, args: dict,
             samples: np.ndarray | None = None) -> None:
        self.sock.send_multipart(proto.encode_request(request_id, op, client, session, args, samples))

    def reply(self, expect_samples: int | None = None) -> proto.Reply:
        assert self.sock.poll(10_000), "no answer within 10 s"  # a bound against hanging, not a timing check
        return proto.decode_reply(self.sock.recv_multipart(), expect_samples)

    def call(self, request_id: int, op: str, client: str, session: str | None, args: dict,
             expect_samples: int | None = None) -> proto.Reply:
        self.send(request_id, op, client, session, args)
        return self.reply(expect_samples)

    def close(self) -> None:
        close_dealer(self.sock, self.monitor)


@pytest.fixture()
def keyset(tmp_path) -> KeySet:
    return KeySet(tmp_path)


def test_another_key_declaring_a_clients_id_gets_none_of_its_state(keyset):
    spy = sim_spy()
    with served(spy, keys=keyset.server, client_timeout_s=0.5) as server:
        a = keyset.radio(server.endpoint, "a", heartbeat_s=0)
        a.configure(**SETTINGS)
        a.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)
        a_samples, _ = a.receive(1920)
        a_last_id = next(a._ids) - 1  # the id of A's receive, whose reply the server keeps for A's retries
        b = RawClient(server.endpoint, keyset.server.keypair.public, keyset.other)
        try:
            session = b.call(1, "hello", a.client_id, None, {}).session
            # B sends A's last request id, then earlier ones, under A's declared id: each runs afresh for B.
            for request_id in range(a_last_id, 0, -1):
                reply = b.call(request_id, "receive", a.client_id, session, {"num_samples": 1920, "timeout_s": 1.0},
                               expect_samples=1920)
                assert reply.ok and not np.array_equal(reply.samples, a_samples)
            assert server.stats.replayed_from_cache == 0
            assert sorted(server.tracked_clients.values()) == [1, 1]  # (A's key, id) and (B's key, the same id)

            # A goes silent; B keeps pinging under A's declared id. A's transmission is stopped all the same.
            pongs = 0

            def b_pings_then_checks() -> bool:
                nonlocal pongs
                pongs += b.call(10_000 + pongs, "ping", a.client_id, None, {}).ok
                return server.stats.transmissions_stopped_for_silence == 1

            assert wait_until(b_pings_then_checks, limit_s=15.0)
            assert pongs >= 1 and not spy.transmitting
        finally:
            b.close()
            a.close()
    assert spy.transmits_reaching_radio == 1


def test_one_key_running_two_controllers_keeps_them_apart(keyset):
    spy = sim_spy()
    with served(spy, keys=keyset.server) as server:
        first, second = keyset.radio(server.endpoint, "r1"), keyset.radio(server.endpoint, "r2")
        try:
            for r in (first, second):
                r.configure(**SETTINGS)
                assert r.receive(480).samples.size == 480
            # Both count request ids from 1 under one key: their replies must not be confused.
            assert server.stats.replayed_from_cache == 0 and server.stats.receives == 2
            assert list(server.tracked_clients.values()) == [2]
        finally:
            first.close()
            second.close()


def test_a_flood_of_fresh_client_ids_keeps_the_tables_bounded():
    spy = sim_spy()
    server = RadioServer(spy, "tcp://127.0.0.1:0", insecure=True)  # not bound: requests go through handle() here
    settings = RadioSettings(**SETTINGS).as_dict()
    owner_key = "key-of-the-owner"
    server.handle(proto.encode_request(1, "configure", "owner", server.session, {"settings": settings}), owner_key)
    transmit = proto.encode_request(2, "transmit", "owner", server.session, TX_ARGS, tone())
    assert proto.decode_reply(server.handle(transmit, owner_key)).ok and spy.transmitting

    # 10,000 fresh ids from the owner's own key, then 10,000 spread over 1,000 other keys.
    for i in range(10_000):
        op = "configure" if i % 2 else "ping"
        args = {"settings": settings} if op == "configure" else {}
        assert proto.decode_reply(server.handle(proto.encode_request(1, op, f"id{i}", server.session, args),
                                                owner_key)).ok
    assert server.tracked_clients == {owner_key: MAX_IDS_PER_KEY}
    for i in range(10_000):
        server.handle(proto.encode_request(1, "ping", f"id{i}", None, {}), f"key{i % 1000}")
        per_key = server.tracked_clients
        assert sum(per_key.values()) <= MAX_CLIENTS and max(per_key.values()) <= MAX_IDS_PER_KEY
    assert server.stats.forgotten_clients >= 20_000 - MAX_CLIENTS

    # The transmitting client kept its state through both floods: its retry is answered from its reply slot.
    assert server.tracked_clients.get(owner_key) == 1
    assert proto.decode_reply(server.handle(transmit, owner_key)).ok
    assert server.stats.replayed_from_cache == 1 and spy.transmits_reaching_radio == 1 and spy.transmitting


class BlockingReceiveRadio(SpyRadio):
    """A simulated radio whose receive waits (up to ``block_s``) until released, as a receive waiting for samples
    that are slow to come; records whether a transmission was stopped while a receive was running."""

    def __init__(self, block_s: float):
        super().__init__(SimulatedAir(seed=3).radio("sim0", ism_guard()))
        self.block_s = block_s
        self.receiving = threading.Event()
        self.release = threading.Event()
        self.stops_during_receive = 0

    def _receive(self, num_samples: int, timeout_s: float):
        self.receiving.set()
        try:
            self.release.wait(self.block_s)
            return super()._receive(num_samples, timeout_s)
        finally:
            self.receiving.clear()

    def _stop_transmit(self) -> None:
        if self.receiving.is_set():
            self.stops_during_receive += 1
        super()._stop_transmit()


@pytest.mark.timeout(60)
def test_a_silent_transmission_is_stopped_while_a_long_receive_runs():
    radio = BlockingReceiveRadio(block_s=30.0)
    with served(radio, client_timeout_s=0.5) as server:
        b = insecure_client(server.endpoint, "b", heartbeat_s=0)
        a = RawClient(server.endpoint)
        try:
            b.configure(**SETTINGS)
            b.transmit(tone(), cyclic=True, occupied_bw_hz=1e6)  # then B goes silent
            session = a.call(1, "hello", "a", None, {}).session
            a.send(2, "receive", "a", session, {"num_samples": 64, "timeout_s": 60.0})
            assert radio.receiving.wait(10.0)
            a.send(3, "configure", "a", session, {"settings": RadioSettings(**SETTINGS).as_dict()})
            try:
                assert wait_until(lambda: server.stats.transmissions_stopped_for_silence == 1, limit_s=20.0)
                assert radio.stops_during_receive == 1 and radio.receiving.is_set() and not radio.transmitting
                # The loop also keeps accepting connections and answering while the receive runs.
                with insecure_client(server.endpoint, "c") as c:
                    assert c.ping() > 0
            finally:
                radio.release.set()
            first, second = a.reply(expect_samples=64), a.reply()
            # The configure that arrived during the receive waited for it, then ran.
            assert (first.request_id, second.request_id) == (2, 3) and first.ok and second.ok
            assert first.samples.size == 64 and server.stats.receives == 1
        finally:
            radio.release.set()
            a.close()
            b.close()


def test_a_revoked_key_is_refused_by_the_running_server(keyset):
    spy = sim_spy()
    with served(spy, keys=keyset.server) as server:
        other = keyset.radio(server.endpoint, "other", client_keypair=keyset.other, timeout_s=2.0, retries=0)
        try:
            other.configure(**SETTINGS)
            revoked = revoke_client(keyset.server_dir, "other")
            assert revoked.fingerprint == fingerprint(keyset.other.public)

            def refused() -> bool:
                try:
                    other.ping()
                except RadioConfigError as e:
                    return "not in the server's allow-list any more" in str(e)
                return False

            assert wait_until(refused, limit_s=10.0)
            assert server.stats.revoked_requests >= 1
        finally:
            other.close()
        with pytest.raises(RadioDisconnected, match="refused this client"):
            keyset.radio(server.endpoint, "again", client_keypair=keyset.other, timeout_s=2.0, retries=0)
        with keyset.radio(server.endpoint, "still") as still:  # the other authorized key is untouched
            still.configure(**SETTINGS)
