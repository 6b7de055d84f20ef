"""Fault injection: a radio wrapper that makes a well-behaved radio misbehave on a schedule, so the controller,
the remote server and the measurement code can be tested against the faults real radios have.

Configured per radio in the testbed config::

    [radios.sim0]
    driver = "sim"
    faults = {disconnect_after = 50, timeout_every = 7, overflow_every = 0, corrupt_every = 0, nan_every = 0}

Every count is of calls to the radio; 0 switches that fault off. The schedule is deterministic (it depends only
on the call counts and ``seed``), so a failing test repeats exactly.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from radio.base import Capabilities, Radio, Reception
from radio.errors import RadioConfigError, RadioDisconnected, RadioOverflow, RadioTimeout

_MAX_COUNT = 10 ** 9


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject and how often. Counts are of calls; 0 means never."""

    disconnect_after: int = 0
    """After this many calls (configure, transmit, stop_transmit, receive) the radio is gone: every later call
    raises RadioDisconnected, as an unplugged radio does."""
    down_for: int = 0
    """With ``disconnect_after``: the radio comes back after this many refused calls (an outage, as when a cable is
    replugged or a remote host restarts); 0: it never comes back."""
    timeout_every: int = 0
    """Every k-th receive raises RadioTimeout; no samples are consumed."""
    overflow_every: int = 0
    """Every k-th receive raises RadioOverflow; its samples are lost, so the next buffer is not contiguous."""
    corrupt_every: int = 0
    """Every k-th receive returns a buffer with a run of garbage samples (random I/Q within full scale), as after a
    DMA or USB transfer error; ``meta.extra["injected_fault"] = "corrupt"``."""
    nan_every: int = 0
    """Every k-th receive returns a buffer with a run of NaN samples (a broken driver or conversion);
    ``meta.extra["injected_fault"] = "nan"``."""
    seed: int = 0
    """Seed of where the garbage and NaN runs fall and what the garbage is."""

    @classmethod
    def from_table(cls, table: Any, where: str = "faults") -> "FaultPlan":
        """Parse a ``faults = {...}`` table; unknown keys and bad values raise RadioConfigError naming them."""
        if not isinstance(table, Mapping):
            raise RadioConfigError(f"{where} = {table!r}; allowed: a table such as {{disconnect_after = 50}}")
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for key, value in table.items():
            if key not in names:
                raise RadioConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(names)}")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
                raise RadioConfigError(f"{where}.{key} = {value!r}; allowed: an integer from 0 (off) to {_MAX_COUNT}")
            values[key] = value
        return cls(**values)

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "seed")

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class FaultyRadio(Radio):
    """``inner`` with the faults of ``plan`` injected. Same name, guard, capabilities and settings as ``inner``;
    attributes it does not define (``air``, ``hidden_truth`` of a simulated radio) are the inner radio's.

    The inner radio still checks everything itself (settings, TX guard): the wrapper only adds failures.
    ``calls`` counts contract calls; ``injected`` counts each fault injected so far.
    """

    def __init__(self, inner: Radio, plan: FaultPlan):
        super().__init__(inner.name, inner.guard, inner.settings)
        self.inner = inner
        self.plan = plan
        self.driver = inner.driver
        self.calls = 0
        self.receives = 0
        self.injected: dict[str, int] = {"disconnect": 0, "timeout": 0, "overflow": 0, "corrupt": 0, "nan": 0}
        self._rng = np.random.default_rng(plan.seed)
        self._gone = False
        self._back = False
        self._refused = 0
        self._count_lock = threading.Lock()  # a server may stop a transmission while a receive runs

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this class lacks; "inner" itself missing means construction failed.
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "faults": self.plan.as_dict()}

    def _count_call(self) -> None:
        with self._count_lock:
            self._count_call_locked()

    def _count_call_locked(self) -> None:
        if self._gone:
            self._refused += 1
            if self.plan.down_for and self._refused > self.plan.down_for:
                self._gone = False
                self._back = True
            else:
                raise RadioDisconnected(f"{self.name}: disconnected (injected after {self.plan.disconnect_after} "
                                        f"calls)")
        self.calls += 1
        if self.plan.disconnect_after and self.calls > self.plan.disconnect_after and not self._back:
            self._gone = True
            self._refused = 1
            self.injected["disconnect"] += 1
            raise RadioDisconnected(f"{self.name}: disconnected (injected after {self.plan.disconnect_after} calls)")

    # ---- backend hooks ----------------------------------------------------------------------------------------
    def _apply(self, settings: Any) -> None:
        self._count_call()
        self.inner.configure(settings)

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        self._count_call()
        self.inner.transmit(samples, cyclic=cyclic, occupied_bw_hz=self._tx_occupied_bw)

    def _stop_transmit(self) -> None:
        self._count_call()
        self.inner.stop_transmit()

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        self._count_call()
        self.receives += 1
        k, plan = self.receives, self.plan
        if plan.timeout_every and k % plan.timeout_every == 0:
            self.injected["timeout"] += 1
            raise RadioTimeout(f"{self.name}: no samples within {timeout_s:g} s (injected timeout, receive {k})")
        samples, meta = self.inner.receive(num_samples, timeout_s=timeout_s)
        if plan.overflow_every and k % plan.overflow_every == 0:
            self.injected["overflow"] += 1
            raise RadioOverflow(f"{self.name}: {num_samples} samples lost (injected overflow, receive {k})")
        fault = None
        if plan.corrupt_every and k % plan.corrupt_every == 0:
            fault = "corrupt"
        elif plan.nan_every and k % plan.nan_every == 0:
            fault = "nan"
        if fault is not None:
            samples = np.array(samples, dtype=np.complex64, copy=True)
            length = int(self._rng.integers(1, max(2, num_samples // 4 + 1)))
            start = int(self._rng.integers(0, num_samples - length + 1))
            if fault == "corrupt":
                garbage = self._rng.uniform(-1.0, 1.0, (length, 2)).astype(np.float32)
                samples[start:start + length] = garbage[:, 0] + 1j * garbage[:, 1]
            else:
                samples[start:start + length] = np.complex64(complex(np.nan, np.nan))
            self.injected[fault] += 1
            meta.extra = {**meta.extra, "injected_fault": fault, "injected_span": [start, start + length]}
        return Reception(samples, meta)

    def _close(self) -> None:
        self.inner.close()


__all__ = ["FaultPlan", "FaultyRadio"]
