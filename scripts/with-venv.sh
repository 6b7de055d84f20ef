#!/usr/bin/env bash
# Run a command inside the project's virtual environment, creating or updating it first, in the caller's directory.
#   bash scripts/with-venv.sh testbed --help
#   bash scripts/with-venv.sh python -m pytest
# torch is installed on its own first, pinned to the CPU build, so that nothing later pulls a CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TESTBED_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
torch_pin="torch==2.13.0"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.testbed-installed"
want="$(cat "$root/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  constraints="$(mktemp)"
  trap 'rm -f "$constraints"' EXIT
  echo "$torch_pin" > "$constraints"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q "$torch_pin" >&2
  "$venv/bin/python" -m pip install -q -c "$constraints" -e "$root[test]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
# The caller's working directory is kept, so relative paths on the command line mean what the caller meant.
exec "$@"
