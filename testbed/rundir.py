"""What ``testbed run`` (both policies) does to a run directory before and around its work.

- :class:`RunDirectory`: the directory's files (docs/run-directory.md): creating and resuming, ``config.json``,
  ``metrics.jsonl`` (appended per episode, cut back to the checkpoint on resume), the checkpoint (written
  atomically), ``calibration.json``, ``evaluation.json``, ``summary.json``, ``report.html``, and the run's row and
  status in the store.
- :class:`StopFlag`: Ctrl-C asks the loop to stop after the slot or episode in flight; a second Ctrl-C aborts.
- :func:`versions`: the versions a run records.
- :func:`check_planned_transmissions`: every radio of a run is checked against the TX guard at the run's carrier,
  with the occupied bandwidth of the OFDM plan and the TX gain it will use, before anything is created, calibrated
  or trained; a refusal names the setting that decided it.
- :class:`RunLock`: one process at a time per run directory (``fcntl.flock`` on ``run.lock`` inside it, held for
  the command's life; the file names the holder: pid, host, start time). The kernel drops the lock of a killed
  process, so a run killed with SIGKILL is resumable at once.
- :func:`resume_conflicts` and :func:`finished_at`: what ``--resume`` refuses and when a run is already finished.
- :class:`ProgressLines`: one line on stderr per stage and every few episodes when stderr is not a terminal (a
  progress bar would print nothing useful into a log file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import signal
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import click

from radio.errors import TxGuardRefused
from testbed.cliutil import BadInput

if TYPE_CHECKING:
    from calibration.record import CalibrationRecord

LOCK_NAME = "run.lock"
DEFAULT_LO_HZ = 2.45e9
"""The run's carrier when neither ``--lo`` nor ``[defaults] lo_hz`` gives one (Hz)."""
PROGRESS_LINES = 20
"""About this many episode lines over a run when stderr is not a terminal (plus every over-the-air episode)."""


def run_carrier(lo_hz: float | None, cfg: Any) -> tuple[float, str]:
    """The run's LO (Hz) and where it came from (``--lo``, ``[defaults] lo_hz`` of the config, or the default),
    worded for messages."""
    if lo_hz is not None:
        value, source = float(lo_hz), "--lo"
    elif cfg is not None and cfg.defaults.get("lo_hz") is not None:
        value, source = float(cfg.defaults["lo_hz"]), f"[defaults] lo_hz of {cfg.source}"
    else:
        value, source = DEFAULT_LO_HZ, "the default carrier (set --lo or [defaults] lo_hz)"
    if not (math.isfinite(value) and value > 0):
        raise BadInput(f"{source} = {value!r}; allowed: a carrier frequency > 0 Hz")
    return value, source


def planned_occupied_bw_hz(numerology_name: str = "lte5") -> float:
    """Bandwidth around the LO (Hz) that the run's OFDM slots occupy: the carrier's RB grid, as the TX guard sees
    every transmission of the calibration and the over-the-air episodes."""
    from radio.ofdm import numerology
    from radio.ofdm.slot import Link, SlotPlan

    num = numerology(numerology_name)
    return SlotPlan(num, (Link("all", tuple(range(num.n_rb))),)).occupied_bw_hz


def check_planned_transmissions(cfg: Any, names: Iterable[str], lo_hz: float, lo_source: str,
                                numerology_name: str = "lte5") -> None:
    """Raise :class:`BadInput` (exit 2) unless every named radio that can transmit may transmit the run's carrier
    (``lo_hz`` Hz, the plan's occupied bandwidth) at its configured TX gain under ``cfg``'s TX guard.

    The message names the setting (``lo_source`` for the carrier, ``[defaults] tx_gain_db`` or the radios' default
    for the gain), the band the carrier occupies and the allowed bands.
    """
    from radio.base import RadioSettings

    occupied = planned_occupied_bw_hz(numerology_name)
    gain = RadioSettings(**cfg.defaults).tx_gain_db if cfg.defaults else RadioSettings().tx_gain_db
    gain_source = (f"[defaults] tx_gain_db of {cfg.source}" if "tx_gain_db" in cfg.defaults
                   else "the radios' default TX gain (set [defaults] tx_gain_db)")
    for name in names:
        if cfg.entry(name).driver == "replay":  # a recording never transmits
            continue
        rule = cfg.guard.rule_for(name)
        try:
            cfg.guard.check(name, lo_hz, occupied, gain)
        except TxGuardRefused as e:
            low, high = lo_hz - occupied / 2, lo_hz + occupied / 2
            in_band = any(b_lo <= low and high <= b_hi for b_lo, b_hi in rule.allowed_bands)
            setting = (f"TX gain {gain:g} dB from {gain_source} (maximum {rule.max_tx_gain_db:g} dB)" if in_band
                       else f"carrier {lo_hz / 1e6:.6g} MHz from {lo_source}")
            raise BadInput(f"{setting}: {e}; nothing was started") from None


