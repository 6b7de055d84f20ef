"""Self-contained HTML reports of a run directory.

A run's ``report.html`` carries its figures inside it (PNG data URIs) and links only what lies in the run directory
(``calibration/report.html``, a copy of the calibration's report with its figures embedded too), so a run directory
copied or moved elsewhere still shows everything. :func:`t_interval` gives the spread of an evaluation over its
episodes.
"""

from __future__ import annotations

import base64
import html
import math
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from calibration.record import CalibrationRecord

CALIBRATION_DIR = "calibration"
"""Where a run directory keeps the copy of its calibration's report."""

_LOCAL_IMG = re.compile(r'<img src="(?!data:)([^"]+)"')


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of the PNG at ``path``."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figures_html(directory: Path, figures: Sequence[tuple[str, str]]) -> str:
    """``<figure>`` elements for ``(file name in directory, caption)``, each image embedded."""
    return "".join(f'<figure><img src="{png_data_uri(directory / name)}" alt="{html.escape(name)}">'
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, caption in figures)


def embed_local_images(page: str, base: Path) -> str:
    """``page`` with every ``<img src="FILE">`` relative to ``base`` replaced by the file's data URI; an image file
    that is missing becomes its name in brackets."""

    def embed(match: re.Match[str]) -> str:
        path = base / html.unescape(match.group(1))
        if path.suffix.lower() != ".png" or not path.is_file():
            return f'<img alt="[{match.group(1)} missing]"'
        return f'<img src="{png_data_uri(path)}" alt="{match.group(1)}"'

    return _LOCAL_IMG.sub(embed, page)


def copy_calibration_report(calibration: "CalibrationRecord | None", run_dir: Path) -> str | None:
    """Copy the stored report of ``calibration`` (its ``report["html"]``) into ``run_dir/calibration/report.html``
    with its figures embedded; returns the link relative to ``run_dir``, or None when the record has no report or
    it is no longer where the store wrote it."""
    report = calibration.report if calibration is not None else {}
    source = Path(report["html"]) if report.get("html") else None
    if source is None or not source.is_file():
        return None
    target = run_dir / CALIBRATION_DIR
    target.mkdir(exist_ok=True)
    page = embed_local_images(source.read_text(encoding="utf-8"), source.parent)
    (target / "report.html").write_text(page, encoding="utf-8")
    return f"{CALIBRATION_DIR}/report.html"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of ``values`` (one per evaluation episode) with its Student-t confidence interval.

    Returns ``{"n", "mean", "low", "high", "episode_values"}``; ``low``/``high`` are None for fewer than two values
    (no spread to estimate). Same unit as ``values``.
    """
    from scipy import stats

    xs = [float(v) for v in values]
    n = len(xs)
    mean = statistics.fmean(xs) if xs else math.nan
    low = high = None
    if n >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(xs) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"n": n, "mean": mean, "low": low, "high": high, "episode_values": xs}


def spread_rows(spread: Mapping[str, Mapping[str, Any]]) -> str:
    """Table rows (policy, mean, 95 % CI, n, per-episode values) of :func:`t_interval` results by policy."""
    rows = []
    for label, s in spread.items():
        ci = "-" if s["low"] is None else f"{s['low']:.3f} to {s['high']:.3f}"
        values = ", ".join(f"{v:.3f}" for v in s["episode_values"])
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{s['mean']:.3f}</td><td>{ci}</td><td>{s['n']}</td>"
                    f"<td>{values}</td></tr>")
    return ("<table><tr><th>policy</th><th>mean</th><th>95 % CI of the mean</th><th>n episodes</th>"
            "<th>per episode</th></tr>" + "".join(rows) + "</table>")
