"""One runner for many independent jobs: a local process pool (default) or a Ray cluster.

A job is a pure function of its arguments (its config and seed): whichever executor runs it, on whichever host,
it returns the same result, so a sweep or a reproduction gives the same numbers locally and on a cluster. The
runner reports each finished job as it completes (``on_result``), so that the caller can save it at once and a
killed call resumes with only the missing jobs; a job that raises is reported with its config and traceback and
does not stop the others.

Executors (:func:`parse_executor`):

* ``local``: ``workers`` forked processes on this host (in-process when ``workers`` is 1); no dependency.
* ``ray``: a Ray instance started on this host for the call (``workers`` CPUs), shut down afterwards.
* ``ray:auto``: join the Ray cluster already running on this host (``ray start --head`` / ``--address``).
* ``ray:HOST:PORT``: join the cluster whose head is at HOST:PORT.

Ray is imported only when a Ray executor runs (``pip install -e '.[cluster]'``). Every node of a cluster needs
the same project checkout and environment: jobs are sent as references to functions of this package.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

__all__ = ["CLUSTER_INSTALL_HINT", "EXECUTOR_FORMS", "ExecutorSpec", "ExecutorUnavailable", "Job", "JobFailure",
           "JobFiles", "JobProgress", "JobReport", "failure_summary", "import_ray", "job_key", "parse_executor",
           "run_jobs"]

EXECUTOR_FORMS = "local, ray (start a local Ray instance), ray:auto (join the running cluster) or ray:HOST:PORT"
"""The accepted forms of ``--executor``, quoted in error messages."""

CLUSTER_INSTALL_HINT = "pip install -e '.[cluster]'"
"""How to install the Ray executor's dependency."""

