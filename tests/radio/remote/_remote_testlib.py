"""Helpers of the remote-radio tests: keys, served simulated radios, a spy on what reaches the radio."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from radio.guard import TxGuard
from radio.remote import RadioServer, RemoteRadio, ServerKeys
from radio.remote.keys import authorize_client, generate_keypair, load_secret_keypair
from radio.sim import SimulatedAir
from radio.sim.faults import FaultPlan, FaultyRadio

ISM = {"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": 0.0}


def ism_guard() -> TxGuard:
    return TxGuard.from_config(ISM)


class SpyRadio(FaultyRadio):
    """A radio wrapper (optionally with faults) that counts what actually reaches the radio below it."""

    def __init__(self, inner: Any, plan: FaultPlan | None = None):
        super().__init__(inner, plan or FaultPlan())
        self.transmits_reaching_radio = 0
        self.configures_reaching_radio = 0

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        self.transmits_reaching_radio += 1
        super()._transmit(samples, cyclic)

    def _apply(self, settings: Any) -> None:
        self.configures_reaching_radio += 1
        super()._apply(settings)


def sim_spy(name: str = "sim0", guard: TxGuard | None = None, seed: int = 1,
            plan: FaultPlan | None = None) -> SpyRadio:
    """A simulated radio on its own air, wrapped in a spy; ``guard`` defaults to the 2.4 GHz ISM band."""
    air = SimulatedAir(seed=seed)
    return SpyRadio(air.radio(name, guard if guard is not None else ism_guard()), plan)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KeySet:
    """Server keys with two authorized clients (``client``, ``other``) and one intruder (a valid keypair the server
    does not know)."""

    def __init__(self, root: Path):
        self.server_dir = root / "server"
        self.client_dir = root / "client"
        generate_keypair(self.server_dir, "server")
        generate_keypair(self.client_dir, "client")
        generate_keypair(self.client_dir, "other")
        generate_keypair(self.client_dir, "intruder")
        authorize_client(self.server_dir, self.client_dir / "client.key")
        authorize_client(self.server_dir, self.client_dir / "other.key", "other")
        self.server = ServerKeys.from_directory(self.server_dir)
        self.client = load_secret_keypair(self.client_dir / "client.key_secret")
        self.other = load_secret_keypair(self.client_dir / "other.key_secret")
        self.intruder = load_secret_keypair(self.client_dir / "intruder.key_secret")

    def radio(self, endpoint: str, name: str = "r0", **kw: Any) -> RemoteRadio:
        kw.setdefault("client_keypair", self.client)
        kw.setdefault("server_key", self.server.keypair.public)
        kw.setdefault("heartbeat_s", 0)
        return RemoteRadio(name, endpoint, ism_guard(), **kw)


@contextlib.contextmanager
def served(radio: Any, bind: str = "tcp://127.0.0.1:0", **kw: Any) -> Iterator[RadioServer]:
    """A started server for ``radio`` (plaintext on loopback unless ``keys`` is given); stopped on exit."""
    if "keys" not in kw:
        kw["insecure"] = True
    server = RadioServer(radio, bind, **kw).start()
    try:
        yield server
    finally:
        server.stop()


def insecure_client(endpoint: str, name: str = "r0", **kw: Any) -> RemoteRadio:
    kw.setdefault("heartbeat_s", 0)
    kw.setdefault("timeout_s", 5.0)
    return RemoteRadio(name, endpoint, kw.pop("guard", ism_guard()), insecure=True, **kw)


def wait_until(predicate: Callable[[], bool], limit_s: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``limit_s`` passes (a bound against hanging, not a timing check)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class RecordingProxy:
    """A TCP proxy in front of a server that records every byte the first client connection sends (to replay it)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self._first = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            record = self._first
            self._first = False
            threading.Thread(target=self._pipe, args=(conn, record), daemon=True).start()

    def _pipe(self, conn: socket.socket, record: bool) -> None:
        import select

        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([conn, upstream], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is conn:
                        if record:
                            self.recorded.extend(data)
                        upstream.sendall(data)
                    else:
                        conn.sendall(data)
        except OSError:
            return
        finally:
            conn.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(2)
