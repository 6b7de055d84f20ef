"""Serve one radio (any backend) over ZeroMQ: the server side of ``testbed serve``.

One thread (the loop) owns every socket: a ROUTER socket for requests, the ZAP handler that accepts or refuses
clients, and a monitor of the ROUTER that logs failed handshakes. Radio requests run one at a time, in arrival
order. A ``receive`` runs on a worker thread (it may wait up to an hour for its samples), so meanwhile the loop
keeps answering handshakes, pings and hellos and keeps watching for silent clients; radio requests that arrive
meanwhile wait for it (at most :data:`MAX_WAITING_REQUESTS`).

Safety: every request is schema-checked (:mod:`radio.remote.protocol`) before anything reaches the radio, and the
radio keeps its own :class:`~radio.guard.TxGuard` (the server's config), so a client cannot transmit anything the
server's guard refuses, whatever its own guard says. A cyclic transmission whose client has gone silent (no request
and no heartbeat for ``client_timeout_s``) is stopped, even while a receive is running: the loop then calls
``radio.stop_transmit`` while the worker is inside ``radio.receive``, the one pair of radio calls that may overlap.
Backends allow it: a simulated radio serialises the calls on its air (a simulated receive is computation, never a
wait), a USRP stops by signalling its own TX thread (TX and RX are separate UHD streamers), a Pluto's TX and RX
buffers are separate IIO devices, a fault-injecting wrapper counts calls under a lock, and a remote radio
serialises its calls (so a served remote radio stops only once its receive has answered).

Security: CurveZMQ with the server's keypair; a client is accepted only when its public key is in the allow-list
(ZAP), re-read whenever its directory changes, so a revoked key is refused from its next handshake and its next
request on. Plaintext (``insecure=True``) is allowed only on a loopback address.

Client identity: every piece of per-client state (the reply cache, the last time a client was heard from, the
owner of the cyclic transmission) is keyed by (authenticated key, declared client id). The authenticated key is
the client's CurveZMQ public key as the ZAP handler vouches for it (ZeroMQ's ``User-Id`` of each message), so the
``client`` id a request declares only tells apart the controller processes sharing one key: it never reaches
another key's state. In plaintext loopback mode there is no key: every local process is trusted alike and the
declared id alone tells clients apart, so any local process can act for any other.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import queue
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from radio.base import Radio
from radio.errors import RadioConfigError, RadioError, RadioFault
from radio.remote import protocol as proto
from radio.remote.keys import ServerKeys, allow_list_signature, fingerprint, load_allow_list

log = logging.getLogger("radio.remote.server")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"testbed"
_ENDPOINT = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+|\*):(?P<port>\d{1,5}|\*)$")
_REPLY_CACHE_BYTES = 256 * 1024 * 1024
_POLL_MS = 50
_ALLOW_LIST_RECHECK_S = 1.0
_WORKER_JOIN_S = 5.0
MAX_CLIENTS = 256
"""Most (authenticated key, declared id) pairs the server keeps state for; the least recently heard is forgotten
first, never the owner of the running transmission nor a client whose request is running or waiting."""
MAX_IDS_PER_KEY = 32
"""Most declared client ids one authenticated key keeps state for (one per controller process sharing the key)."""
MAX_WAITING_REQUESTS = 256
"""Most radio requests that wait behind a running receive; more are answered ``RadioTimeout`` (server busy)."""
INSECURE_USER = "loopback"
"""The authenticated key of every client in plaintext loopback mode (there is none)."""

ClientKey = tuple[str, str]
"""Who a piece of per-client state belongs to: (authenticated key, declared client id)."""


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
class _ClientState:
    """What the server remembers of one (key, declared id): when it was last heard, and its last reply."""

    last_seen: float
    reply: tuple[int, list[bytes]] | None = None
    reply_bytes: int = 0


@dataclass
class _Job:
    """A radio request running or waiting; ``route`` is the ROUTER identity of the connection to answer (the one
    that asked last, when the client retried meanwhile)."""

    client: ClientKey
    request: proto.Request
    route: bytes


_Admitted = Union[list[bytes], tuple[ClientKey, proto.Request]]


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
    revoked_requests: int = 0
    busy_refusals: int = 0
    forgotten_clients: int = 0

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
        self._clients: collections.OrderedDict[ClientKey, _ClientState] = collections.OrderedDict()
        self._ids_per_key: dict[str, int] = {}
        self._cached_bytes = 0
        self._tx_owner: ClientKey | None = None
        self._in_flight: _Job | None = None
        self._waiting: collections.deque[_Job] = collections.deque()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Job, list[bytes], bool]] = queue.SimpleQueue()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._worker: threading.Thread | None = None
        self._allowed: dict[bytes, str] = dict(keys.allowed_clients) if keys is not None else {}
        self._allow_dir = keys.allow_list_dir if keys is not None else None
        self._allow_signature = allow_list_signature(self._allow_dir) if self._allow_dir is not None else ()
        self._allow_checked = time.monotonic()
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
        try:
            self._loop()
        finally:
            self._join_worker(_WORKER_JOIN_S)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving (any cyclic transmission is stopped) and release the sockets. The radio stays open.

        Waits up to ``timeout_s`` in all for the loop and for a receive still running on the radio (its answer is
        dropped); a receive that runs longer is left to finish on its own and logged."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._join_worker(max(0.0, deadline - time.monotonic()))

    def _join_worker(self, timeout_s: float) -> None:
        worker = self._worker
        if worker is None:
            return
        worker.join(timeout_s)
        if worker.is_alive():
            log.warning("a receive is still running on %s after the server stopped; its answer is dropped",
                        self.radio.name)
        else:
            self._worker = None

    @property
    def tracked_clients(self) -> dict[str, int]:
        """Authenticated key -> how many declared client ids the server keeps state for (bounded by
        :data:`MAX_IDS_PER_KEY` each and :data:`MAX_CLIENTS` in all, give or take the protected few)."""
        return dict(self._ids_per_key)

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

        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._worker = threading.Thread(target=self._work, args=(self._jobs, self._done, self._wake_w),
                                        name=f"radio-server-{self.radio.name}-rx", daemon=True)
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        wake_fd = self._wake_r.fileno()  # the poller reports a plain socket by its file descriptor
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(_POLL_MS))
                if self._monitor in ready:
                    self._drain_monitor()
                if self._zap in ready:
                    self._answer_zap()
                if wake_fd in ready:
                    self._collect_finished()
                if self._router in ready:
                    # A burst is served before looking at the other sockets again, but bounded so ZAP stays live.
                    for _ in range(64):
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._serve_one(frames)
                self._stop_silent_transmission()
        except Exception:  # noqa: BLE001 - the loop must log why it died rather than vanish silently
            log.exception("server loop for %s stopped by an unexpected error", self.radio.name)
            raise
        finally:
            self._shutdown()

    def _serve_one(self, frames: list[Any]) -> None:
        """One message from the ROUTER (``zmq.Frame`` objects: identity, then the request)."""
        if len(frames) < 2:  # a ROUTER message is always [identity, ...]; anything else is dropped
            self.stats.malformed += 1
            return
        route = frames[0].bytes
        user = self._authenticated_key(frames[1])
        admitted = self._admit([f.bytes for f in frames[1:]], user)
        if isinstance(admitted, list):
            self._send(route, admitted)
            return
        client, request = admitted
        for job in (self._in_flight, *self._waiting):
            if job is not None and job.client == client and job.request.request_id == request.request_id:
                job.route = route  # a retry of a request already under way: it is answered once, here
                return
        job = _Job(client, request, route)
        if request.op in proto.SESSION_FREE_OPS:
            self._run_inline(job)
        elif self._in_flight is not None or self._waiting:
            if len(self._waiting) >= MAX_WAITING_REQUESTS:
                self.stats.busy_refusals += 1
                self._send(route, proto.encode_reply(request.request_id, self.session, error=(
                    "RadioTimeout", f"server busy: {len(self._waiting)} requests already wait for {self.radio.name}; "
                                    f"try again later")))
            else:
                self._waiting.append(job)
        else:
            self._start(job)

    def _authenticated_key(self, frame: Any) -> str:
        """The ZAP user id of the connection a frame came on: the client's public key (Z85), or
        :data:`INSECURE_USER` in plaintext mode."""
        try:
            user = frame.get("User-Id")
        except Exception:  # noqa: BLE001 - no metadata: an unauthenticated connection, which ZAP never lets in
            user = None
        return user if isinstance(user, str) and user else ("" if self.keys is not None else INSECURE_USER)

    def _send(self, route: bytes, reply: list[bytes]) -> None:
        import zmq

        try:
            big = len(reply) > 1 and len(reply[1]) >= 65536  # zero-copy pays only for large frames
            self._router.send_multipart([route, *reply], zmq.NOBLOCK, copy=not big)
        except zmq.ZMQError as e:  # the peer left or is not reading: its reply is dropped, the server goes on
            log.debug("reply to a client dropped: %s", e)

    def _start(self, job: _Job) -> None:
        """Run a radio request: a receive on the worker (answered by :meth:`_collect_finished`), the rest here."""
        if job.request.op == "receive" and self._worker is not None:
            self._in_flight = job
            self._jobs.put(job)
        else:
            self._run_inline(job)

    def _run_inline(self, job: _Job) -> None:
        reply, failed = self._execute(job.client, job.request)
        self._record(job.client, job.request, reply, failed)
        self._send(job.route, reply)

    def _collect_finished(self) -> None:
        """Answer the receive the worker finished, then start what waited behind it, in arrival order."""
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                job, reply, failed = self._done.get_nowait()
            except queue.Empty:
                break
            self._record(job.client, job.request, reply, failed)
            self._send(job.route, reply)
            if self._in_flight is job:
                self._in_flight = None
        while self._in_flight is None and self._waiting:
            self._start(self._waiting.popleft())

    def _work(self, jobs: "queue.SimpleQueue[_Job | None]", done: "queue.SimpleQueue[tuple[_Job, list[bytes], bool]]",
              wake: socket.socket) -> None:
        """The worker thread: run each receive handed over and wake the loop to answer it; None ends it."""
        while True:
            job = jobs.get()
            if job is None:
                return
            reply, failed = self._execute(job.client, job.request)
            done.put((job, reply, failed))
            try:
                wake.send(b"\0")
            except OSError:  # the loop has stopped and closed its end: nobody is waiting for this answer
                pass

    def handle(self, frames: list[bytes], user: str | None = None) -> list[bytes]:
        """Run one request (the frames after the ROUTER identity) in this thread and return the reply frames.

        ``user``: the authenticated key the request came with (default: the plaintext loopback user, or an
        unauthenticated one when the server has keys). Never raises."""
        if user is None:
            user = INSECURE_USER if self.keys is None else ""
        admitted = self._admit(frames, user)
        if isinstance(admitted, list):
            return admitted
        client, request = admitted
        reply, failed = self._execute(client, request)
        self._record(client, request, reply, failed)
        return reply

    def _admit(self, frames: list[bytes], user: str) -> _Admitted:
        """Check one request and who sent it; return the reply when it is answered at once (malformed, refused,
        stale session, repeated), else (client, request) to run."""
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
        if self.keys is not None and not self._still_allowed(user):
            self.stats.revoked_requests += 1
            return proto.encode_reply(request.request_id, self.session, error=RadioConfigError(
                f"this client's key ({_describe_user(user)}) is not in the server's allow-list any more"))
        client = (user, request.client)
        self._touch(client)
        if request.op not in proto.SESSION_FREE_OPS and request.session != self.session:
            self.stats.stale_sessions += 1
            return proto.encode_reply(request.request_id, self.session, error=(
                proto.STALE_SESSION, f"session {request.session!r} is not this server's ({self.session}); "
                                     f"send hello and the settings again"))
        if request.op not in proto.SESSION_FREE_OPS:
            cached = self._clients[client].reply
            if cached is not None and cached[0] == request.request_id:
                self.stats.replayed_from_cache += 1
                return cached[1]
        return client, request

    def _execute(self, client: ClientKey, request: proto.Request) -> tuple[list[bytes], bool]:
        """Run one admitted request on the radio: (reply, whether it failed). Any thread; never raises."""
        try:
            return self._run(client, request), False
        except Exception as e:  # noqa: BLE001 - every failure becomes a typed error reply
            if not isinstance(e, RadioError):
                log.warning("%s on %s raised %s: %s", request.op, self.radio.name, type(e).__name__, e)
            return proto.encode_reply(request.request_id, self.session, error=e), True

    def _record(self, client: ClientKey, request: proto.Request, reply: list[bytes], failed: bool) -> None:
        """Count a finished request and keep its reply for retries."""
        if failed:
            self.stats.errors += 1
        elif request.op == "receive":
            self.stats.receives += 1
        if request.op not in proto.SESSION_FREE_OPS:
            self._cache_reply(client, request.request_id, reply)

    # ---- per-client state -------------------------------------------------------------------------------------
    def _touch(self, client: ClientKey) -> None:
        """Note that ``client`` was heard from now (creating its state, within the bounds)."""
        now = time.monotonic()
        state = self._clients.get(client)
        if state is not None:
            state.last_seen = now
            self._clients.move_to_end(client)
            return
        self._clients[client] = _ClientState(now)
        self._ids_per_key[client[0]] = self._ids_per_key.get(client[0], 0) + 1
        if self._ids_per_key[client[0]] > MAX_IDS_PER_KEY:
            self._forget_oldest(client, same_key=True)
        while len(self._clients) > MAX_CLIENTS and self._forget_oldest(client, same_key=False):
            pass

    def _protected(self) -> set[ClientKey]:
        """Clients whose state is never forgotten: forgetting the transmission owner's last-seen time would make a
        live client look silent, and a running or waiting request still needs its client's reply slot."""
        kept = {job.client for job in (self._in_flight, *self._waiting) if job is not None}
        if self._tx_owner is not None:
            kept.add(self._tx_owner)
        return kept

    def _forget_oldest(self, newest: ClientKey, same_key: bool) -> bool:
        """Forget the least recently heard client (of ``newest``'s key only, with ``same_key``), never ``newest``
        nor a protected one. Returns whether one was forgotten."""
        kept = self._protected()
        kept.add(newest)
        for client in self._clients:
            if client in kept or (same_key and client[0] != newest[0]):
                continue
            state = self._clients.pop(client)
            self._cached_bytes -= state.reply_bytes
            left = self._ids_per_key[client[0]] - 1
            if left:
                self._ids_per_key[client[0]] = left
            else:
                del self._ids_per_key[client[0]]
            self.stats.forgotten_clients += 1
            return True
        return False

    def _cache_reply(self, client: ClientKey, request_id: int, reply: list[bytes]) -> None:
        """Keep each client's last reply (for retries), bounded in bytes; the newest is always kept."""
        state = self._clients.get(client)
        if state is None:  # forgotten while its request ran: there is no slot to keep the reply in
            return
        size = sum(len(f) for f in reply)
        self._cached_bytes += size - state.reply_bytes
        state.reply, state.reply_bytes = (request_id, reply), size
        if self._cached_bytes <= _REPLY_CACHE_BYTES:
            return
        for other, st in self._clients.items():
            if self._cached_bytes <= _REPLY_CACHE_BYTES:
                break
            if other != client and st.reply is not None:
                self._cached_bytes -= st.reply_bytes
                st.reply, st.reply_bytes = None, 0

    def _run(self, client: ClientKey, req: proto.Request) -> list[bytes]:
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
            self._tx_owner = client if report.cyclic else None
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
            return proto.encode_reply(rid, self.session, result={"meta": proto.metadata_to_wire(meta)},
                                      samples=samples)
        raise proto.ProtocolError(f"op {req.op!r} has no handler")  # decode_request admits only known ops

    def _stop_silent_transmission(self) -> None:
        """Stop the cyclic transmission of an owner not heard from (request or heartbeat, under its own key) for
        ``client_timeout_s``. Runs on the loop, so it is on time even while a receive runs on the worker."""
        owner = self._tx_owner
        if owner is None or not self.radio.transmitting:
            return
        state = self._clients.get(owner)  # never forgotten while it owns the transmission
        silent = time.monotonic() - (state.last_seen if state is not None else -math.inf)
        if silent > self.client_timeout_s:
            log.warning("client %s of %s silent for %.1f s: stopping its cyclic transmission on %s", owner[1],
                        _describe_user(owner[0]), silent, self.radio.name)
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
            self._refresh_allow_list()
            name = self._allowed.get(key)
            if name is not None:
                # The key itself, not its file name, is the user id: two keys never share per-client state.
                status, text, user = b"200", b"OK", key
                log.info("accepted client %s at %s", name, address)
            else:
                self._log_refusal(f"refused client at {address}: public key {key.decode()} is not in the allow-list")
        elif mechanism == b"NULL" and self.insecure and is_loopback(address):
            status, text, user = b"200", b"OK", INSECURE_USER.encode()
        else:
            self._log_refusal(f"refused client at {address}: mechanism {mechanism.decode('ascii', 'replace')} is "
                              f"not accepted here ({'plaintext loopback' if self.insecure else 'CURVE'})")
        if status != b"200":
            self.stats.refused_clients += 1
        self._zap.send_multipart([b"1.0", request_id, status, text, user, b""])

    def _refresh_allow_list(self) -> None:
        """Re-read the allow-list when its directory changed (a key authorized or revoked while serving). An
        unreadable allow-list refuses everyone until it is fixed."""
        if self._allow_dir is None:
            return
        self._allow_checked = time.monotonic()
        signature = allow_list_signature(self._allow_dir)
        if signature == self._allow_signature:
            return
        self._allow_signature = signature
        try:
            self._allowed = load_allow_list(self._allow_dir)
        except RadioConfigError as e:
            self._allowed = {}
            log.error("allow-list %s unreadable, refusing every client until it is fixed: %s", self._allow_dir, e)
            return
        log.info("allow-list %s re-read: %d client key(s)", self._allow_dir, len(self._allowed))

    def _still_allowed(self, user: str) -> bool:
        """Whether a request's key is still in the allow-list (checked against the directory at most once a
        second, so revoking a key also ends the connections it already has)."""
        if time.monotonic() - self._allow_checked >= _ALLOW_LIST_RECHECK_S:
            self._refresh_allow_list()
        try:
            return user.encode("ascii") in self._allowed
        except UnicodeEncodeError:
            return False

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
        self._jobs.put(None)  # the worker ends after the receive it may be running
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        self._in_flight = None
        self._waiting.clear()
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


def _describe_user(user: str) -> str:
    """How the logs name an authenticated key: its fingerprint (or the plaintext loopback user)."""
    if user == INSECURE_USER or not user:
        return user or "no key"
    try:
        return f"key {fingerprint(user.encode('ascii'))}"
    except (RadioConfigError, UnicodeEncodeError):
        return "an unreadable key"


__all__ = ["INSECURE_USER", "MAX_CLIENTS", "MAX_IDS_PER_KEY", "MAX_WAITING_REQUESTS", "RadioServer", "ServerStats",
           "is_loopback", "parse_endpoint"]
