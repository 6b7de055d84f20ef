"""Benchmark of ``testbed run`` on simulated radios: OTA slots per second and the share of wall time spent OTA.

Runs ``testbed run --radios sim0,sim1`` (the defaults unless ``--episodes``/``--ota-every`` are given) with a
calibration made beforehand (so the run measures the loop, not the calibration), then reads the run's metrics:
the OTA slots per second of the OTA episodes, the twin slots per second of the twin episodes in the same run (the
peer), and the share of the run's wall time spent over the air (training OTA episodes + OTA evaluation).
Target: OTA at most half of a default run's wall time. Prints one JSON object.

    python bench/bench_run.py [--episodes Z] [--ota-every Z_k] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--ota-every", type=int, default=None)
    parser.add_argument("--out", default=None, help="Directory for the run and its store (default: a temporary one).")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-run-"))
    env = {**os.environ, "TESTBED_STORE": str(work / "store.sqlite")}
    cli = [sys.executable, "-m", "testbed.cli"]
    t0 = time.perf_counter()
    subprocess.run(cli + ["calibrate", "--radios", "sim0,sim1", "--json"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    calibration_s = time.perf_counter() - t0
    command = cli + ["run", "--radios", "sim0,sim1", "--run-dir", str(work / "run"), "--json"]
    if args.episodes is not None:
        command += ["--episodes", str(args.episodes)]
    if args.ota_every is not None:
        command += ["--ota-every", str(args.ota_every)]
    t0 = time.perf_counter()
    out = subprocess.run(command, check=True, env=env, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    summary = json.loads(out.strip().splitlines()[-1])
    metrics = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ota = [m for m in metrics if m["source"] == "physical"]
    twin = [m for m in metrics if m["source"] == "twin"]
    result = {
        "bench": "testbed run --radios sim0,sim1",
        "episodes": summary["episodes"], "ota_episodes": summary["ota_episodes"],
        "calibration_s": calibration_s, "run_wall_s": wall,
        "ota_share": summary["ota_share"],
        "ota_slots_per_s": sum(m["charts/sps"] for m in ota) / len(ota) if ota else None,
        "twin_slots_per_s": sum(m["charts/sps"] for m in twin) / len(twin) if twin else None,
        "evaluation": summary["evaluation"], "beats_maxp": summary["beats_maxp"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
