"""Throughput of the simulated air: received samples per second for 2 and 8 simulated radios at 7.68 MS/s.

Every radio transmits a cyclic 10 ms LTE-5-like OFDM frame (300 subcarriers of 64QAM, normal CP, -12 dBFS RMS)
and every radio receives, in blocks, with the default ``[sim]`` front ends (PA, phase noise, distortion, IQ
imbalance, LNA, thermal noise, 12-bit converters). Two layouts:

- ``co-channel``: all radios on one LO (links sharing a band, interleaving their resource blocks);
- ``adjacent``: LOs 5 MHz apart: each receiver hears its neighbours' spectral regrowth in its band, and simulates
  its LNA over their channels (oversampled) where they are strong enough to matter to it;
- ``one-way``: one LO, only the first radio transmits and only the others receive (a transmitter and a receiver,
  as in a link test).

The ratio to real time is samples/s divided by 7.68 MS/s per receiving radio: 1.0 means the air keeps up with
every radio receiving continuously. One core: BLAS/OpenMP threads are pinned to 1 before numpy loads (scipy.fft
is single-threaded unless asked). Each case runs ``--repeat`` times and the best run is reported (the
median wall time too); both wall-clock and process CPU time are given: on a shared machine the CPU figure is the
steadier one, and ``reference_ns_per_complex_multiply`` puts the machine's speed in proportion.

Usage: ``python bench/bench_sim_air.py [--seconds S] [--block-ms MS] [--radios 2,8] [--layouts L] [--repeat K]``
(layouts: ``co-channel,adjacent,one-way``; default the first two).
Prints one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from radio.base import RadioSettings  # noqa: E402
from radio.guard import TxGuard  # noqa: E402
from radio.sim import SimConfig, SimulatedAir  # noqa: E402

RATE = 7.68e6
LO = 2.45e9
TARGET_RATIO_2_RADIOS = 5.0


def lte_frame(rng: np.random.Generator, rms_dbfs: float = -12.0) -> np.ndarray:
    """10 ms of LTE-5-like CP-OFDM at 7.68 MS/s: complex64 [76800], ``rms_dbfs`` mean power."""
    nfft, used = 512, 300
    bins = np.concatenate([np.arange(-used // 2, 0), np.arange(1, used // 2 + 1)]) % nfft
    symbols = []
    for _slot in range(20):
        for k in range(7):
            grid = np.zeros(nfft, np.complex128)
            grid[bins] = (rng.choice([-7, -5, -3, -1, 1, 3, 5, 7], used)
                          + 1j * rng.choice([-7, -5, -3, -1, 1, 3, 5, 7], used))
            body = np.fft.ifft(grid)
            cp = 40 if k == 0 else 36
            symbols.append(np.concatenate([body[-cp:], body]))
    x = np.concatenate(symbols)
    x *= 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(np.abs(x) ** 2))
    return x.astype(np.complex64)


def reference_multiply_ns() -> float:
    """CPU ns per element of an in-cache complex64 multiply on this machine (best of several), to put the figures
    in proportion on a busy or slow machine."""
    a = np.ones(32768, np.complex64)
    out = np.empty_like(a)
    best = math.inf
    for _ in range(7):
        c0 = time.process_time()
        for _ in range(200):
            np.multiply(a, a, out=out)
        best = min(best, (time.process_time() - c0) / 200 / a.size)
    return best * 1e9


def run(n_radios: int, layout: str, air_seconds: float, block: int, repeat: int, seed: int = 0) -> dict:
    spacing = 5e6 if layout == "adjacent" else 0.0
    guard = TxGuard.from_config({"allowed_bands": [[2.3e9, 2.7e9]], "max_tx_gain_db": 0.0})
    air = SimulatedAir(SimConfig.from_table({"seed": seed}, "bench"))
    rng = np.random.default_rng(seed)
    radios = [air.radio(f"sim{i}", guard, RadioSettings(lo_hz=LO + i * spacing, rate_sps=RATE))
              for i in range(n_radios)]

    transmitters = radios[:1] if layout == "one-way" else radios
    receivers = radios[1:] if layout == "one-way" else radios
    t0 = time.perf_counter()
    for radio in transmitters:
        radio.transmit(lte_frame(rng), cyclic=True)
    for radio in receivers:  # first receive builds the per-link caches
        radio.receive(block)
    setup_s = time.perf_counter() - t0

    blocks = max(1, math.ceil(air_seconds * RATE / block))
    walls, cpus = [], []
    oversample = set()
    for _ in range(repeat):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(blocks):
            for radio in receivers:
                oversample.add(radio.receive(block).meta.extra["rx_oversample"])
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    wall, cpu = min(walls), min(cpus)

    samples = blocks * block * len(receivers)
    realtime = RATE * len(receivers)
    return {
        "radios": n_radios, "transmitting": len(transmitters), "receiving": len(receivers), "layout": layout, "lo_spacing_hz": spacing, "air_seconds": blocks * block / RATE,
        "block_samples": block, "repeats": repeat, "rx_oversample": sorted(oversample), "setup_s": round(setup_s, 3),
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "wall_s_median": round(sorted(walls)[len(walls) // 2], 3),
        "samples_per_s": round(samples / wall), "samples_per_s_cpu": round(samples / cpu),
        "realtime_ratio": round(samples / wall / realtime, 2), "realtime_ratio_cpu": round(samples / cpu / realtime, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="air time simulated per case (s)")
    parser.add_argument("--block-ms", type=float, default=10.0, help="samples per receive call, in ms of air")
    parser.add_argument("--radios", default="2,8", help="comma-separated radio counts")
    parser.add_argument("--layouts", default="co-channel,adjacent", help="co-channel, adjacent and/or one-way")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case; the best is reported")
    args = parser.parse_args()
    block = int(round(args.block_ms * 1e-3 * RATE))
    results = [run(int(n), layout, args.seconds, block, max(1, args.repeat))
               for layout in args.layouts.split(",") for n in args.radios.split(",")]
    two = [r for r in results if r["radios"] == 2 and r["layout"] == "co-channel"]
    pair = [r for r in results if r["radios"] == 2 and r["layout"] == "one-way"]
    report = {
        "benchmark": "simulated air throughput", "rate_sps": RATE, "threads": 1,
        "reference_ns_per_complex_multiply": round(reference_multiply_ns(), 3),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "results": results,
        "target": {"radios": 2, "layout": "co-channel", "realtime_ratio": TARGET_RATIO_2_RADIOS,
                   "met_wall": bool(two) and two[0]["realtime_ratio"] >= TARGET_RATIO_2_RADIOS,
                   "met_cpu": bool(two) and two[0]["realtime_ratio_cpu"] >= TARGET_RATIO_2_RADIOS},
        "target_one_way": {"radios": 2, "layout": "one-way", "realtime_ratio": TARGET_RATIO_2_RADIOS,
                           "met_wall": bool(pair) and pair[0]["realtime_ratio"] >= TARGET_RATIO_2_RADIOS,
                           "met_cpu": bool(pair) and pair[0]["realtime_ratio_cpu"] >= TARGET_RATIO_2_RADIOS},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
