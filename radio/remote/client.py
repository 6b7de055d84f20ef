"""A radio on another host, reached over ZeroMQ: the ``remote`` driver.

:class:`RemoteRadio` implements the radio contract against ``testbed serve``: the controller uses it exactly like a
local radio. The TX guard is checked here (the controller's config) and again on the server (the server's config).

Transport rules:

- every request waits at most ``timeout_s`` for its answer (plus the radio's own receive timeout); an unanswered
  request is sent again, with the same id, on a fresh connection after an exponential backoff (``retries`` times),
  then :class:`~radio.errors.RadioDisconnected` is raised. The server answers a repeated id from its reply cache,
  so a retried transmission never runs twice;
- a server that restarted answers ``StaleSession``: the client sends hello, re-applies its settings (idempotent:
  always the full settings) and a running cyclic transmission, then repeats the request;
- a heartbeat thread pings the server every ``heartbeat_s`` on its own connection, so the server knows the client
  is alive (it stops the cyclic transmission of a silent client) and :attr:`RemoteRadio.connected` is current;
- server-side faults arrive as the same typed exceptions (RadioConfigError, TxGuardRefused, RadioTimeout,
  RadioDisconnected, RadioOverflow, ...); a refused key raises RadioDisconnected at once, without retries.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Reception
from radio.errors import RadioConfigError, RadioDisconnected
from radio.guard import TxGuard
from radio.remote import protocol as proto
from radio.remote.keys import Keypair, load_secret_keypair, parse_public_key
from radio.remote.server import is_loopback, parse_endpoint

log = logging.getLogger("radio.remote.client")

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
OPTION_KEYS = ("endpoint", "server_key", "client_key", "insecure", "timeout_s", "retries", "heartbeat_s")


def default_client_key() -> Path:
    """Where the client keypair is looked for when the config names none: ``$TESTBED_KEYS/client.key_secret``, else
    ``~/.config/testbed/keys/client.key_secret``."""
    base = os.environ.get("TESTBED_KEYS")
    return (Path(base) if base else Path.home() / ".config" / "testbed" / "keys") / "client.key_secret"


@dataclass(frozen=True)
class RemoteOptions:
    """The keys of a ``[radios.NAME] driver = "remote"`` table, checked.

    ``endpoint``: ``tcp://HOST:PORT`` of ``testbed serve``. ``server_key``: the server's public key (40 Z85
    characters or a ``.key`` file). ``client_key``: this client's ``NAME.key_secret`` (default
    :func:`default_client_key`). ``insecure``: plaintext, loopback endpoints only. ``timeout_s``: wait per attempt
    (s). ``retries``: attempts after the first. ``heartbeat_s``: ping period (s), 0 disables heartbeats."""

    endpoint: str
    server_key: str | None = None
    client_key: str | None = None
    insecure: bool = False
    timeout_s: float = 5.0
    retries: int = 3
    heartbeat_s: float = 1.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> "RemoteOptions":
        """Check a config table (syntax only: key files are read when the radio is opened)."""
        unknown = set(table) - set(OPTION_KEYS)
        if unknown:
            raise RadioConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {list(OPTION_KEYS)}")
        endpoint = table.get("endpoint")
        if not isinstance(endpoint, str):
            raise RadioConfigError(f"{where}: endpoint = {endpoint!r}; allowed: \"tcp://HOST:PORT\"")
        try:
            host, port = parse_endpoint(endpoint)
        except RadioConfigError as e:
            raise RadioConfigError(f"{where}: {e}") from None
        if port in ("*", "0"):
            raise RadioConfigError(f"{where}: endpoint = {endpoint!r}; allowed: the server's port (1 to 65535)")
        insecure = table.get("insecure", False)
        if not isinstance(insecure, bool):
            raise RadioConfigError(f"{where}: insecure = {insecure!r}; allowed: true or false")
        server_key = table.get("server_key")
        client_key = table.get("client_key")
        for key, value in (("server_key", server_key), ("client_key", client_key)):
            if value is not None and (not isinstance(value, str) or not value):
                raise RadioConfigError(f"{where}: {key} = {value!r}; allowed: a non-empty string")
        if insecure:
            if not is_loopback(host):
                raise RadioConfigError(f"{where}: insecure = true with endpoint {endpoint!r}; allowed: plaintext on "
                                       f"a loopback address only (tcp://127.0.0.1:PORT); give server_key instead")
            if server_key is not None:
                raise RadioConfigError(f"{where}: insecure = true and server_key given; allowed: one of the two")
        elif server_key is None:
            raise RadioConfigError(f"{where}: no server_key; allowed: the server's public key (printed by "
                                   f"`testbed serve`, or its server.key file), or insecure = true on loopback")
        timeout_s = _positive(table.get("timeout_s", 5.0), f"{where}: timeout_s", 3600.0)
        heartbeat_s = table.get("heartbeat_s", 1.0)
        if heartbeat_s != 0:
            heartbeat_s = _positive(heartbeat_s, f"{where}: heartbeat_s", 3600.0, zero_ok=True)
        retries = table.get("retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise RadioConfigError(f"{where}: retries = {retries!r}; allowed: an integer from 0 to 100")
        return cls(endpoint, server_key, client_key, insecure, timeout_s, retries, float(heartbeat_s))


def _positive(value: Any, what: str, high: float, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (0 < value <= high):
        raise RadioConfigError(f"{what} = {value!r}; allowed: 0 < value <= {high:g} s" + (" (or 0: off)" * zero_ok))
    return float(value)


class RemoteRadio(Radio):
    """A radio served by ``testbed serve`` on another host (or this one).

    Construction connects and says hello (capabilities, identity); an unreachable server raises RadioDisconnected
    after the retries. ``server_key`` (Z85 bytes) and ``client_keypair`` select CurveZMQ; ``insecure=True`` selects
    plaintext, loopback only. ``guard`` is checked here; the server checks its own guard as well.
    """

    driver = "remote"

    def __init__(self, name: str, endpoint: str, guard: TxGuard | None = None, settings: RadioSettings | None = None,
                 *, server_key: bytes | None = None, client_keypair: Keypair | None = None, insecure: bool = False,
                 timeout_s: float = 5.0, retries: int = 3, heartbeat_s: float = 1.0):
        super().__init__(name, guard, settings)
        host, port = parse_endpoint(endpoint)
        if insecure:
            if not is_loopback(host):
                raise RadioConfigError(f"{name}: plaintext to {endpoint!r} is refused; allowed: loopback only")
        elif server_key is None or client_keypair is None or client_keypair.secret is None:
            raise RadioConfigError(f"{name}: CurveZMQ needs server_key and a client keypair with its secret key; "
                                   f"allowed otherwise: insecure on loopback")
        self.endpoint = endpoint
        self._server_key = server_key
        self._client_keypair = client_keypair
        self._insecure = insecure
        self.timeout_s = _positive(timeout_s, f"{name}: timeout_s", 3600.0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise RadioConfigError(f"{name}: retries = {retries!r}; allowed: an integer >= 0")
        self.retries = retries
        self.client_id = f"{secrets.token_hex(8)}"
        self._ids = itertools.count(1)
        self._sock: Any = None
        self._monitor: Any = None
        self._poller: Any = None
        self._handshake_failure: str | None = None
        self._session: str | None = None
        self._server: dict[str, Any] = {}
        self._caps: Capabilities | None = None
        self._cyclic_buffer: tuple[np.ndarray, float] | None = None
        self._last_answer = 0.0
        self.reconnects = 0
        """How many times the client re-opened its connection or re-synchronised with a restarted server."""
        self._heartbeat: _Heartbeat | None = None
        # One request at a time on the socket, whichever thread asks (a server serving this radio stops a silent
        # client's transmission while a receive may be running).
        self._call_lock = threading.RLock()
        try:
            self._hello()
        except BaseException:
            self._drop_socket()
            raise
        if heartbeat_s and heartbeat_s > 0:
            self._heartbeat = _Heartbeat(self, float(heartbeat_s))
            self._heartbeat.start()

    @classmethod
    def from_options(cls, name: str, options: RemoteOptions, guard: TxGuard | None = None,
                     settings: RadioSettings | None = None, base_dir: str | os.PathLike[str] | None = None
                     ) -> "RemoteRadio":
        """Build from checked config options; key files are read now (relative paths from ``base_dir``)."""
        server_key = client = None
        if not options.insecure:
            assert options.server_key is not None
            server_key = parse_public_key(options.server_key, base_dir)
            path = Path(options.client_key).expanduser() if options.client_key else default_client_key()
            if not path.is_absolute() and base_dir is not None and options.client_key:
                path = Path(base_dir) / path
            client = load_secret_keypair(path)
        return cls(name, options.endpoint, guard, settings, server_key=server_key, client_keypair=client,
                   insecure=options.insecure, timeout_s=options.timeout_s, retries=options.retries,
                   heartbeat_s=options.heartbeat_s)

    # ---- description ------------------------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        assert self._caps is not None
        return self._caps

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "endpoint": self.endpoint,
                "server": self._server.get("identity"), "session": self._session}

    @property
    def connected(self) -> bool:
        """Whether the server answered within the last three heartbeat periods (or the last timeout)."""
        window = 3 * self._heartbeat.period_s if self._heartbeat is not None else self.timeout_s
        return time.monotonic() - self._last_answer <= window

    def ping(self) -> float:
        """Round-trip time of one ping (s)."""
        t0 = time.perf_counter()
        self._call("ping", {})
        return time.perf_counter() - t0

    # ---- backend hooks ----------------------------------------------------------------------------------------
    def _apply(self, settings: RadioSettings) -> None:
        self._call("configure", {"settings": proto.settings_to_wire(settings)})

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        if samples.size > self._server.get("max_samples", proto.MAX_SAMPLES_PER_MESSAGE):
            raise RadioConfigError(f"{self.name}: transmit buffer of {samples.size} samples; allowed at most "
                                   f"{self._server.get('max_samples')} per message to this server")
        self._call("transmit", {"num_samples": int(samples.size), "cyclic": bool(cyclic),
                                "occupied_bw_hz": float(self._tx_occupied_bw)}, samples=samples)
        # Kept so a restarted server gets the running transmission back, like its settings.
        self._cyclic_buffer = (samples.copy(), float(self._tx_occupied_bw)) if cyclic else None

    def _stop_transmit(self) -> None:
        self._cyclic_buffer = None
        self._call("stop_transmit", {})

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        reply = self._call("receive", {"num_samples": num_samples, "timeout_s": timeout_s},
                           expect_samples=num_samples, extra_wait_s=timeout_s)
        meta = proto.metadata_from_wire(reply.result.get("meta"))
        assert reply.samples is not None
        return Reception(reply.samples.copy(), meta)  # a private, writable copy, as local radios return

    def _close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._drop_socket()

    # ---- transport --------------------------------------------------------------------------------------------
    def _hello(self) -> None:
        reply = self._call("hello", {})
        result = reply.result
        if result.get("protocol") != proto.PROTOCOL_VERSION:
            raise proto.ProtocolError(f"server protocol {result.get('protocol')!r}; this client speaks "
                                      f"{proto.PROTOCOL_VERSION}")
        caps = proto.capabilities_from_wire(result.get("capabilities"))
        max_samples = result.get("max_samples")
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise proto.ProtocolError(f"server max_samples = {max_samples!r}; allowed: a positive integer")
        max_samples = min(max_samples, proto.MAX_SAMPLES_PER_MESSAGE, caps.max_buffer_samples)
        self._caps = dataclasses.replace(caps, max_buffer_samples=max_samples)
        self._server = dict(result, max_samples=max_samples)
        self._session = reply.session

    def _resync(self) -> None:
        """The server restarted: hello again, then restore the settings and any cyclic transmission."""
        self.reconnects += 1
        log.warning("%s: server %s restarted (new session); re-applying settings", self.name, self.endpoint)
        self._hello()
        if self._configured:
            self._call("configure", {"settings": proto.settings_to_wire(self._settings)}, resync=False)
        if self._tx_active and self._cyclic_buffer is not None:
            samples, occupied = self._cyclic_buffer
            self._call("transmit", {"num_samples": int(samples.size), "cyclic": True, "occupied_bw_hz": occupied},
                       samples=samples, resync=False)
        elif self._tx_active:
            self._tx_active = False

    def _call(self, op: str, args: Mapping[str, Any], *, samples: np.ndarray | None = None,
              expect_samples: int | None = None, extra_wait_s: float = 0.0, resync: bool = True) -> proto.Reply:
        """Send one request and return its successful reply, or raise the typed error it carries."""
        with self._call_lock:
            reply = self._exchange(op, args, samples, expect_samples, extra_wait_s)
            if not reply.ok and reply.error_type == proto.STALE_SESSION and resync:
                self._resync()
                reply = self._exchange(op, args, samples, expect_samples, extra_wait_s)
        if not reply.ok:
            reply.raise_error()
        return reply

    def _exchange(self, op: str, args: Mapping[str, Any], samples: np.ndarray | None, expect_samples: int | None,
                  extra_wait_s: float) -> proto.Reply:
        import zmq

        request_id = next(self._ids)
        frames = proto.encode_request(request_id, op, self.client_id, self._session, args, samples)
        wait_s = self.timeout_s + extra_wait_s
        started = time.monotonic()
        for attempt in range(self.retries + 1):
            if attempt:
                # Backoff with jitter, so many clients of one restarted server do not come back in lockstep.
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)) * (0.5 + random.random())
                time.sleep(delay)
                self.reconnects += 1
            if self._sock is None:
                self._connect()
            try:
                # Zero-copy pays only for large frames; small ones are cheaper copied.
                self._sock.send_multipart(frames, zmq.NOBLOCK, copy=len(frames) == 1 or len(frames[1]) < 65536)
            except zmq.Again:
                self._drop_socket()
                continue
            reply = self._await(request_id, wait_s, expect_samples)
            if reply is not None:
                self._last_answer = time.monotonic()
                return reply
            log.info("%s: no answer to %s from %s within %.1f s (attempt %d of %d)", self.name, op, self.endpoint,
                     wait_s, attempt + 1, self.retries + 1)
            self._drop_socket()  # a fresh connection: the old one may be dead without anyone noticing
        hint = ("is `testbed serve` running there and reachable?" if self._handshake_failure is None else
                f"the handshake failed ({self._handshake_failure}): check server_key, or whether the server "
                f"expects CurveZMQ or plaintext")
        raise RadioDisconnected(
            f"{self.name}: no answer from {self.endpoint} to {op} after {self.retries + 1} attempts "
            f"({time.monotonic() - started:.1f} s); {hint}")

    def _await(self, request_id: int, wait_s: float, expect_samples: int | None) -> proto.Reply | None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        deadline = time.monotonic() + wait_s
        poller = self._poller
        while True:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            ready = dict(poller.poll(left_ms))
            if not ready:
                return None
            if self._monitor in ready:
                event = recv_monitor_message(self._monitor)
                if event["event"] != zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    self._handshake_failure = f"{zmq.Event(event['event']).name}, code {event['value']:#x}"
                else:
                    self._drop_socket()
                    raise RadioDisconnected(
                        f"{self.name}: {self.endpoint} refused this client (status {event['value']}): its public "
                        f"key is not in the server's allow-list (`testbed keys authorize` on the server)")
            if self._sock in ready:
                frames = self._sock.recv_multipart()
                reply = proto.decode_reply(frames, expect_samples)
                if reply.request_id == request_id:
                    return reply
                # An answer to an earlier, abandoned attempt: ignore it and keep waiting.

    def _connect(self) -> None:
        import zmq

        self._sock, self._monitor = open_dealer(self.endpoint, self._server_key, self._client_keypair)
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def _drop_socket(self) -> None:
        close_dealer(self._sock, self._monitor)
        self._sock = self._monitor = self._poller = None


def open_dealer(endpoint: str, server_key: bytes | None, client: Keypair | None) -> tuple[Any, Any]:
    """A connected DEALER socket (CurveZMQ when ``server_key`` is given) and a monitor of its handshakes."""
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, proto.MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    if server_key is not None and client is not None:
        sock.curve_serverkey = server_key
        sock.curve_publickey = client.public
        sock.curve_secretkey = client.secret
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    sock.connect(endpoint)
    return sock, monitor


def close_dealer(sock: Any, monitor: Any) -> None:
    if sock is not None:
        try:
            sock.disable_monitor()
        except Exception:  # noqa: BLE001 - already closed
            pass
    for s in (monitor, sock):
        if s is not None:
            s.close(linger=0)


class _Heartbeat:
    """Pings the server every ``period_s`` on a connection of its own (ZeroMQ sockets are not shared between
    threads), under the radio's client id, so the server sees the client alive between calls."""

    def __init__(self, radio: RemoteRadio, period_s: float):
        self.radio = radio
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{radio.name}", daemon=True)
        self.answered = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2 * self.period_s + 1.0)

    def _run(self) -> None:
        import zmq

        r = self.radio
        sock = monitor = None
        ids = itertools.count(1)
        try:
            while not self._stop.wait(self.period_s):
                if sock is None:
                    sock, monitor = open_dealer(r.endpoint, r._server_key, r._client_keypair)
                request_id = next(ids)
                try:
                    sock.send_multipart(proto.encode_request(request_id, "ping", r.client_id, None, {}), zmq.NOBLOCK)
                    if self._await_pong(sock, request_id):
                        r._last_answer = time.monotonic()
                        self.answered += 1
                        continue
                except (zmq.ZMQError, proto.ProtocolError) as e:
                    log.debug("%s: heartbeat failed: %s", r.name, e)
                close_dealer(sock, monitor)  # no answer: reconnect on the next beat
                sock = monitor = None
        finally:
            close_dealer(sock, monitor)

    def _await_pong(self, sock: Any, request_id: int) -> bool:
        """Wait up to two periods for the answer, in short slices so that closing the radio is never held up."""
        deadline = time.monotonic() + 2 * self.period_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            if sock.poll(50):
                reply = proto.decode_reply(sock.recv_multipart())
                if reply.request_id == request_id:
                    return reply.ok
        return False


__all__ = ["RemoteOptions", "RemoteRadio", "default_client_key"]
