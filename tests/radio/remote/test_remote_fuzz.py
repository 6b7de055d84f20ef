"""Fuzzing the server: 10,000 random and malformed messages (plus oversized frames and raw TCP garbage). The
server answers every message with a well-formed reply, never crashes, and never transmits: its guard refuses
every transmission, so any transmit that got through the checks would show on the spy below the server."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import zmq

from _remote_testlib import insecure_client, served, sim_spy
from radio import RadioSettings, TxGuard
from radio.remote import protocol as proto

N_MESSAGES = 10_000
MAX_SAMPLES = 4096
WEIRD = [None, True, False, 0, -1, 1.5, 2 ** 63, 2 ** 64, -(2 ** 70), 1e308, -1e308, float("nan"), float("inf"),
         "", "x" * 1000, "\u0000", "\udfff", [], {}, [1, 2], {"a": {"b": [None]}}, "receive", "1920"]


def _valid_args(rng: np.random.Generator, op: str) -> tuple[dict, np.ndarray | None]:
    if op == "configure":
        s = RadioSettings().as_dict()
        for key in s:
            if rng.random() < 0.3:  # often out of range: the radio must refuse, naming the range
                s[key] = float(rng.choice([-1e12, 0.0, 1e3, 2.44e9, 7e9, 1e12, -100.0, 100.0]))
        return {"settings": s}, None
    if op == "transmit":
        n = int(rng.integers(1, 64))
        x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        if rng.random() < 0.1:
            x[0] = np.nan
        bw = None if rng.random() < 0.5 else float(rng.choice([1e3, 1e6, 1e9, -5.0]))
        return {"num_samples": n, "cyclic": bool(rng.random() < 0.5), "occupied_bw_hz": bw}, x
    if op == "receive":
        return {"num_samples": int(rng.integers(1, MAX_SAMPLES + 1)), "timeout_s": 0.5}, None
    return {}, None


def _valid(rng: np.random.Generator, session: str, request_id: int) -> tuple[dict, np.ndarray | None]:
    op = str(rng.choice(proto.OPS))
    args, samples = _valid_args(rng, op)
    sess = session if rng.random() < 0.85 else rng.choice([None, "0" * 16])
    return {"v": 1, "id": request_id, "op": op, "client": f"fuzz{rng.integers(4)}", "session": sess,
            "args": args}, samples


def _frames(header: dict, samples: np.ndarray | None) -> list[bytes]:
    frames = [json.dumps(header).encode()]
    if samples is not None:
        frames.append(samples.astype("<c8").tobytes())
    return frames


SPECIAL = [
    [b"[" * 50_000],
    [b"{" * 30_000],
    [b'"' + b"a" * 65_000 + b'"'],
    [b"\xef\xbb\xbf" + json.dumps({"v": 1}).encode()],
    [b'{"v":1,"v":2,"id":1,"op":"ping","client":"c","session":null,"args":{}}'],
    [b'{"v":1,"id":' + b"9" * 5000 + b',"op":"ping","client":"c","session":null,"args":{}}'],
    [b'{"v":1,"id":1,"op":"ping","client":"c","session":null,"args":{}}', b""],
    [b""],
    [b"null"],
    [b'{"v":NaN}'],
]


def fuzz_messages(seed: int, session: str, count: int):
    """``count`` messages (lists of frames): valid ones, mutated ones and random bytes, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = rng.random()
        header, samples = _valid(rng, session, i)
        if kind < 0.15:  # random frames
            yield [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 4)))]
        elif kind < 0.45:  # one field replaced, removed or added, anywhere in the header
            target = header if rng.random() < 0.6 or not header["args"] else header["args"]
            if "settings" in target and rng.random() < 0.5:
                target = target["settings"]
            action = rng.random()
            key = str(rng.choice(list(target))) if target else "k"
            if action < 0.6:
                target[key] = WEIRD[int(rng.integers(len(WEIRD)))]
            elif action < 0.8:
                target.pop(key, None)
            else:
                target[f"extra{rng.integers(9)}"] = WEIRD[int(rng.integers(len(WEIRD)))]
            yield _frames(header, samples)
        elif kind < 0.65:  # bytes of a valid header flipped, cut or repeated
            frames = _frames(header, samples)
            raw = bytearray(frames[0])
            action = rng.random()
            if action < 0.5:
                for _ in range(int(rng.integers(1, 6))):
                    raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
            elif action < 0.8:
                raw = raw[:int(rng.integers(len(raw)))]
            else:
                a = int(rng.integers(len(raw)))
                raw = raw[:a] + raw[a:a + int(rng.integers(1, 40))] * 3 + raw[a:]
            yield [bytes(raw), *frames[1:]]
        elif kind < 0.75:  # frames added, removed, resized or reordered
            frames = _frames(header, samples)
            action = rng.random()
            if action < 0.3:
                frames.append(rng.bytes(int(rng.integers(0, 64))))
            elif action < 0.5 and len(frames) > 1:
                frames.pop()
            elif action < 0.8 and len(frames) > 1:
                frames[1] = frames[1][:-int(rng.integers(1, 8))]
            else:
                frames.reverse()
            yield frames
        elif kind < 0.77:
            yield SPECIAL[int(rng.integers(len(SPECIAL)))]
        else:  # schema-valid: the radio and its guard get to decide
            yield _frames(header, samples)


