"""Helpers of the run-command tests: the CLI in-process and as a subprocess, the run directory's metrics, the
store's run row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testbed.cli import main
from testbed.store import Store

WAIT_S = 300.0                  # bound of every wait on a subprocess (the machine may be slow)


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr). Built-in testbed config, no default store."""
    result = CliRunner().invoke(main, list(args), env={"TESTBED_CONFIG": None, "TESTBED_STORE": None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def metric_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The complete lines of metrics.jsonl (a line still being written is left out)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def physical_in_replay(metrics: dict[str, Any]) -> int:
    """Physical transitions held by the replay memory after an episode (from its metrics line)."""
    return round(metrics["replay/size"] * metrics["replay/physical_fraction"])


def experiences(store_path: Path, run_id: str) -> list[dict[str, Any]]:
    with Store(store_path) as store:
        return list(store.experiences(run_id))


def run_row(store_path: Path, run_id: str) -> dict[str, Any] | None:
    with Store(store_path) as store:
        return store.run(run_id)


def spawn(args: list[str], cwd: Path, name: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TESTBED_CONFIG", "TESTBED_STORE")}
    return subprocess.Popen([sys.executable, "-m", "testbed.cli", *args], cwd=cwd, env=env,
                            stdout=open(cwd / f"{name}.out", "w"), stderr=open(cwd / f"{name}.err", "w"))


def wait_until(proc: subprocess.Popen, ready, what: str, cwd: Path, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}: {(cwd / f'{name}.err').read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_S} s")
        time.sleep(0.1)
