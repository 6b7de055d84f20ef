"""The results page (docs/RESULTS.md): each reproduction owns one marked section and leaves the others alone."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["figures_link", "replace_section"]


def figures_link(figures_dir: Path, results_path: Path) -> str:
    """How the page refers to the figures directory: relative to the page where possible."""
    try:
        return os.path.relpath(figures_dir, results_path.parent)
    except ValueError:  # another drive on Windows
        return str(figures_dir)


def replace_section(results_path: Path, begin: str, end: str, section: str) -> None:
    """Write ``section`` (which starts with ``begin`` and ends with ``end``) into ``results_path``: in place of the
    marked section already there, else appended; the rest of the page is kept as it is."""
    results_path.parent.mkdir(parents=True, exist_ok=True)
    existing = results_path.read_text(encoding="utf-8") if results_path.exists() else "# Results\n\n"
    if begin in existing and end in existing:
        head, rest = existing.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = existing.rstrip("\n") + "\n\n" + section
    results_path.write_text(text, encoding="utf-8")
