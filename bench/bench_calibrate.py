"""Wall time of a calibration session on two simulated radios, per sweep, against a plain OFDM link run of the
same number of analysed slots measured in the same process.

The session is :func:`calibration.session.run_calibration` on ``sim0`` and ``sim1`` of one simulated air with the
default ``[sim]`` front ends (what ``testbed calibrate --radios sim0,sim1`` runs, without storing the record or
writing the report). Each sweep is timed where the session calls it (the module's sweep functions are wrapped
for the run, nothing else changes), so the per-sweep wall and process-CPU times add up to the session's; "fit" is
the rest (least-squares fits and the record). ``slots_analysed`` counts the session's calls of the OFDM receiver.

The peer is :func:`radio.ofdm.run_link` (``sim0`` sending the calibration's full-band QPSK 1/2 slot to ``sim1``,
decoding included) for ``slots_analysed`` slots: what the same air and receiver cost without the calibration's
extra captures and fits. Both run after one warm-up slot (imports, LDPC code construction), in the order
calibration then link, ``--repeat`` times; the best of each is reported along with the median wall time, and
``ratio`` is the best calibration wall time over the best link wall time. Target: the default session within
60 s on 2 cores.

Usage: ``python bench/bench_calibrate.py [--settings default|quick] [--repeat K] [--seed S]``. Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np

import calibration.session as session
from calibration.session import run_calibration
from calibration.settings import CalibrationSettings
from radio.guard import TxGuard
from radio.ofdm import build_slot, receive_slot, run_link
from radio.sim import SimConfig, SimulatedAir

TARGET_S = 60.0
SWEEPS = ("evm", "leakage", "mcs", "aclr")
GUARD = {"allowed_bands": [[2.4e9, 2.4835e9]], "max_tx_gain_db": 0}


def settings_named(name: str) -> CalibrationSettings:
    if name == "default":
        return CalibrationSettings()
    return CalibrationSettings.at_depth(quick=True)


def open_radios(seed: int) -> dict[str, Any]:
    air = SimulatedAir(SimConfig.from_table({}, "bench"), seed=seed)
    guard = TxGuard.from_config(GUARD)
    return {n: air.radio(n, guard) for n in ("sim0", "sim1")}


class Timers:
    """Wraps the session's sweep functions and its receiver call for one run; restores them on exit."""

    def __init__(self) -> None:
        self.sweeps: dict[str, dict[str, float]] = {}
        self.slots = 0
        self._saved: dict[str, Callable[..., Any]] = {}

    def __enter__(self) -> "Timers":
        for name in SWEEPS:
            attr = f"_{name}_sweep"
            if hasattr(session, attr):
                self._saved[attr] = getattr(session, attr)
                setattr(session, attr, self._timed(name, getattr(session, attr)))
        self._saved["receive_slot"] = session.receive_slot

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.slots += 1
            return self._saved["receive_slot"](*args, **kwargs)

        session.receive_slot = counted
        return self

    def _timed(self, name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            w, c = time.perf_counter(), time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                got = self.sweeps.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
                got["wall_s"] += time.perf_counter() - w
                got["cpu_s"] += time.process_time() - c
        return timed

    def __exit__(self, *exc: Any) -> None:
        for attr, f in self._saved.items():
            setattr(session, attr, f)


def warm_up(seed: int) -> None:
    """One slot through the whole chain, so that neither timed case pays the imports and code construction."""
    radios = open_radios(seed)
    plan = session.full_band_plan("lte5", 0.0)
    run_link([(radios["sim0"], plan)], radios["sim1"], 1, lo_hz=2.45e9)
    receive_slot(build_slot(plan, 0).waveform, plan, 0, decode=False)


def time_calibration(settings: CalibrationSettings, seed: int) -> dict[str, Any]:
    radios = open_radios(seed)
    total: list[int] = []
    with Timers() as timers:
        w, c = time.perf_counter(), time.process_time()
        record = run_calibration(radios, settings, on_total=total.append)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    swept = {k: {"wall_s": round(v["wall_s"], 2), "cpu_s": round(v["cpu_s"], 2)} for k, v in timers.sweeps.items()}
    swept["fit"] = {"wall_s": round(wall - sum(v["wall_s"] for v in timers.sweeps.values()), 2),
                    "cpu_s": round(cpu - sum(v["cpu_s"] for v in timers.sweeps.values()), 2)}
    return {"wall_s": wall, "cpu_s": cpu, "points": total[0] if total else None, "slots_analysed": timers.slots,
            "dropped": sum(1 for n in record.notes if n.startswith("dropped")), "sweeps": swept}


def time_link(n_slots: int, seed: int) -> dict[str, float]:
    radios = open_radios(seed)
    plan = session.full_band_plan("lte5", 0.0)
    w, c = time.perf_counter(), time.process_time()
    result = run_link([(radios["sim0"], plan)], radios["sim1"], n_slots, lo_hz=2.45e9)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    stats = result.stats["cal"]
    return {"wall_s": wall, "cpu_s": cpu, "slots": stats.slots, "bler": 1 - stats.blocks_ok / max(stats.blocks, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", choices=("default", "quick"), default="default",
                        help="The session's sweeps: the defaults, or those of `testbed calibrate --quick`.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each case; the best is reported.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated air.")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}; allowed: >= 1")
    settings = settings_named(args.settings)
    load_before = os.getloadavg()
    warm_up(args.seed)
    cals, links = [], []
    for _ in range(args.repeat):
        cals.append(time_calibration(settings, args.seed))
        links.append(time_link(cals[-1]["slots_analysed"], args.seed))
    best_cal = min(cals, key=lambda r: r["wall_s"])
    best_link = min(links, key=lambda r: r["wall_s"])
    report = {
        "benchmark": "calibration session, 2 simulated radios",
        "settings": args.settings,
        "wall_s": round(best_cal["wall_s"], 2),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in cals), 2),
        "cpu_s": round(best_cal["cpu_s"], 2),
        "points": best_cal["points"],
        "dropped_points": best_cal["dropped"],
        "slots_analysed": best_cal["slots_analysed"],
        "sweeps": best_cal["sweeps"],
        "target_s": TARGET_S,
        "meets_target": best_cal["wall_s"] <= TARGET_S,
        "peer_run_link": {"slots": best_link["slots"], "wall_s": round(best_link["wall_s"], 2),
                          "wall_s_median": round(statistics.median(r["wall_s"] for r in links), 2),
                          "cpu_s": round(best_link["cpu_s"], 2), "bler": round(best_link["bler"], 4)},
        "ratio_calibration_to_link": round(best_cal["wall_s"] / best_link["wall_s"], 2),
        "repeat": args.repeat,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
                    "load_avg_1m_before": round(load_before[0], 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "numpy": np.__version__},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
