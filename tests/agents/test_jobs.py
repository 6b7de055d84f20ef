"""The job runner: executors, failures that do not lose other jobs, saved jobs and resume, progress, and the same
results on the local pool and on Ray."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys

import pytest

from agents.jobs import (CLUSTER_INSTALL_HINT, ExecutorSpec, ExecutorUnavailable, Job, JobProgress, failure_summary,
                         job_key, parse_executor, run_jobs)
from testbed.repro import dtn as repro_dtn

TINY = dataclasses.replace(repro_dtn.QUICK, seeds=(0, 1), episodes=2, slots_per_episode=2, num_envs=1,
                           eval_episodes=1, eval_slots=3, curve_points=1, workers=2)


def _square(x: float) -> float:
    return x * x


def _explode(x: float) -> float:
    raise RuntimeError(f"job with x={x} cannot run")


def _numbers(outcome: dict) -> dict:
    """What a reproduction reports, without the wall-clock fields (time and slots per second)."""
    runs = {json.dumps(dataclasses.asdict(spec), sort_keys=True): {k: v for k, v in value.items()
                                                                   if k not in ("seconds", "sps")}
            for spec, value in outcome["runs"].items()}
    return {"runs": runs, "baselines": {str(k): v for k, v in outcome["baselines"].items()}}


def test_executor_forms_and_bad_ones():
    assert parse_executor("local") == ExecutorSpec("local")
    assert parse_executor("ray") == ExecutorSpec("ray", None)
    assert parse_executor("ray:auto") == ExecutorSpec("ray", "auto")
    assert parse_executor("ray:10.1.2.3:6379") == ExecutorSpec("ray", "10.1.2.3:6379")
    assert str(parse_executor("ray:head.lab:6379")) == "ray:head.lab:6379"
    for bad in ("dask", "ray:", "ray:head", "ray:head:port", "local:4"):
        with pytest.raises(ValueError, match=r"--executor .*allowed: local, ray .*ray:auto.*ray:HOST:PORT"):
            parse_executor(bad)


def test_job_key_is_a_function_of_the_config_only():
    a = {"dqn": {"episodes": 4, "learning_rate": 0.005}, "seed": 1, "physical": {"phi": 1.0}}
    b = {"seed": 1, "physical": {"phi": 1}, "dqn": {"learning_rate": 0.005, "episodes": 4}}
    assert job_key(a) == job_key(b) and len(job_key(a)) == 16
    assert job_key(a) != job_key({**a, "seed": 2})


def test_a_failed_job_is_reported_with_its_config_and_traceback_and_the_others_finish():
    jobs = [Job(f"sq{i}", _square, (float(i),), {"x": i}) for i in range(4)]
    jobs.insert(2, Job("boom", _explode, (7.0,), {"x": 7}, "explode x=7"))
    saved, failures = {}, []
    for workers in (1, 2):
        saved.clear()
        failures.clear()
        report = run_jobs(jobs, "local", workers=workers, on_result=lambda job, value, s: saved.update({job.key: value}),
                          on_failure=failures.append)
        assert report.results == {f"sq{i}": float(i * i) for i in range(4)} == saved
        assert [f.key for f in report.failures] == ["boom"] == [f.key for f in failures]
        failure = report.failures[0]
        assert failure.config == {"x": 7} and "RuntimeError: job with x=7.0 cannot run" == failure.error
        assert "in _explode" in failure.traceback and "Traceback" in failure.traceback
        assert '"x": 7' in failure.describe()
    assert failure_summary(report.failures, 5) == "1 of 5 jobs failed: explode x=7 (boom)"


def test_duplicate_keys_and_bad_worker_counts_are_refused():
    job = Job("same", _square, (1.0,), {})
    with pytest.raises(ValueError, match="duplicate job keys"):
        run_jobs([job, job])
    with pytest.raises(ValueError, match="workers=0; allowed: an integer >= 1"):
        run_jobs([job], workers=0)


def test_without_ray_the_ray_executor_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError
    with pytest.raises(ExecutorUnavailable, match=r"pip install -e '\.\[cluster\]'") as caught:
        run_jobs([Job("a", _square, (1.0,), {})], "ray:auto")
    assert CLUSTER_INSTALL_HINT in str(caught.value)


def test_progress_lines_count_done_running_failed_and_give_an_eta():
    stream = io.StringIO()
    jobs = [Job(f"sq{i}", _square, (float(i),), {}) for i in range(3)] + [Job("boom", _explode, (0.0,), {})]
    run_jobs(jobs, workers=1, progress=JobProgress("squares", stream=stream, tty=False))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("squares: [1/4] done sq0") and "running 1, failed 0, ETA " in lines[0]
    assert lines[-1].startswith("squares: [4/4] FAILED boom") and lines[-1].endswith("running 0, failed 1, ETA 00:00:00")


def test_repro_jobs_are_saved_as_they_finish_and_a_rerun_runs_only_the_missing_one(tmp_path):
    job_dir = tmp_path / "jobs"
    first = repro_dtn.run_all(TINY, only=["reward"], job_dir=job_dir)
    assert first["computed"] == 4 and not first["failures"]
    files = sorted(job_dir.glob("*.json"))
    assert len(files) == 4
    # As after a kill: one job's file is missing; the rerun trains that job alone and gets the same numbers.
    files[1].unlink()
    known = repro_dtn.load_jobs(job_dir, TINY)
    assert len(known["runs"]) == 3
    again = repro_dtn.run_all(TINY, only=["reward"], known=known, job_dir=job_dir)
    assert again["computed"] == 1
    assert _numbers(again) == _numbers(first)
    # Another budget's jobs are not taken for this one's; clearing removes this budget's files only.
    assert repro_dtn.load_jobs(job_dir, dataclasses.replace(TINY, episodes=3)) == {"runs": {}, "baselines": {}}
    assert repro_dtn.clear_jobs(job_dir, TINY) == 4 and not list(job_dir.glob("*.json"))


def test_the_process_pool_and_one_process_give_bit_identical_runs():
    pooled = repro_dtn.run_all(TINY, only=["reward"])
    inline = repro_dtn.run_all(dataclasses.replace(TINY, workers=1), only=["reward"])
    assert _numbers(pooled) == _numbers(inline)
    assert all(math.isfinite(run["final"]) for run in pooled["runs"].values())


# ------------------------------------------------------------------------------------------------------------------
# Ray (skipped without it)
# ------------------------------------------------------------------------------------------------------------------

def test_ray_gives_the_same_numbers_as_the_local_pool(ray_instance):
    local = repro_dtn.run_all(TINY, only=["reward"])
    on_ray = repro_dtn.run_all(TINY, only=["reward"], executor="ray")
    assert on_ray["executor"] == "ray" and on_ray["computed"] == 4
    assert _numbers(on_ray) == _numbers(local)
    assert ray_instance.is_initialized()     # a running instance is joined, not shut down by the runner


def test_a_failed_job_on_ray_does_not_lose_the_others(ray_instance):
    jobs = [Job("four", math.sqrt, (4.0,), {"x": 4.0}), Job("negative", math.sqrt, (-1.0,), {"x": -1.0}),
            Job("nine", math.sqrt, (9.0,), {"x": 9.0})]
    report = run_jobs(jobs, "ray")
    assert report.results == {"four": 2.0, "nine": 3.0}
    assert [(f.key, f.error, f.config) for f in report.failures] == [("negative", "ValueError: math domain error",
                                                                      {"x": -1.0})]
