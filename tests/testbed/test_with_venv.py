"""``scripts/with-venv.sh`` runs the command in the caller's directory, so relative paths a user gives
(``analyze my.sigmf-meta``, ``capture --out mycap``) mean what the user meant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "with-venv.sh"


def test_the_command_runs_in_the_callers_directory(tmp_path):
    stamp = Path(sys.prefix) / ".testbed-installed"
    if not stamp.exists():
        pytest.skip(f"not running inside the environment with-venv.sh made ({stamp} is absent)")
    env = {**os.environ, "TESTBED_VENV": sys.prefix}
    out = subprocess.run(["bash", str(SCRIPT), "python", "-c", "import os; print(os.getcwd())"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600, check=True).stdout
    assert Path(out.strip().splitlines()[-1]).resolve() == tmp_path.resolve()