class RunLock:
    """An exclusive lock on a run directory for as long as this object holds it (see the module docstring).

    Use as a context manager; acquiring raises :class:`BadInput` naming the holder when another process has it.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_lock_holder(self.path)
            os.close(fd)
            raise BadInput(f"run directory {self.path.parent} is in use by {describe_holder(holder)} "
                           f"(lock {self.path}); wait for that run to end, or stop it (Ctrl-C) and --resume "
                           f"{self.path.parent}") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(),
                                 "command": sys.argv}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_lock_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about the process that holds (or last held) it; {} when unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_holder(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "another process (its lock file is being written)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since}"


def lock_is_held(directory: Path) -> bool:
    """Whether a live process holds the run directory's lock (a killed run's lock is free)."""
    path = Path(directory) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def finished_at(directory: Path) -> float | None:
    """When the run in ``directory`` finished (Unix time of its summary), or None if it has not: no summary, or a
    summary of an interrupted evaluation."""
    path = Path(directory) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if summary.get("interrupted"):
        return None
    return path.stat().st_mtime


def finished_message(directory: Path, when: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    return f"run {directory} finished at {stamp}; nothing to do (use --reevaluate to evaluate again)"


def resume_conflicts(given: Mapping[str, tuple[Any, Any]]) -> list[str]:
    """``{flag: (given value or None, recorded value)}`` -> ``"FLAG VALUE (the run has RECORDED)"`` for every flag
    given with a value other than the recorded one."""
    return [f"{flag} {_show(value)} (the run has {_show(recorded)})" for flag, (value, recorded) in given.items()
            if value is not None and value != recorded]


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class ProgressLines:
    """Plain progress lines on stderr for logs (stderr not a terminal): stage changes, and an episode line every
    ``every`` episodes and for every over-the-air episode. Silent on a terminal (the progress bar shows it)."""

    def __init__(self, total_episodes: int, enabled: bool | None = None) -> None:
        self.enabled = (not sys.stderr.isatty()) if enabled is None else enabled
        self.total = total_episodes
        self.every = max(1, math.ceil(total_episodes / PROGRESS_LINES))
        self._started = time.monotonic()

    def stage(self, text: str) -> None:
        if self.enabled:
            click.echo(f"[{self._elapsed()}] {text}", err=True)

    def episode(self, episode: int, reward: float | None, phi: float | None, ota_share: float,
                over_the_air: bool) -> None:
        if not self.enabled:
            return
        if not (over_the_air or episode % self.every == 0 or episode == self.total):
            return
        parts = [f"episode {episode}/{self.total}" + (" (over the air)" if over_the_air else "")]
        if reward is not None:
            parts.append(f"reward {reward:.3f}")
        if phi is not None:
            parts.append(f"phi {phi:+.3f}")
        parts.append(f"OTA share {100 * ota_share:.0f} %")
        click.echo(f"[{self._elapsed()}] " + ", ".join(parts), err=True)

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self._started)
        return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def versions() -> dict[str, str]:
    """Python's and the main packages' versions, as a run records them in ``config.json``."""
    out = {"python": platform.python_version()}
    for pkg in ("testbed", "torch", "numpy", "scipy", "sionna-no-rt", "pyzmq"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


class StopFlag:
    """SIGINT sets the flag (the loop stops after the slot or episode in flight); a second SIGINT interrupts at
    once. Call it to read the flag; :meth:`installed` holds the handler for a ``with`` block."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.stop

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopFlag"]:
        def handler(signum: int, frame: Any) -> None:
            if self.stop:
                raise KeyboardInterrupt
            self.stop = True
            click.echo("stopping after this slot (Ctrl-C again to abort now)", err=True)

        self._previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, self._previous)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) whole or not at all (:func:`agents.checkpoint.atomic_write`)."""
    from agents.checkpoint import atomic_write

    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


class RunDirectory:
    """One run's directory and its row in the store (file layout: docs/run-directory.md).

    ``RunDirectory(path)`` names it; :meth:`enter` creates it and takes its :class:`RunLock` for the click
    command's life. Files are written whole: ``config.json``, ``summary.json`` and the checkpoint atomically;
    ``metrics.jsonl`` grows a line per episode and :meth:`truncate_metrics` cuts it back to a checkpoint.
    """

    CONFIG, METRICS, CHECKPOINT = "config.json", "metrics.jsonl", "checkpoint.pt"
    CALIBRATION, EVALUATION, SUMMARY, REPORT, POLICY = ("calibration.json", "evaluation.json", "summary.json",
                                                       "report.html", "policy.pt")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.run_id: str | None = None

    @classmethod
    def new_default(cls) -> "RunDirectory":
        """``runs/run-<local time>`` in the working directory."""
        return cls(Path("runs") / time.strftime("run-%Y%m%d-%H%M%S"))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    def enter(self, ctx: click.Context | None = None) -> "RunDirectory":
        """Create the directory and hold its lock until the click command ends (raises :class:`BadInput` when
        another process holds it); the abort handler learns the directory from ``ctx.meta``."""
        ctx = ctx or click.get_current_context()
        self.path.mkdir(parents=True, exist_ok=True)
        ctx.with_resource(RunLock(self.path))
        ctx.meta["testbed.run_dir"] = self.path
        return self

    # ---- config ----------------------------------------------------------------------------------------------------
    def has_config(self) -> bool:
        return (self.path / self.CONFIG).exists()

    def read_config(self) -> dict[str, Any]:
        """The resolved configuration the run recorded."""
        return json.loads((self.path / self.CONFIG).read_text(encoding="utf-8"))

    def write_config(self, resolved: Mapping[str, Any]) -> None:
        _write_atomically(self.path / self.CONFIG, json.dumps(resolved, indent=2, sort_keys=True, default=str))

    def recorded_carrier(self, resolved: Mapping[str, Any]) -> float:
        """The carrier (Hz) the run recorded; a run recorded without one used its calibration record's."""
        if resolved.get("lo_hz") is not None:
            return float(resolved["lo_hz"])
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            calibration = json.loads((self.path / self.CALIBRATION).read_text(encoding="utf-8"))
            return float(calibration["meta"]["settings"]["lo_hz"])
        return DEFAULT_LO_HZ

    # ---- metrics ---------------------------------------------------------------------------------------------------
    def append_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as stream:
            for row in rows:
                stream.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def clear_metrics(self) -> None:
        self.metrics_path.unlink(missing_ok=True)

    def truncate_metrics(self, last_episode: int) -> None:
        """Keep the lines of episodes up to ``last_episode`` and the lines of no episode (e.g. a calibration
        line); a line torn by a kill mid-write is dropped too. The episodes after a checkpoint play again."""
        truncate_metrics(self.metrics_path, last_episode)

    # ---- checkpoint, records ---------------------------------------------------------------------------------------
    def save_checkpoint(self, state: Mapping[str, Any]) -> Path:
        """Write a tensors-only checkpoint atomically (:func:`agents.checkpoint.atomic_save`)."""
        from agents.checkpoint import atomic_save

        return atomic_save(dict(state), self.checkpoint)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint (read tensors-only), or None when there is none."""
        from agents.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint) if self.checkpoint.exists() else None

    def write_calibration(self, record: "CalibrationRecord") -> None:
        """``calibration.json``: the record used (without its raw sweep points)."""
        _write_atomically(self.path / self.CALIBRATION, record.to_json(include_raw=False))

    def write_json(self, name: str, value: Any) -> Path:
        path = self.path / name
        _write_atomically(path, json.dumps(value, indent=2, default=str))
        return path

    def write_report(self, page: str) -> Path:
        path = self.path / self.REPORT
        _write_atomically(path, page)
        return path

    # ---- the store -------------------------------------------------------------------------------------------------
    def register(self, store: Any, resolved: dict[str, Any], calibration_id: int | None, resume: bool) -> str:
        """The run's id in the store, recorded as running.

        A new run takes the directory's name, or ``NAME-2``, ``NAME-3``... when another directory already uses it;
        an earlier start in this very directory that died before its first checkpoint is reset (its experiences
        dropped). A resumed run keeps its id (and is recorded now if it was killed before it was). The id is
        written into ``resolved["run_id"]``.
        """
        run_id = str(resolved.get("run_id") or self.path.name)
        here = str(self.path.resolve())
        if not resume:
            base, n = self.path.name, 1
            run_id = base
            while (row := store.run(run_id)) is not None and row["run_dir"] != here:
                n += 1
                run_id = f"{base}-{n}"
            if row is not None:
                store.delete_experiences_after(run_id, 0)
        resolved["run_id"] = self.run_id = run_id
        if store.run(run_id) is None:
            store.create_run(run_id, here, resolved, calibration_id)
        else:
            store.set_run_status(run_id, "running")
        return run_id


def truncate_metrics(path: Path, last_episode: int) -> None:
    """Keep the lines of ``path`` (metrics JSON lines) of episodes up to ``last_episode`` and those of no training
    episode (no ``episode``, or a ``calibration`` line of the phi probe); drop torn lines. Written atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if (not isinstance(row, dict) or row.get("calibration") or row.get("episode") is None
                or row["episode"] <= last_episode):
            kept.append(line)
    _write_atomically(path, "".join(line + "\n" for line in kept))