@pytest.mark.timeout(300)
def test_ten_thousand_random_and_malformed_messages_never_crash_or_transmit():
    spy = sim_spy(guard=TxGuard.deny_all())
    with served(spy, max_samples=MAX_SAMPLES) as server:
        ctx = zmq.Context.instance()
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(server.endpoint)
        outcomes: dict[str, int] = {}
        try:
            for frames in fuzz_messages(seed=20240611, session=server.session, count=N_MESSAGES):
                dealer.send_multipart(frames)
                assert dealer.poll(10_000), f"no answer to {frames[0][:120]!r}"  # a bound, not a timing check
                answer = dealer.recv_multipart()
                n = len(answer[1]) // 8 if len(answer) == 2 else None  # only a served receive carries samples
                reply = proto.decode_reply(answer, expect_samples=n)  # raises unless the reply is well-formed
                key = "ok" if reply.ok else reply.error_type
                outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            dealer.close()
        assert sum(outcomes.values()) == N_MESSAGES
        assert server.running and server.stats.requests == N_MESSAGES
        # Every kind of outcome was exercised: the guard refused real transmit attempts, the radio refused bad
        # settings, the protocol refused malformed messages, and valid requests were served.
        assert outcomes.get("TxGuardRefused", 0) > 50, outcomes
        assert outcomes.get("RadioConfigError", 0) > 50, outcomes
        assert outcomes.get("ProtocolError", 0) > 5000, outcomes
        assert outcomes.get("StaleSession", 0) > 50 and outcomes.get("ok", 0) > 500, outcomes
        assert spy.transmits_reaching_radio == 0 and not spy.transmitting and not spy.inner.transmitting

        # Still healthy afterwards: a proper client is served.
        with insecure_client(server.endpoint) as remote:
            remote.configure(lo_hz=2.44e9, rate_sps=1.92e6)
            samples, meta = remote.receive(MAX_SAMPLES)
            assert samples.size == MAX_SAMPLES and np.all(np.isfinite(samples))
    assert spy.transmits_reaching_radio == 0


def test_oversized_frames_and_raw_tcp_garbage_leave_the_server_serving():
    spy = sim_spy(guard=TxGuard.deny_all())
    rng = np.random.default_rng(7)
    with served(spy, max_samples=MAX_SAMPLES) as server:
        port = int(server.endpoint.rsplit(":", 1)[1])
        ctx = zmq.Context.instance()
        big = ctx.socket(zmq.DEALER)
        big.linger = 0
        big.connect(server.endpoint)
        header = {"v": 1, "id": 1, "op": "transmit", "client": "big", "session": server.session,
                  "args": {"num_samples": 1 << 16, "cyclic": True, "occupied_bw_hz": None}}
        big.send_multipart([json.dumps(header).encode(), b"\0" * (8 << 16)])  # over MAXMSGSIZE: disconnected
        assert not big.poll(500)
        big.close()
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as raw:
                raw.sendall(rng.bytes(int(rng.integers(1, 2000))))
        with insecure_client(server.endpoint) as remote:
            assert remote.receive(64).samples.size == 64
        assert server.running
    assert spy.transmits_reaching_radio == 0
