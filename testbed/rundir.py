"""What ``testbed run`` (both policies) does to a run directory before and around its work.

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

import fcntl
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import click

from radio.errors import TxGuardRefused
from testbed.cliutil import BadInput

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
