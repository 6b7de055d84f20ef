"""The wire protocol between a remote radio (client) and ``testbed serve`` (server), version 1.

A message is a ZeroMQ multipart message: one header frame (UTF-8 JSON object, at most
:data:`MAX_HEADER_BYTES`) and, for ``transmit`` requests and ``receive`` replies, one raw sample frame
(little-endian complex64, 8 bytes per sample, at most :data:`MAX_SAMPLES_PER_MESSAGE` samples). Nothing else is
accepted: every header is checked against the schema of its operation before anything reaches the radio.

Request header::

    {"v": 1, "id": 17, "op": "receive", "client": "3f2a...", "session": "9c1e..." | null,
     "args": {"num_samples": 1920, "timeout_s": 5.0}}

Reply header::

    {"v": 1, "id": 17, "ok": true, "session": "9c1e...", "result": {...}}
    {"v": 1, "id": 17, "ok": false, "session": "9c1e...", "error": {"type": "TxGuardRefused", "message": "..."}}

``session`` identifies one run of the server. A request carrying another session than the server's (the server
restarted and lost its settings) is answered with the ``StaleSession`` error, so the client re-applies its
settings before the request runs: configuration is idempotent (always the full :class:`RadioSettings`).
``id`` grows per client; a server answers a repeated ``(client, id)`` from its reply cache without running the
operation again, so a retry after a lost reply never transmits twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from radio.base import Capabilities, RadioSettings, Range, RxMetadata
from radio.errors import (RadioConfigError, RadioDisconnected, RadioError, RadioFault, RadioOverflow,
                          RadioTimeout, RadioUnderflow, RecordingError, TxGuardRefused)

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
"""Largest header frame accepted (bytes)."""
SAMPLE_BYTES = 8
"""Bytes per complex64 sample on the wire (I and Q as little-endian float32)."""
MAX_SAMPLES_PER_MESSAGE = 1 << 22
"""Largest sample frame (4 Mi samples, 32 MiB); larger buffers are refused with RadioConfigError."""
MAX_MESSAGE_BYTES = MAX_HEADER_BYTES + SAMPLE_BYTES * MAX_SAMPLES_PER_MESSAGE
"""Largest frame either side accepts (ZeroMQ ``MAXMSGSIZE``): a peer sending more is disconnected."""
MAX_REQUEST_ID = 2 ** 63 - 1
MAX_TIMEOUT_S = 3600.0

WIRE_DTYPE = np.dtype("<c8")

OPS = ("hello", "ping", "configure", "transmit", "stop_transmit", "receive")
"""Operations of protocol version 1. ``hello`` and ``ping`` work with any session; the others need the server's."""

SESSION_FREE_OPS = frozenset({"hello", "ping"})

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SESSION = re.compile(r"^[A-Za-z0-9]{1,64}$")

STALE_SESSION = "StaleSession"
"""Error type: the request's session is not the server's; re-send ``hello`` and the settings."""
PROTOCOL_ERROR = "ProtocolError"
"""Error type: the message does not follow this protocol."""

ERROR_TYPES: dict[str, type[RadioError]] = {
    "RadioConfigError": RadioConfigError,
    "TxGuardRefused": TxGuardRefused,
    "RadioTimeout": RadioTimeout,
    "RadioDisconnected": RadioDisconnected,
    "RadioOverflow": RadioOverflow,
    "RadioUnderflow": RadioUnderflow,
    "RecordingError": RecordingError,
    "RadioFault": RadioFault,
}
"""Typed errors that cross the wire by name; anything else arrives as RadioFault."""


class ProtocolError(RadioFault):
    """A message that does not follow the protocol (malformed, oversized, wrong version, bad schema)."""


@dataclass(frozen=True)
class Request:
    """One decoded, schema-checked request. ``samples`` is complex64 ``[num_samples]`` for ``transmit``."""

    request_id: int
    op: str
    client: str
    session: str | None
    args: dict[str, Any] = field(default_factory=dict)
    samples: np.ndarray | None = None


