"""The wire protocol: round trips, and every kind of malformed message refused with a message naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radio import RadioConfigError, RadioOverflow, RadioSettings, RxMetadata, TxGuardRefused
from radio.remote import protocol as proto
from radio.remote.server import is_loopback, parse_endpoint


def header(**over):
    h = {"v": 1, "id": 7, "op": "receive", "client": "c1", "session": "abc",
         "args": {"num_samples": 16, "timeout_s": 1.0}}
    h.update(over)
    return json.dumps(h).encode()


def test_request_round_trip_keeps_samples_bit_exact():
    x = (np.arange(32) * (0.01 + 0.02j)).astype(np.complex64)
    frames = proto.encode_request(5, "transmit", "c1", "s1", {"num_samples": 32, "cyclic": True,
                                                             "occupied_bw_hz": 1e6}, x)
    req = proto.decode_request(frames)
    assert (req.request_id, req.op, req.client, req.session) == (5, "transmit", "c1", "s1")
    assert req.args == {"num_samples": 32, "cyclic": True, "occupied_bw_hz": 1e6}
    assert req.samples.dtype == np.complex64 and np.array_equal(req.samples.view(np.uint64), x.view(np.uint64))


def test_configure_carries_the_full_settings():
    s = RadioSettings(lo_hz=2.44e9, rate_sps=1.92e6, bandwidth_hz=1.5e6, tx_gain_db=-20, rx_gain_db=10)
    req = proto.decode_request(proto.encode_request(1, "configure", "c", None,
                                                    {"settings": proto.settings_to_wire(s)}))
    assert req.args["settings"] == s


@pytest.mark.parametrize("frames, match", [
    ([], "0 frames"),
    ([b"\xff\xfe"], "not a UTF-8 JSON object"),
    ([b"[1,2]"], "JSON list"),
    ([b"[" * 100_000], "allowed at most"),
    ([b"[" * 60_000], "not a UTF-8 JSON object"),  # deep nesting: a RecursionError inside json, refused
    ([header(v=2)], "protocol version v = 2; allowed: 1"),
    ([header(v=True)], "protocol version"),
    ([header(id=-1)], "id = -1"),
    ([header(id=1.5)], "id = 1.5"),
    ([header(op="format_disk")], "op = 'format_disk'; allowed: hello, ping"),
    ([header(client="")], "client = ''"),
    ([header(session=5)], "session = 5"),
    ([header(extra=1)], "allowed exactly"),
    ([header(args={"num_samples": 16})], "args of 'receive'"),
    ([header(args={"num_samples": 0, "timeout_s": 1})], "num_samples = 0; allowed: an integer from 1"),
    ([header(args={"num_samples": True, "timeout_s": 1})], "num_samples = True"),
    ([header(args={"num_samples": 10 ** 9, "timeout_s": 1})], "num_samples = 1000000000"),
    ([header(args={"num_samples": 4, "timeout_s": float("nan")})], "timeout_s = nan; allowed: a finite number"),
    ([header(args={"num_samples": 4, "timeout_s": -1})], "timeout_s = -1.0"),
    ([header(), b"\0" * 8], "with a sample frame"),
    ([header(op="transmit", args={"num_samples": 2, "cyclic": False, "occupied_bw_hz": None})],
     "without its sample frame"),
    ([header(op="transmit", args={"num_samples": 2, "cyclic": False, "occupied_bw_hz": None}), b"\0" * 15],
     "sample frame of 15 bytes; allowed exactly 16"),
    ([header(op="transmit", args={"num_samples": 2, "cyclic": 1, "occupied_bw_hz": None}), b"\0" * 16],
     "cyclic = 1; allowed: true or false"),
    ([header(op="configure", args={"settings": {"lo_hz": 1}})], "missing"),
    ([header(op="configure", args={"settings": {**RadioSettings().as_dict(), "lo_hz": "2.4e9"}})],
     "args.settings.lo_hz = '2.4e9'"),
    ([header(), b"", b""], "3 frames"),
])
def test_malformed_requests_are_refused_naming_the_problem(frames, match):
    with pytest.raises(proto.ProtocolError, match=match):
        proto.decode_request(frames)


def test_error_replies_carry_typed_errors_and_unknown_types_become_faults():
    for exc in (TxGuardRefused("no"), RadioConfigError("bad lo"), RadioOverflow("lost")):
        reply = proto.decode_reply(proto.encode_reply(3, "s", error=exc))
        assert not reply.ok and reply.request_id == 3
        with pytest.raises(type(exc), match=str(exc)):
            reply.raise_error()
    reply = proto.decode_reply(proto.encode_reply(None, "s", error=KeyError("x")))
    assert reply.error_type == "RadioFault" and "server error: KeyError" in reply.error_message
    reply = proto.decode_reply(proto.encode_reply(1, "s", error=("SomethingNew", "?")))
    with pytest.raises(proto.RadioFault):
        reply.raise_error()


def test_receive_reply_metadata_round_trip_and_checks():
    meta = RxMetadata(radio="sim0", lo_hz=2.44e9, rate_sps=1.92e6, gain_db=np.float32(10.0), timestamp_s=1.5,
                      clip_count=np.int64(3), extra={"a": np.arange(3), "b": np.float32(0.5)})
    x = np.ones(4, np.complex64)
    frames = proto.encode_reply(9, "s", result={"meta": proto.metadata_to_wire(meta)}, samples=x)
    reply = proto.decode_reply(frames, expect_samples=4)
    got = proto.metadata_from_wire(reply.result["meta"])
    assert got.clip_count == 3 and got.gain_db == 10.0 and got.extra == {"a": [0, 1, 2], "b": 0.5}
    with pytest.raises(proto.ProtocolError, match="allowed exactly 40"):
        proto.decode_reply(frames, expect_samples=5)
    with pytest.raises(proto.ProtocolError, match="meta.clip_count"):
        proto.metadata_from_wire({**reply.result["meta"], "clip_count": -1})


@pytest.mark.parametrize("endpoint, ok", [("tcp://127.0.0.1:5555", True), ("tcp://[::1]:0", True),
                                          ("tcp://host.lab:*", True), ("udp://1.2.3.4:5", False),
                                          ("tcp://1.2.3.4", False), ("tcp://1.2.3.4:99999", False)])
def test_endpoints_are_checked(endpoint, ok):
    if ok:
        parse_endpoint(endpoint)
    else:
        with pytest.raises(RadioConfigError, match="allowed"):
            parse_endpoint(endpoint)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("[::1]")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("*") and not is_loopback("192.168.1.2")
