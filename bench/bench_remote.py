"""Remote radios: latency and throughput of receive calls from one controller to radios served by ``testbed serve``
(``RadioServer``) on loopback, against the same calls on local radios measured in the same run.

Each server is its own process (as on its own host) serving one radio: a simulated radio on its own simulated air
(``--backend sim``, the default) or an ideal loopback radio (``--backend loopback``: almost free, so the transport
is what is measured). CurveZMQ with an allow-listed client key unless ``--plaintext``. The controller makes
``--calls`` receive calls of ``--samples`` samples on each of ``--servers`` radios:

- ``local``: the peer, the same radios opened in the controller's process, round-robin;
- ``remote-sequential``: one controller thread, round-robin over the remote radios (how the controller's loop
  drives radios);
- ``remote-threads``: one controller thread per remote radio, all at once.

No loss: every call must return ``--samples`` samples with no overflow, and each radio's timestamps must advance by
exactly one buffer per call (a dropped or repeated buffer shows as a jump). Latency percentiles are of single
receive calls (ms); throughput is received samples per second of wall time, all radios together (MS/s).

Usage: ``python bench/bench_remote.py [--servers 16] [--calls 1000] [--samples 1920] [--backend sim|loopback]
[--plaintext] [--cases local,remote-sequential,remote-threads]``. Prints one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from radio.base import Radio  # noqa: E402
from radio.guard import TxGuard  # noqa: E402
from radio.loopback import LoopbackRadio  # noqa: E402
from radio.remote import RadioServer, RemoteRadio, ServerKeys  # noqa: E402
from radio.remote.keys import authorize_client, generate_keypair, load_secret_keypair  # noqa: E402
from radio.sim import SimulatedAir  # noqa: E402

LO = 2.44e9
GUARD = {"allowed_bands": [[2400e6, 2483.5e6]], "max_tx_gain_db": 0.0}


def make_radio(backend: str, index: int) -> Radio:
    """Radio ``index`` of the benchmark: a simulated radio on its own air (seed 100 + index) or a loopback."""
    guard = TxGuard.from_config(GUARD)
    if backend == "sim":
        return SimulatedAir(seed=100 + index).radio(f"sim{index}", guard)
    return LoopbackRadio(f"loop{index}", guard, noise_rms=0.01, seed=index)


def _serve(backend: str, index: int, key_dir: str | None, endpoints: Any, stop: Any) -> None:
    radio = make_radio(backend, index)
    keys = ServerKeys.from_directory(key_dir) if key_dir else None
    server = RadioServer(radio, "tcp://127.0.0.1:0", keys=keys, insecure=keys is None)
    endpoints.put((index, server.open()))
    server.serve_forever(stop)
    radio.close()


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    a = np.asarray(latencies_s) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


class Stream:
    """Receives on one radio, checking that nothing is lost: full buffers, no overflow, contiguous timestamps."""

    def __init__(self, radio: Radio, samples: int, rate: float):
        self.radio, self.samples, self.rate = radio, samples, rate
        self.latencies: list[float] = []
        self.losses = 0
        self._last_t: float | None = None

    def call(self) -> None:
        t0 = time.perf_counter()
        x, meta = self.radio.receive(self.samples)
        self.latencies.append(time.perf_counter() - t0)
        lost = x.shape != (self.samples,) or meta.overflow_count != 0
        # Loopback radios stamp wall time, so contiguity is checked on clocked (simulated) radios only.
        if self.radio_has_sample_clock and self._last_t is not None:
            lost |= abs(meta.timestamp_s - (self._last_t + self.samples / self.rate)) > 0.5 / self.rate
        self._last_t = meta.timestamp_s
        self.losses += int(lost)

    @property
    def radio_has_sample_clock(self) -> bool:
        ident = self.radio.identity()
        return ident.get("driver") == "sim" or (ident.get("server") or {}).get("driver") == "sim"


def run_case(name: str, radios: list[Radio], calls: int, samples: int, rate: float, threaded: bool
             ) -> dict[str, Any]:
    for r in radios:
        r.configure(lo_hz=LO, rate_sps=rate, bandwidth_hz=min(max(rate, 200e3), 56e6), rx_gain_db=40.0)
    streams = [Stream(r, samples, rate) for r in radios]
    for s in streams:  # first buffers warm caches (noise pools, plans) outside the measurement
        for _ in range(3):
            s.call()
        s.latencies.clear()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if threaded:
        threads = [threading.Thread(target=lambda s=s: [s.call() for _ in range(calls)]) for s in streams]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for _ in range(calls):
            for s in streams:
                s.call()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    all_latencies = [x for s in streams for x in s.latencies]
    total = len(all_latencies)
    return {"case": name, "radios": len(radios), "calls_per_radio": calls, "samples_per_call": samples,
            "calls": total, "calls_answered": total, "lost_or_discontinuous": sum(s.losses for s in streams),
            **percentiles_ms(all_latencies), "calls_per_s": round(total / wall, 1),
            "throughput_msps": round(total * samples / wall / 1e6, 2),
            "controller_cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=16)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1920, help="samples per receive call (1920 = 1 ms at 1.92 MS/s)")
    ap.add_argument("--rate", type=float, default=1.92e6, help="sample rate, S/s")
    ap.add_argument("--backend", choices=["sim", "loopback"], default="sim")
    ap.add_argument("--plaintext", action="store_true", help="no CurveZMQ (loopback only)")
    ap.add_argument("--cases", default="local,remote-sequential,remote-threads")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    known = {"local", "remote-sequential", "remote-threads"}
    if set(cases) - known:
        ap.error(f"--cases {args.cases!r}; allowed: a comma-separated subset of {sorted(known)}")

    results: list[dict[str, Any]] = []
    if "local" in cases:
        local = [make_radio(args.backend, i) for i in range(args.servers)]
        results.append(run_case("local", local, args.calls, args.samples, args.rate, threaded=False))
        for r in local:
            r.close()

    remote_cases = [c for c in cases if c.startswith("remote")]
    startup_s = None
    if remote_cases:
        with tempfile.TemporaryDirectory() as tmp:
            key_dir = client = None
            if not args.plaintext:
                key_dir = Path(tmp) / "server"
                generate_keypair(key_dir, "server")
                generate_keypair(Path(tmp) / "client", "client")
                authorize_client(key_dir, Path(tmp) / "client" / "client.key")
                client = load_secret_keypair(Path(tmp) / "client" / "client.key_secret")
                server_key = ServerKeys.from_directory(key_dir).keypair.public
            ctx = mp.get_context("spawn")
            endpoints, stop = ctx.Queue(), ctx.Event()
            t0 = time.perf_counter()
            procs = [ctx.Process(target=_serve, args=(args.backend, i, str(key_dir) if key_dir else None,
                                                      endpoints, stop), daemon=True)
                     for i in range(args.servers)]
            for p in procs:
                p.start()
            try:
                found = dict(endpoints.get(timeout=300) for _ in procs)
                startup_s = round(time.perf_counter() - t0, 2)
                for case in remote_cases:
                    radios = [RemoteRadio(f"r{i}", found[i], TxGuard.from_config(GUARD),
                                          insecure=args.plaintext, server_key=None if args.plaintext else server_key,
                                          client_keypair=client, timeout_s=30.0)
                              for i in range(args.servers)]
                    results.append(run_case(case, radios, args.calls, args.samples, args.rate,
                                            threaded=case == "remote-threads"))
                    for r in radios:
                        r.close()
            finally:
                stop.set()
                for p in procs:
                    p.join(10)
                    if p.is_alive():
                        p.terminate()

    by_case = {r["case"]: r for r in results}
    ratios = {}
    if "local" in by_case:
        for case in remote_cases:
            ratios[f"{case}_vs_local_throughput"] = round(
                by_case[case]["throughput_msps"] / by_case["local"]["throughput_msps"], 3)
    realtime = {c: round(r["throughput_msps"] * 1e6 / args.rate, 1) for c, r in by_case.items()}
    print(json.dumps({
        "benchmark": "remote radios (testbed serve) vs local radios, receive calls",
        "backend": args.backend, "security": "plaintext" if args.plaintext else "CurveZMQ",
        "servers": args.servers, "samples_per_call": args.samples, "rate_sps": args.rate,
        "server_startup_s": startup_s, "results": results, "ratios": ratios,
        "radios_streaming_in_real_time": realtime,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }, indent=1))


if __name__ == "__main__":
    main()
