"""Wall-clock latency of a call, as the reproductions and the benchmarks report it."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

__all__ = ["median_call_ms"]


def median_call_ms(call: Callable[[], Any], repeats: int, warmup: int = 10) -> float:
    """Median wall-clock time of ``call()`` over ``repeats`` timed calls after ``warmup`` untimed ones (ms)."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return 1e3 * statistics.median(samples)
