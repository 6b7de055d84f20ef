"""Serve one radio (any backend) over ZeroMQ: the server side of ``testbed serve``.

One thread owns the radio and every socket: a ROUTER socket for requests, the ZAP handler that accepts or refuses
clients, and a monitor of the ROUTER that logs failed handshakes. Requests run one at a time, in arrival order.

Safety: every request is schema-checked (:mod:`radio.remote.protocol`) before anything reaches the radio, and the
radio keeps its own :class:`~radio.guard.TxGuard` (the server's config), so a client cannot transmit anything the
server's guard refuses, whatever its own guard says. A cyclic transmission whose client has gone silent (no request
and no heartbeat for ``client_timeout_s``) is stopped.

Security: CurveZMQ with the server's keypair; a client is accepted only when its public key is in the allow-list
(ZAP). Plaintext (``insecure=True``) is allowed only on a loopback address.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from radio.base import Radio
from radio.errors import RadioConfigError, RadioError, RadioFault
from radio.remote import protocol as proto
from radio.remote.keys import ServerKeys

log = logging.getLogger("radio.remote.server")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"testbed"
_ENDPOINT = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+|\*):(?P<port>\d{1,5}|\*)$")
_REPLY_CACHE_CLIENTS = 256
_REPLY_CACHE_BYTES = 256 * 1024 * 1024
_POLL_MS = 50


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """``tcp://HOST:PORT`` -> (host, port); ``PORT`` may be ``*`` or 0 (any free port). Raise RadioConfigError."""
    m = _ENDPOINT.match(endpoint) if isinstance(endpoint, str) else None
    if m is None:
        raise RadioConfigError(f"endpoint {endpoint!r}; allowed: tcp://HOST:PORT, e.g. tcp://192.168.1.20:5555")
    port = m["port"]
    if port != "*" and not 0 <= int(port) <= 65535:
        raise RadioConfigError(f"endpoint {endpoint!r}: port {port}; allowed: 0 to 65535 (0 or *: any free port)")
    return m["host"], port


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal, ``[::1]`` or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerStats:
    """Counters of one server run (read from any thread; written by the server thread only)."""

    requests: int = 0
    malformed: int = 0
    errors: int = 0
    replayed_from_cache: int = 0
    transmits: int = 0
    receives: int = 0
    refused_clients: int = 0
    accepted_handshakes: int = 0
    stale_sessions: int = 0
    transmissions_stopped_for_silence: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class RadioServer:
    """Serve ``radio`` on ``bind`` (``tcp://HOST:PORT``).

    ``keys``: the server keypair and client allow-list (CurveZMQ); required unless ``insecure`` (plaintext, loopback
    only). ``max_samples`` caps one transmit or receive (at most :data:`~radio.remote.protocol.
    MAX_SAMPLES_PER_MESSAGE`). ``client_timeout_s``: silence after which a client's cyclic transmission is
    stopped. The server does not close the radio; whoever opened it does.

    Use :meth:`start` (background thread) and :meth:`stop`, or :meth:`serve_forever` in the calling thread.
    """

    def __init__(self, radio: Radio, bind: str, *, keys: ServerKeys | None = None, insecure: bool = False,
                 max_samples: int = proto.MAX_SAMPLES_PER_MESSAGE, client_timeout_s: float = 10.0):
        host, _port = parse_endpoint(bind)
        if insecure and keys is not None:
            raise RadioConfigError("both keys and insecure given; allowed: CurveZMQ keys, or insecure on loopback")
        if insecure and not is_loopback(host):
            raise RadioConfigError(f"plaintext (insecure) serving on {bind!r} is refused; allowed: a loopback "
                                   f"address (tcp://127.0.0.1:PORT), or CurveZMQ keys (--keys DIR)")
        if not insecure and keys is None:
            raise RadioConfigError("no server keys; allowed: a key directory (`testbed keys generate --name server`),"
                                   " or insecure on a loopback address")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or \
                not 1 <= max_samples <= proto.MAX_SAMPLES_PER_MESSAGE:
            raise RadioConfigError(f"max_samples = {max_samples!r}; allowed 1 to {proto.MAX_SAMPLES_PER_MESSAGE}")
        if not (isinstance(client_timeout_s, (int, float)) and client_timeout_s > 0):
            raise RadioConfigError(f"client_timeout_s = {client_timeout_s!r}; allowed: a positive number of seconds")
        self.radio = radio
        self.bind_endpoint = f"tcp://{host}:*" if _port in ("0", "*") else bind
        self.keys = keys
        self.insecure = insecure
        self.max_samples = min(max_samples, radio.capabilities.max_buffer_samples)
        self.client_timeout_s = float(client_timeout_s)
        self.session = secrets.token_hex(8)
        self.stats = ServerStats()
        self.endpoint: str | None = None
        """The bound endpoint (with the real port) once started."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: Any = None
        self._router: Any = None
        self._zap: Any = None
        self._monitor: Any = None
        self._replies: collections.OrderedDict[str, tuple[int, list[bytes]]] = collections.OrderedDict()
        self._cached_bytes = 0
        self._last_seen: dict[str, float] = {}
        self._tx_owner: str | None = None
        self._last_refusal_log = -math.inf
        self._refusals_not_logged = 0

    @property
    def public_key(self) -> str | None:
        """The server's public key (Z85 text) clients put in ``server_key``; None when insecure."""
        return None if self.keys is None else self.keys.keypair.public_text

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def open(self) -> str:
        """Create the sockets and bind; return the bound endpoint. Raises RadioConfigError when binding fails."""
        import zmq

        self._ctx = zmq.Context()
        # The ZAP handler must exist before the first connection arrives, so it is bound first.
        self._zap = self._ctx.socket(zmq.REP)
        self._zap.linger = 0
        self._zap.bind(ZAP_ENDPOINT)
        router = self._ctx.socket(zmq.ROUTER)
        router.linger = 0
        router.setsockopt(zmq.MAXMSGSIZE, proto.MAX_HEADER_BYTES + proto.SAMPLE_BYTES * self.max_samples)
        router.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        router.zap_domain = ZAP_DOMAIN
        if self.keys is not None:
            router.curve_server = True
            router.curve_secretkey = self.keys.keypair.secret
            router.curve_publickey = self.keys.keypair.public
        self._monitor = router.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            router.bind(self.bind_endpoint)
        except zmq.ZMQError as e:
            self._close_sockets(router)
            raise RadioConfigError(f"cannot bind {self.bind_endpoint!r}: {e}; allowed: a free port on an address "
                                   f"of this host") from None
        self._router = router
        self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        log.info("serving %s (%s) on %s, %s", self.radio.name, self.radio.driver, self.endpoint,
                 "plaintext (loopback only)" if self.insecure else f"CurveZMQ, server key {self.public_key}")
        return self.endpoint

    def start(self) -> "RadioServer":
        """Bind (errors raise here) and serve in a background thread."""
        if self._router is None:
            self.open()
        self._thread = threading.Thread(target=self._loop, name=f"radio-server-{self.radio.name}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Bind if needed and serve in this thread until :meth:`stop` (or ``stop`` is set)."""
        if self._router is None:
            self.open()
        if stop is not None:
            self._stop = stop
        self._loop()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving (any cyclic transmission is stopped) and release the sockets. The radio stays open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "RadioServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- the loop ---------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(_POLL_MS))
                if self._monitor in ready:
                    self._drain_monitor()
                if self._zap in ready:
                    self._answer_zap()
                if self._router in ready:
                    # A burst is served before looking at the other sockets again, but bounded so ZAP stays live.
                    for _ in range(64):
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._serve_one(frames)
                self._stop_silent_transmission()
        except Exception:  # noqa: BLE001 - the loop must log why it died rather than vanish silently
            log.exception("server loop for %s stopped by an unexpected error", self.radio.name)
            raise
        finally:
            self._shutdown()

    def _serve_one(self, frames: list[bytes]) -> None:
        import zmq

        if len(frames) < 2:  # a ROUTER message is always [identity, ...]; anything else is dropped
            self.stats.malformed += 1
            return
        identity, body = frames[0], frames[1:]
        reply = self.handle(body)
        try:
            big = len(reply) > 1 and len(reply[1]) >= 65536  # zero-copy pays only for large frames
            self._router.send_multipart([identity, *reply], zmq.NOBLOCK, copy=not big)
        except zmq.ZMQError as e:  # the peer left or is not reading: its reply is dropped, the server goes on
            log.debug("reply to a client dropped: %s", e)

    def handle(self, frames: list[bytes]) -> list[bytes]:
        """Run one request (the frames after the ROUTER identity) and return the reply frames. Never raises."""
        self.stats.requests += 1
        try:
            request = proto.decode_request(frames, self.max_samples)
        except proto.ProtocolError as e:
            self.stats.malformed += 1
            log.debug("malformed request: %s", e)
            return proto.encode_reply(proto.peek_request_id(frames), self.session, error=e)
        except Exception as e:  # noqa: BLE001 - a decoder bug must not take the server down
            self.stats.malformed += 1
            log.warning("request could not be decoded (%s: %s)", type(e).__name__, e)
            return proto.encode_reply(None, self.session,
                                      error=(proto.PROTOCOL_ERROR, f"undecodable request ({type(e).__name__})"))
        self._last_seen[request.client] = time.monotonic()
        if request.op not in proto.SESSION_FREE_OPS and request.session != self.session:
            self.stats.stale_sessions += 1
            return proto.encode_reply(request.request_id, self.session, error=(
                proto.STALE_SESSION, f"session {request.session!r} is not this server's ({self.session}); "
                                     f"send hello and the settings again"))
        if request.op not in proto.SESSION_FREE_OPS:
            cached = self._replies.get(request.client)
            if cached is not None and cached[0] == request.request_id:
                self.stats.replayed_from_cache += 1
                return cached[1]
        try:
            reply = self._run(request)
        except Exception as e:  # noqa: BLE001 - every failure becomes a typed error reply
            self.stats.errors += 1
            if not isinstance(e, RadioError):
                log.warning("%s on %s raised %s: %s", request.op, self.radio.name, type(e).__name__, e)
            reply = proto.encode_reply(request.request_id, self.session, error=e)
        if request.op not in proto.SESSION_FREE_OPS:
            self._cache_reply(request.client, request.request_id, reply)
        return reply

    def _cache_reply(self, client: str, request_id: int, reply: list[bytes]) -> None:
        """Keep each client's last reply (for retries), bounded in clients and bytes; the newest is always kept."""
        old = self._replies.pop(client, None)
        if old is not None:
            self._cached_bytes -= sum(len(f) for f in old[1])
        self._replies[client] = (request_id, reply)
        self._cached_bytes += sum(len(f) for f in reply)
        while len(self._replies) > 1 and (len(self._replies) > _REPLY_CACHE_CLIENTS
                                          or self._cached_bytes > _REPLY_CACHE_BYTES):
            _, (_, dropped) = self._replies.popitem(last=False)
            self._cached_bytes -= sum(len(f) for f in dropped)

    def _run(self, req: proto.Request) -> list[bytes]:
        radio, rid = self.radio, req.request_id
        if req.op == "ping":
            return proto.encode_reply(rid, self.session, result={"time": time.time()})
        if req.op == "hello":
            caps = radio.capabilities
            return proto.encode_reply(rid, self.session, result={
                "protocol": proto.PROTOCOL_VERSION, "identity": radio.identity(),
                "capabilities": proto.capabilities_to_wire(caps), "max_samples": self.max_samples,
                "settings": proto.settings_to_wire(radio.settings), "transmitting": radio.transmitting,
                "client_timeout_s": self.client_timeout_s})
        if req.op == "configure":
            applied = radio.configure(req.args["settings"])
            return proto.encode_reply(rid, self.session, result={"settings": proto.settings_to_wire(applied)})
        if req.op == "transmit":
            assert req.samples is not None
            report = radio.transmit(req.samples.copy(), cyclic=req.args["cyclic"],
                                    occupied_bw_hz=req.args["occupied_bw_hz"])
            self.stats.transmits += 1
            self._tx_owner = req.client if report.cyclic else None
            return proto.encode_reply(rid, self.session, result={
                "samples": report.samples, "clipped": report.clipped, "cyclic": report.cyclic})
        if req.op == "stop_transmit":
            radio.stop_transmit()
            self._tx_owner = None
            return proto.encode_reply(rid, self.session, result={})
        if req.op == "receive":
            n = req.args["num_samples"]
            samples, meta = radio.receive(n, timeout_s=req.args["timeout_s"])
            samples = np.asarray(samples)
            if samples.shape != (n,):
                raise RadioFault(f"{radio.name} returned {samples.shape} samples for a receive of {n}")
            self.stats.receives += 1
            return proto.encode_reply(rid, self.session, result={"meta": proto.metadata_to_wire(meta)},
                                      samples=samples)
        raise proto.ProtocolError(f"op {req.op!r} has no handler")  # decode_request admits only known ops

    def _stop_silent_transmission(self) -> None:
        owner = self._tx_owner
        if owner is None or not self.radio.transmitting:
            return
        silent = time.monotonic() - self._last_seen.get(owner, 0.0)
        if silent > self.client_timeout_s:
            log.warning("client %s silent for %.1f s: stopping its cyclic transmission on %s", owner, silent,
                        self.radio.name)
            try:
                self.radio.stop_transmit()
            except Exception as e:  # noqa: BLE001 - a radio that cannot stop is logged, the server goes on
                log.error("stopping the transmission of %s failed: %s", self.radio.name, e)
            self._tx_owner = None
            self.stats.transmissions_stopped_for_silence += 1

    # ---- authentication ---------------------------------------------------------------------------------------
    def _answer_zap(self) -> None:
        """One ZAP request (RFC 27): accept CURVE clients in the allow-list, NULL clients only when insecure and
        from loopback; refuse and log everything else."""
        import zmq
        from zmq.utils import z85

        try:
            msg = self._zap.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        version, request_id = (msg + [b"", b""])[:2]
        mechanism = msg[5] if len(msg) > 5 else b""
        address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        status, text, user = b"400", b"refused", b""
        if len(msg) < 6 or version != b"1.0":
            log.warning("refused a connection from %s: malformed ZAP request", address)
        elif mechanism == b"CURVE" and self.keys is not None and len(msg) >= 7 and len(msg[6]) == 32:
            key = z85.encode(msg[6])
            name = self.keys.allowed_clients.get(key)
            if name is not None:
                status, text, user = b"200", b"OK", name.encode()
                log.info("accepted client %r at %s", name, address)
            else:
                self._log_refusal(f"refused client at {address}: public key {key.decode()} is not in the allow-list")
        elif mechanism == b"NULL" and self.insecure and is_loopback(address):
            status, text, user = b"200", b"OK", b"loopback"
        else:
            self._log_refusal(f"refused client at {address}: mechanism {mechanism.decode('ascii', 'replace')} is "
                              f"not accepted here ({'plaintext loopback' if self.insecure else 'CURVE'})")
        if status != b"200":
            self.stats.refused_clients += 1
        self._zap.send_multipart([b"1.0", request_id, status, text, user, b""])

    def _drain_monitor(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.stats.accepted_handshakes += 1
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                pass  # already counted and logged with the client's address by the ZAP handler
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self.stats.refused_clients += 1
                self._log_refusal(f"refused a connection on {self.endpoint}: handshake failed "
                                  f"({zmq.Event(kind).name}, code {event['value']:#x}): wrong server key, no key, "
                                  f"a replayed handshake or not this protocol")

    def _log_refusal(self, message: str) -> None:
        """Log a refusal, at most one line a second: a misconfigured client retries often and would flood the log."""
        now = time.monotonic()
        if now - self._last_refusal_log >= 1.0:
            more = f" ({self._refusals_not_logged} more refusals since the last line)" \
                if self._refusals_not_logged else ""
            log.warning("%s%s", message, more)
            self._last_refusal_log, self._refusals_not_logged = now, 0
        else:
            self._refusals_not_logged += 1

    # ---- shutdown ---------------------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        try:
            if self.radio.transmitting:
                self.radio.stop_transmit()
        except Exception as e:  # noqa: BLE001
            log.error("stopping the transmission of %s at shutdown failed: %s", self.radio.name, e)
        self._close_sockets(self._router)
        self._router = None

    def _close_sockets(self, router: Any) -> None:
        if router is not None:
            try:
                router.disable_monitor()
            except Exception:  # noqa: BLE001 - already closed
                pass
        for sock in (self._monitor, router, self._zap):
            if sock is not None:
                sock.close(linger=0)
        self._monitor = self._zap = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None


__all__ = ["RadioServer", "ServerStats", "is_loopback", "parse_endpoint"]
