"""Overhead of the job runner's executors: the same tiny training jobs on the local process pool and on Ray.

    .venv/bin/python bench/bench_jobs.py [--jobs 16] [--workers 2] [--episodes 2] [--out results.json]

Every round runs the same jobs (``testbed repro dtn``-style training runs of a tiny network, ``--episodes`` each,
distinct seeds) on ``--workers`` CPUs; Ray is a local instance started here with that many CPUs. Prints one JSON
object:

* ``ray_init_s``: ``import ray`` + ``ray.init`` (what a Ray executor adds once per call);
* ``rounds``: per executor and round, the wall time, jobs/hour per core and the mean time of a job inside its
  worker. Ray's first round includes starting its worker processes; the second reuses them;
* ``noop``: the same for jobs that do nothing (``abs``): the dispatch cost alone, per job;
* ``overhead``: per job, in core-seconds, ``(wall_ray - wall_local) * workers / jobs`` for the training jobs
  (cold and warm Ray rounds) and for the no-op jobs, and the wall-time ratios Ray / local;
* ``identical``: whether both executors returned exactly the same results.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

from benchlib import emit_result
from agents.jobs import Job, run_jobs
from testbed.repro import dtn as repro_dtn


def _jobs(episodes: int, count: int) -> list[Job]:
    profile = dataclasses.replace(repro_dtn.QUICK, seeds=tuple(range(count)), episodes=episodes, slots_per_episode=4,
                                  num_envs=1, eval_episodes=1, eval_slots=4, curve_points=1)
    specs = [repro_dtn.RunSpec(scheme="proposed-sync", network=(2, 4, 4), phi=0.4, seed=seed, ota_every=2)
             for seed in range(count)]
    return [Job(f"seed{spec.seed}", repro_dtn.run_spec, (profile, spec), {"seed": spec.seed}) for spec in specs]


def _round(label: str, jobs: list[Job], executor: str, workers: int) -> tuple[dict[str, float], dict[str, object]]:
    inside: list[float] = []
    started = time.perf_counter()
    report = run_jobs(jobs, executor, workers=workers, on_result=lambda job, value, seconds: inside.append(seconds))
    wall = time.perf_counter() - started
    if report.failures:
        raise RuntimeError(report.failures[0].describe())
    row = {"round": label, "executor": executor, "jobs": len(jobs), "wall_s": wall,
           "jobs_per_hour_per_core": len(jobs) / wall / workers * 3600,
           "mean_job_s_in_worker": statistics.fmean(inside)}
    return row, report.results


def _pure(results: dict[str, object]) -> dict[str, object]:
    return {key: {k: v for k, v in value.items() if k not in ("seconds", "sps")} if isinstance(value, dict) else value
            for key, value in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--noop-jobs", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    jobs = _jobs(args.episodes, args.jobs)
    noops = [Job(f"noop{i}", abs, (-i,), {}) for i in range(args.noop_jobs)]
    rows = []
    local_row, local_results = _round("local", jobs, "local", args.workers)
    rows.append(local_row)
    local_noop, _ = _round("local noop", noops, "local", args.workers)

    started = time.perf_counter()
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - started
    try:
        cold, ray_results = _round("ray cold", jobs, "ray", args.workers)
        warm, _ = _round("ray warm", jobs, "ray", args.workers)
        ray_noop, _ = _round("ray noop", noops, "ray", args.workers)
        version = ray.__version__
    finally:
        ray.shutdown()
    rows += [cold, warm]

    def per_job(ray_row: dict[str, float], local: dict[str, float]) -> float:
        return (ray_row["wall_s"] - local["wall_s"]) * args.workers / local["jobs"]

    result = {
        "machine": {"python": platform.python_version(), "ray": version, "cpus": os.cpu_count(),
                    "load_1min": os.getloadavg()[0], "processor": platform.processor() or platform.machine()},
        "settings": vars(args),
        "ray_init_s": ray_init,
        "rounds": rows,
        "noop": [local_noop, ray_noop],
        "overhead": {
            "ray_cold_core_s_per_job": per_job(cold, local_row),
            "ray_warm_core_s_per_job": per_job(warm, local_row),
            "noop_local_ms_per_job": 1e3 * local_noop["wall_s"] * args.workers / args.noop_jobs,
            "noop_ray_ms_per_job": 1e3 * ray_noop["wall_s"] * args.workers / args.noop_jobs,
            "wall_ratio_ray_cold_over_local": cold["wall_s"] / local_row["wall_s"],
            "wall_ratio_ray_warm_over_local": warm["wall_s"] / local_row["wall_s"],
        },
        "identical": _pure(local_results) == _pure(ray_results),
    }
    emit_result(result, args.out)


if __name__ == "__main__":
    main()
