"""What the benchmarks share: printing the one JSON result (the last output, which ``testbed bench`` relays) and
writing it to ``--out``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["emit_result"]


def emit_result(result: Any, out: str | None = None, indent: int | None = 2) -> None:
    """Print ``result`` as JSON on stdout and, when ``out`` names a file, write the same text there."""
    text = json.dumps(result, indent=indent)
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