_ADDRESS = re.compile(r"^(auto|[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


class ExecutorUnavailable(ValueError):
    """The executor asked for cannot run here (Ray is not installed); the message says how to install it."""


@dataclass(frozen=True)
class ExecutorSpec:
    """Where jobs run: ``kind`` is ``"local"`` or ``"ray"``; ``address`` (Ray only) is ``None`` to start a local
    Ray instance, ``"auto"`` to join the cluster running on this host, or ``"HOST:PORT"``."""

    kind: str
    address: str | None = None

    def __str__(self) -> str:
        return self.kind if self.address is None else f"{self.kind}:{self.address}"


def parse_executor(text: str | ExecutorSpec) -> ExecutorSpec:
    """Parse ``--executor``: ``local``, ``ray``, ``ray:auto`` or ``ray:HOST:PORT``.

    Raises:
        ValueError: another form (the message names it and the allowed ones).
    """
    if isinstance(text, ExecutorSpec):
        return text
    value = text.strip()
    if value == "local":
        return ExecutorSpec("local")
    if value == "ray":
        return ExecutorSpec("ray")
    if value.startswith("ray:") and _ADDRESS.match(value[4:]):
        return ExecutorSpec("ray", value[4:])
    raise ValueError(f"--executor {text!r}; allowed: {EXECUTOR_FORMS}")


def job_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit identifier of a job's config (canonical JSON: key order and int/float of equal
    integers do not matter, so the same config always names the same saved result)."""
    def canonical(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): canonical(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [canonical(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class JobFiles:
    """Finished jobs kept on disk: one JSON file per job in ``directory``, named by the :func:`job_key` of its
    config and written whole or not at all, so that a killed sweep or reproduction keeps every job that finished.

    A saved file is the job's config with the result fields beside it; callers pick theirs by one config field
    (e.g. the budget or profile they ran with). Files that do not parse, or are not objects, are not theirs and
    are skipped.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def save(self, config: Mapping[str, Any], **result: Any) -> Path:
        """Write ``config`` with ``result``'s fields as ``directory/KEY.json``; returns the path."""
        from agents.checkpoint import atomic_write

        text = json.dumps({**config, **result}, default=float)
        return atomic_write(self.directory / f"{job_key(config)}.json",
                            lambda stream: stream.write(text.encode("utf-8")))

    def _saved(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(saved, dict):
                yield path, saved

    def matching(self, field: str, value: Any) -> Iterator[dict[str, Any]]:
        """The saved jobs whose config has ``field`` equal to ``value``, in file-name order."""
        return (saved for _, saved in self._saved() if saved.get(field) == value)

    def clear(self, field: str, value: Any) -> int:
        """Delete the saved jobs whose config has ``field`` equal to ``value``; returns how many."""
        removed = 0
        for path, saved in list(self._saved()):
            if saved.get(field) == value:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


@dataclass(frozen=True)
class Job:
    """One unit of work: ``function(*args)``, a module-level function so that it can be sent to another process
    or host by reference."""

    key: str
    """Unique within a call: how the result is saved and found again."""
    function: Callable[..., Any]
    args: tuple[Any, ...]
    config: Mapping[str, Any]
    """What the job computes, as plain JSON values (reported when it fails)."""
    label: str = ""
    """Short human name for progress lines (default: the key)."""


@dataclass(frozen=True)
class JobFailure:
    """A job that raised: its key, config, the exception's one-line description and the full traceback."""

    key: str
    label: str
    config: Mapping[str, Any]
    error: str
    traceback: str

    def describe(self) -> str:
        """Several lines: the job, its config as JSON, and the traceback."""
        return (f"job {self.label or self.key} failed: {self.error}\n  config: "
                f"{json.dumps(self.config, sort_keys=True, default=str)}\n" + self.traceback.rstrip())


@dataclass
class JobReport:
    """What a call of :func:`run_jobs` did."""

    results: dict[str, Any] = field(default_factory=dict)
    """Key -> result of every job that finished."""
    failures: list[JobFailure] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock time of the call."""
    executor: str = "local"

    @property
    def failed_keys(self) -> list[str]:
        return [f.key for f in self.failures]


def failure_summary(failures: Sequence[JobFailure], total: int) -> str:
    """One line naming the failed jobs: ``"2 of 12 jobs failed: LABEL (KEY), ..."``."""
    names = ", ".join(f"{f.label} ({f.key})" if f.label != f.key else f.key for f in failures)
    return f"{len(failures)} of {total} jobs failed: {names}"


class JobProgress:
    """Progress of a set of jobs on a stream (stderr): a tqdm bar with done / running / failed and the ETA on a
    terminal, else one line per finished job with the same counts.

    Args:
        label: what the jobs are (``"sweep lr"``).
        stream: where to write (default stderr).
        tty: force the bar (True) or the lines (False); default: whether ``stream`` is a terminal.
    """

    def __init__(self, label: str, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = 0
        self.slots = 1
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._bar: Any = None

    def start(self, total: int, slots: int) -> None:
        """``total`` jobs are about to run, at most ``slots`` at a time."""
        self.total, self.slots, self.done, self.failed = total, max(1, slots), 0, 0
        self.started = time.monotonic()
        if self.tty and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.label, file=self.stream, leave=False, unit="job")
            self._bar.set_postfix_str(self._counts(), refresh=True)

    @property
    def running(self) -> int:
        return min(self.slots, self.total - self.done)

    def eta_s(self) -> float | None:
        """Seconds left at the throughput so far (None before the first job finishes)."""
        if not self.done:
            return None
        return (time.monotonic() - self.started) / self.done * (self.total - self.done)

    def _counts(self) -> str:
        return f"running {self.running}, failed {self.failed}"

    def finished(self, label: str, ok: bool, seconds: float) -> None:
        """A job finished (``ok``: without an exception) after ``seconds`` of wall-clock time in its worker."""
        self.done += 1
        self.failed += not ok
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(self._counts(), refresh=True)
            return
        eta = self.eta_s()
        eta_text = "-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        print(f"{self.label}: [{self.done}/{self.total}] {'done' if ok else 'FAILED'} {label} ({seconds:.1f} s); "
              f"running {self.running}, failed {self.failed}, ETA {eta_text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ------------------------------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------------------------------

def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any, float]:
    """Run one job where it lands; an exception becomes a value so that one failure never loses the others.

    Returns ``(True, result, seconds)`` or ``(False, (error, traceback), seconds)``."""
    started = time.perf_counter()
    try:
        return True, function(*args), time.perf_counter() - started
    except Exception as e:  # noqa: BLE001 - reported with its traceback, the other jobs go on
        return False, (f"{type(e).__name__}: {e}", traceback.format_exc()), time.perf_counter() - started


def _call_indexed(item: tuple[int, Callable[..., Any], tuple[Any, ...]]) -> tuple[int, tuple[bool, Any, float]]:
    index, function, args = item
    return index, _call(function, args)


def _run_local(jobs: Sequence[Job], workers: int, max_tasks_per_worker: int | None
               ) -> Iterator[tuple[int, tuple[bool, Any, float]]]:
    items = [(i, job.function, job.args) for i, job in enumerate(jobs)]
    if workers <= 1 or len(jobs) <= 1:
        for item in items:
            yield _call_indexed(item)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(min(workers, len(jobs)), maxtasksperchild=max_tasks_per_worker) as pool:
        yield from pool.imap_unordered(_call_indexed, items)


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ExecutorUnavailable` naming the install command."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(f"--executor ray needs Ray, which is not installed; install it with "
                                  f"{CLUSTER_INSTALL_HINT} (or use --executor local)") from None
    return ray


def _ray_slots(ray: Any) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - only used for the progress line
        return 1


def _run_ray(jobs: Sequence[Job], spec: ExecutorSpec, workers: int, ready: Callable[[int], None]
             ) -> Iterator[tuple[int, tuple[bool, Any, float]]]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if spec.address is None:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=spec.address, log_to_driver=False)
            except ConnectionError as e:
                raise ExecutorUnavailable(
                    f"--executor {spec}: cannot join the Ray cluster ({e}); start its head with `ray start --head` "
                    "(and its token, if Ray asks for one, on this host too), or use --executor ray to start a local "
                    "instance") from None
    try:
        ready(_ray_slots(ray))
        # One CPU per job (the jobs pin torch to one thread); no retries: a job is deterministic, so a second try
        # of an exception would raise it again, and a lost worker is reported like any other failure.
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        pending = {remote.remote(job.function, job.args): i for i, job in enumerate(jobs)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - the worker died (out of memory, node lost): one failed job
                outcome = (False, (f"{type(e).__name__}: {e}", traceback.format_exc()), math.nan)
            yield index, outcome
    finally:
        if started_here:
            ray.shutdown()


def run_jobs(jobs: Sequence[Job], executor: str | ExecutorSpec = "local", *, workers: int = 1,
             on_result: Callable[[Job, Any, float], None] | None = None,
             on_failure: Callable[[JobFailure], None] | None = None,
             progress: JobProgress | None = None, max_tasks_per_worker: int | None = 8) -> JobReport:
    """Run ``jobs`` on ``executor`` and collect their results as they finish, in whatever order.

    Args:
        jobs: the jobs (distinct keys); longest first keeps parallel workers busy until the end.
        executor: ``local``, ``ray``, ``ray:auto``, ``ray:HOST:PORT`` (see :func:`parse_executor`).
        workers: local processes, or the CPUs of a Ray instance started for this call (ignored when joining a
            cluster, whose CPUs decide).
        on_result: called in this process as ``on_result(job, result, seconds)`` the moment a job finishes (save
            it there: a killed call then loses only the jobs in flight).
        on_failure: called with each :class:`JobFailure` as it happens.
        progress: where progress goes (see :class:`JobProgress`).
        max_tasks_per_worker: local pool only: a worker process is replaced after this many jobs (bounds what
            a leaky job can hold).

    Returns:
        A :class:`JobReport`; a failed job is in ``failures``, never raised.

    Raises:
        ValueError: a malformed executor, workers < 1, or duplicate keys.
        ExecutorUnavailable: Ray was asked for and is not installed.
    """
    spec = parse_executor(executor)
    if workers < 1:
        raise ValueError(f"workers={workers}; allowed: an integer >= 1")
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate job keys {duplicated[:5]}: every job needs its own key")
    if spec.kind == "ray":
        import_ray()   # before anything starts: a missing Ray is bad input, not a failed job
    started = time.perf_counter()
    report = JobReport(executor=str(spec))

    def ready(slots: int) -> None:
        if progress is not None:
            progress.start(len(jobs), slots)

    if spec.kind == "local":
        ready(min(workers, max(len(jobs), 1)))
        outcomes = _run_local(jobs, workers, max_tasks_per_worker)
    else:
        outcomes = _run_ray(jobs, spec, workers, ready)
    try:
        for index, (ok, value, seconds) in outcomes:
            job = jobs[index]
            if ok:
                report.results[job.key] = value
                if on_result is not None:
                    on_result(job, value, seconds)
            else:
                error, trace = value
                failure = JobFailure(job.key, job.label or job.key, dict(job.config), error, trace)
                report.failures.append(failure)
                if on_failure is not None:
                    on_failure(failure)
            if progress is not None:
                progress.finished(job.label or job.key, ok, seconds)
    finally:
        outcomes.close()
        if progress is not None:
            progress.close()
    report.seconds = time.perf_counter() - started
    return report