@dataclass(frozen=True)
class Reply:
    """One decoded reply. ``samples`` is complex64 ``[n]`` for ``receive``; ``error_type`` is set when not ok."""

    request_id: int | None
    ok: bool
    session: str | None
    result: dict[str, Any] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str = ""
    samples: np.ndarray | None = None

    def raise_error(self) -> None:
        """Raise the typed exception this error reply carries (RadioFault for unknown types)."""
        cls = ERROR_TYPES.get(self.error_type or "", RadioFault)
        if self.error_type == PROTOCOL_ERROR:
            raise ProtocolError(f"the server refused the request as malformed: {self.error_message}")
        raise cls(self.error_message)


# ---- schema ---------------------------------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_number(what: str, v: Any) -> float:
    if not _is_number(v) or not math.isfinite(float(v)):
        raise ProtocolError(f"{what} = {_short(v)}; allowed: a finite number")
    return float(v)


def _count(what: str, v: Any, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= high:
        raise ProtocolError(f"{what} = {_short(v)}; allowed: an integer from 1 to {high}")
    return int(v)


def _short(v: Any, limit: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(RadioSettings))


def settings_to_wire(settings: RadioSettings) -> dict[str, Any]:
    """The full settings as a JSON object (every field, so applying it twice is the same as once)."""
    return settings.as_dict()


def settings_from_wire(value: Any) -> RadioSettings:
    """Check a wire settings object (all six fields, numbers; ``rx_lo_hz`` may be null) -> RadioSettings.

    Ranges are not checked here: the served radio validates against its own capabilities."""
    if not isinstance(value, dict):
        raise ProtocolError(f"args.settings = {_short(value)}; allowed: an object with {', '.join(SETTINGS_FIELDS)}")
    if set(value) != set(SETTINGS_FIELDS):
        missing, extra = set(SETTINGS_FIELDS) - set(value), set(value) - set(SETTINGS_FIELDS)
        raise ProtocolError(f"args.settings: missing {sorted(missing)}, unknown {sorted(extra)}; "
                            f"allowed exactly: {', '.join(SETTINGS_FIELDS)}")
    out = {}
    for key in SETTINGS_FIELDS:
        v = value[key]
        if key == "rx_lo_hz" and v is None:
            out[key] = None
        else:
            out[key] = _finite_number(f"args.settings.{key}", v)
    return RadioSettings(**out)


def _check_args(op: str, args: dict[str, Any], max_samples: int) -> dict[str, Any]:
    """Schema of each operation's ``args``: exact key sets, types and ranges."""
    allowed: dict[str, tuple[str, ...]] = {
        "hello": (), "ping": (), "stop_transmit": (), "configure": ("settings",),
        "transmit": ("num_samples", "cyclic", "occupied_bw_hz"), "receive": ("num_samples", "timeout_s"),
    }
    keys = allowed[op]
    if set(args) != set(keys):
        raise ProtocolError(f"args of {op!r} = {_short(sorted(args))}; allowed exactly: {list(keys)}")
    if op == "configure":
        return {"settings": settings_from_wire(args["settings"])}
    if op == "transmit":
        cyclic = args["cyclic"]
        if not isinstance(cyclic, bool):
            raise ProtocolError(f"args.cyclic = {_short(cyclic)}; allowed: true or false")
        bw = args["occupied_bw_hz"]
        if bw is not None:
            bw = _finite_number("args.occupied_bw_hz", bw)
            if bw <= 0:
                raise ProtocolError(f"args.occupied_bw_hz = {bw!r}; allowed: a positive number of Hz or null")
        return {"num_samples": _count("args.num_samples", args["num_samples"], max_samples),
                "cyclic": cyclic, "occupied_bw_hz": bw}
    if op == "receive":
        timeout = _finite_number("args.timeout_s", args["timeout_s"])
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise ProtocolError(f"args.timeout_s = {timeout!r}; allowed: 0 < value <= {MAX_TIMEOUT_S:g} s")
        return {"num_samples": _count("args.num_samples", args["num_samples"], max_samples), "timeout_s": timeout}
    return {}


def _parse_header(frame: bytes, what: str) -> dict[str, Any]:
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError(f"{what} header of {len(frame)} bytes; allowed at most {MAX_HEADER_BYTES}")
    try:
        header = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"{what} header is not a UTF-8 JSON object ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"{what} header is a JSON {type(header).__name__}; allowed: a JSON object")
    version = header.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(f"protocol version v = {_short(version)}; allowed: {PROTOCOL_VERSION}")
    return header


def _samples_from_frame(frame: bytes, num_samples: int, what: str) -> np.ndarray:
    if len(frame) != SAMPLE_BYTES * num_samples:
        raise ProtocolError(f"{what} sample frame of {len(frame)} bytes; allowed exactly "
                            f"{SAMPLE_BYTES * num_samples} ({num_samples} complex64 samples)")
    return np.frombuffer(frame, dtype=WIRE_DTYPE).astype(np.complex64, copy=False)


def peek_request_id(frames: list[bytes]) -> int | None:
    """The request id of a possibly malformed request, when one can be read (so its error reply can name it)."""
    try:
        if not frames or len(frames[0]) > MAX_HEADER_BYTES:
            return None
        header = json.loads(frames[0].decode("utf-8"))
        rid = header.get("id") if isinstance(header, dict) else None
        return rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= MAX_REQUEST_ID else None
    except Exception:  # noqa: BLE001 - anything unreadable simply has no id
        return None


def decode_request(frames: list[bytes], max_samples: int = MAX_SAMPLES_PER_MESSAGE) -> Request:
    """Check one request against the protocol; raise ProtocolError naming the first problem found.

    ``frames``: the multipart message without the ROUTER identity. ``max_samples`` caps ``num_samples``."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(f"request of {len(frames)} frames; allowed: a header and at most one sample frame")
    header = _parse_header(frames[0], "request")
    known = {"v", "id", "op", "client", "session", "args"}
    if set(header) != known:
        raise ProtocolError(f"request header keys {_short(sorted(header))}; allowed exactly {sorted(known)}")
    rid = header["id"]
    if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= MAX_REQUEST_ID:
        raise ProtocolError(f"id = {_short(rid)}; allowed: an integer from 0 to {MAX_REQUEST_ID}")
    op = header["op"]
    if op not in OPS:
        raise ProtocolError(f"op = {_short(op)}; allowed: {', '.join(OPS)}")
    client = header["client"]
    if not isinstance(client, str) or not _CLIENT_ID.match(client):
        raise ProtocolError(f"client = {_short(client)}; allowed: 1 to 64 of A-Z a-z 0-9 _ . : -")
    session = header["session"]
    if session is not None and (not isinstance(session, str) or not _SESSION.match(session)):
        raise ProtocolError(f"session = {_short(session)}; allowed: null or 1 to 64 letters and digits")
    args = header["args"]
    if not isinstance(args, dict):
        raise ProtocolError(f"args = {_short(args)}; allowed: a JSON object")
    checked = _check_args(op, args, max_samples)
    samples = None
    if op == "transmit":
        if len(frames) != 2:
            raise ProtocolError("transmit without its sample frame; allowed: a header and one sample frame")
        samples = _samples_from_frame(frames[1], checked["num_samples"], "transmit")
    elif len(frames) != 1:
        raise ProtocolError(f"{op!r} with a sample frame; allowed: the header alone")
    return Request(rid, op, client, session, checked, samples)


def encode_request(request_id: int, op: str, client: str, session: str | None, args: Mapping[str, Any],
                   samples: np.ndarray | None = None) -> list[bytes]:
    """Frames of one request. ``samples`` (complex64 ``[n]``) only with ``transmit``."""
    header = {"v": PROTOCOL_VERSION, "id": int(request_id), "op": op, "client": client, "session": session,
              "args": dict(args)}
    frames = [json.dumps(header, separators=(",", ":")).encode()]
    if samples is not None:
        frames.append(np.ascontiguousarray(samples, dtype=WIRE_DTYPE).tobytes())
    return frames


def _json_default(obj: Any) -> Any:
    """What ``json`` cannot encode itself: numpy scalars and arrays as plain values, anything else as its string
    (metadata ``extra`` is advisory, it must never make a reply unencodable)."""
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray) and obj.size <= 1024:
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    return str(obj)


def _dumps(header: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(header, separators=(",", ":"), default=_json_default).encode()
    except (TypeError, ValueError):  # e.g. non-string keys in metadata: fall back to strings throughout
        return json.dumps(json.loads(json.dumps(header, default=str, skipkeys=True)), separators=(",", ":")).encode()


def encode_reply(request_id: int | None, session: str, *, result: Mapping[str, Any] | None = None,
                 error: BaseException | tuple[str, str] | None = None,
                 samples: np.ndarray | None = None) -> list[bytes]:
    """Frames of one reply: a result (with optional samples, complex64 ``[n]``) or an error.

    ``error`` is an exception (its class name crosses the wire when it is one of :data:`ERROR_TYPES`, else
    RadioFault) or an explicit ``(type, message)`` pair."""
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "session": session}
    if error is None:
        header.update(ok=True, result=dict(result or {}))
    else:
        if isinstance(error, tuple):
            etype, message = error
        elif isinstance(error, ProtocolError):
            etype, message = PROTOCOL_ERROR, str(error)
        else:
            etype = next((name for name, cls in ERROR_TYPES.items() if type(error) is cls), None)
            if etype is None:
                etype = next((name for name, cls in ERROR_TYPES.items() if isinstance(error, cls)), "RadioFault")
            message = str(error) if isinstance(error, RadioError) else f"server error: {type(error).__name__}: {error}"
        header.update(ok=False, error={"type": etype, "message": message[:4000]})
    frames = [_dumps(header)]
    if samples is not None:
        frames.append(np.ascontiguousarray(samples, dtype=WIRE_DTYPE).tobytes())
    return frames


def decode_reply(frames: list[bytes], expect_samples: int | None = None) -> Reply:
    """Check one reply; ``expect_samples`` is the sample count a successful ``receive`` reply must carry."""
    if not 1 <= len(frames) <= 2:
        raise ProtocolError(f"reply of {len(frames)} frames; allowed: a header and at most one sample frame")
    header = _parse_header(frames[0], "reply")
    rid = header.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int)):
        raise ProtocolError(f"reply id = {_short(rid)}; allowed: an integer or null")
    session = header.get("session")
    if session is not None and not isinstance(session, str):
        raise ProtocolError(f"reply session = {_short(session)}; allowed: a string")
    ok = header.get("ok")
    if ok is True:
        result = header.get("result")
        if not isinstance(result, dict):
            raise ProtocolError(f"reply result = {_short(result)}; allowed: a JSON object")
        samples = None
        if expect_samples is not None:
            if len(frames) != 2:
                raise ProtocolError("receive reply without its sample frame")
            samples = _samples_from_frame(frames[1], expect_samples, "reply")
        elif len(frames) != 1:
            raise ProtocolError("reply with an unexpected sample frame")
        return Reply(rid, True, session, result, samples=samples)
    if ok is False:
        err = header.get("error")
        if not (isinstance(err, dict) and isinstance(err.get("type"), str) and isinstance(err.get("message"), str)):
            raise ProtocolError(f"reply error = {_short(err)}; allowed: an object with type and message strings")
        return Reply(rid, False, session, error_type=err["type"], error_message=err["message"])
    raise ProtocolError(f"reply ok = {_short(ok)}; allowed: true or false")


# ---- typed payloads -------------------------------------------------------------------------------------------
def capabilities_to_wire(caps: Capabilities) -> dict[str, Any]:
    return caps.as_dict()


def capabilities_from_wire(value: Any) -> Capabilities:
    """Rebuild Capabilities from a hello result, checking every field's type."""
    if not isinstance(value, dict):
        raise ProtocolError(f"capabilities = {_short(value)}; allowed: an object")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(Capabilities):
        if f.name not in value:
            if f.name in ("lo_hz", "rate_sps", "bandwidth_hz", "tx_gain_db", "rx_gain_db"):
                raise ProtocolError(f"capabilities lack {f.name!r}")
            continue
        v = value[f.name]
        if f.name in ("lo_hz", "rate_sps", "bandwidth_hz", "tx_gain_db", "rx_gain_db"):
            if not isinstance(v, dict) or not all(_is_number(v.get(k)) for k in ("low", "high", "step")):
                raise ProtocolError(f"capabilities.{f.name} = {_short(v)}; allowed: a range object")
            kwargs[f.name] = Range(float(v["low"]), float(v["high"]), float(v["step"]), str(v.get("unit", "")))
        elif f.name in ("dac_bits", "adc_bits", "max_buffer_samples"):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ProtocolError(f"capabilities.{f.name} = {_short(v)}; allowed: a positive integer")
            kwargs[f.name] = v
        else:
            if not isinstance(v, bool):
                raise ProtocolError(f"capabilities.{f.name} = {_short(v)}; allowed: true or false")
            kwargs[f.name] = v
    return Capabilities(**kwargs)


_META_NUMBERS = ("lo_hz", "rate_sps", "gain_db")
_META_OPTIONAL_NUMBERS = ("timestamp_s", "temperature_c")
_META_COUNTS = ("overflow_count", "underflow_count", "clip_count")


_META_FIELDS = tuple(f.name for f in dataclasses.fields(RxMetadata))


def metadata_to_wire(meta: RxMetadata) -> dict[str, Any]:
    # Field by field rather than dataclasses.asdict: asdict deep-copies, which costs more than the receive itself.
    return {name: getattr(meta, name) for name in _META_FIELDS}


def metadata_from_wire(value: Any) -> RxMetadata:
    """Rebuild RxMetadata from a receive result, checking every field's type."""
    if not isinstance(value, dict):
        raise ProtocolError(f"meta = {_short(value)}; allowed: an object")
    checks: dict[str, Callable[[Any], bool]] = {
        "radio": lambda v: isinstance(v, str),
        **{k: _is_number for k in _META_NUMBERS},
        **{k: (lambda v: v is None or _is_number(v)) for k in _META_OPTIONAL_NUMBERS},
        **{k: (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0) for k in _META_COUNTS},
        "extra": lambda v: isinstance(v, dict),
    }
    if set(value) != set(checks):
        raise ProtocolError(f"meta keys {_short(sorted(value))}; allowed exactly {sorted(checks)}")
    for key, ok in checks.items():
        if not ok(value[key]):
            raise ProtocolError(f"meta.{key} = {_short(value[key])} has the wrong type")
    return RxMetadata(**value)


__all__ = [
    "ERROR_TYPES", "MAX_HEADER_BYTES", "MAX_MESSAGE_BYTES", "MAX_SAMPLES_PER_MESSAGE", "OPS", "PROTOCOL_ERROR",
    "PROTOCOL_VERSION", "ProtocolError", "Reply", "Request", "SESSION_FREE_OPS", "STALE_SESSION",
    "capabilities_from_wire", "capabilities_to_wire", "decode_reply", "decode_request", "encode_reply",
    "encode_request", "metadata_from_wire", "metadata_to_wire", "peek_request_id", "settings_from_wire",
    "settings_to_wire",
]
