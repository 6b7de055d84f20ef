"""``testbed bench``: run one of the benchmarks in ``bench/`` (each prints one JSON object)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import click

from testbed.cliutil import BadInput, emit, handle_errors, json_option

__all__ = ["bench"]

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
"""The benchmarks of a source checkout (they are not part of an installed wheel)."""
DESCRIPTION_CHARS = 100
"""Longest description ``bench --list`` shows (the docstring's first sentence, cut at a word)."""


def _available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def describe(name: str) -> str:
    """The first sentence of benchmark ``name``'s module docstring, on one line (read, not imported: a benchmark
    may import what is not installed); "" when it has none."""
    source = (BENCH_DIR / f"bench_{name}.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0]
    if len(sentence) > DESCRIPTION_CHARS:
        sentence = sentence[:DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."
    return sentence


@click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks.")
@json_option
@click.pass_context
@handle_errors
def bench(ctx: click.Context, name: str | None, list_only: bool, as_json: bool) -> None:
    """Run benchmark NAME (e.g. ofdm, sim_air, run); extra arguments go to it. See BENCHMARKS.md.

    A benchmark always prints one JSON object as its last line; ``--json`` matters only with ``--list``."""
    names = _available()
    if not names:
        raise BadInput(f"no benchmarks found in {BENCH_DIR}: they come with a source checkout of the project")
    if list_only or name is None:
        width = max(len(n) for n in names)
        emit({"benchmarks": names, "descriptions": {n: describe(n) for n in names}, "directory": str(BENCH_DIR)},
             as_json, lambda r: click.echo("\n".join(f"{n:<{width}}  {r['descriptions'][n]}" for n in names)))
        return
    if name not in names:
        raise BadInput(f"benchmark {name!r}; allowed: {', '.join(names)}")
    code = subprocess.call([sys.executable, str(BENCH_DIR / f"bench_{name}.py"), *ctx.args])
    if code:
        raise click.exceptions.Exit(code)
