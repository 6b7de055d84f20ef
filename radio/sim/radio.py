"""A simulated radio: the Radio contract on top of a shared :class:`~radio.sim.air.SimulatedAir`.

The radio itself holds nothing but its name and settings; the air owns its front-end model, its transmissions and
its receive stream, so every radio on one air hears every other one.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception
from radio.guard import TxGuard


class AirBackend(Protocol):
    """What a :class:`SimRadio` calls on the air it is attached to; :class:`~radio.sim.air.SimulatedAir` provides
    it. Declared here so this module does not import the air (the air imports this module to create radios)."""

    lock: threading.RLock

    def identity(self) -> dict[str, Any]: ...
    def radio_fingerprint(self, name: str) -> str: ...
    def _radio_bits(self, name: str) -> tuple[int, int]: ...
    def _radio_truth(self, name: str) -> dict[str, Any]: ...
    def _apply(self, name: str, settings: RadioSettings) -> None: ...
    def _start_emission(self, name: str, samples: np.ndarray, cyclic: bool) -> None: ...
    def _stop_emission(self, name: str) -> None: ...
    def _receive(self, name: str, n: int) -> Reception: ...
    def _unregister(self, name: str) -> None: ...


class SimRadio(Radio):
    """One simulated radio with Pluto-like capabilities (70 MHz-6 GHz, 65.1 kS/s-61.44 MS/s, TX gain -89.75 to
    0 dB in 0.25 dB steps, RX gain -3 to 71 dB) and the front end of its ``[sim]`` parameters.

    Create it with :meth:`SimulatedAir.radio`. Its transmissions pass the same TX guard as a real radio's; a
    refused transmission never reaches the air.
    """

    driver = "sim"

    def __init__(self, air: AirBackend, name: str, guard: TxGuard | None = None,
                 settings: RadioSettings | None = None):
        super().__init__(name, guard, settings)
        self._air = air
        self._lock = air.lock
        bits = air._radio_bits(name)
        self._caps = Capabilities(
            lo_hz=Range(70e6, 6e9, unit="Hz"),
            rate_sps=Range(65.1e3, 61.44e6, unit="S/s"),
            bandwidth_hz=Range(200e3, 56e6, unit="Hz"),
            tx_gain_db=Range(-89.75, 0.0, 0.25, unit="dB"),
            rx_gain_db=Range(-3.0, 71.0, 1.0, unit="dB"),
            dac_bits=bits[0], adc_bits=bits[1],
            has_timestamp=True, has_temperature=True, loopback=True, max_buffer_samples=2 ** 24)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def air(self) -> Any:
        """The :class:`~radio.sim.air.SimulatedAir` this radio transmits into and receives from."""
        return self._air

    def identity(self) -> dict[str, Any]:
        """Name, driver, the air (kind, seed) and ``fingerprint``: a hash of this radio's resolved parameters, the
        air's and those of its links (:meth:`SimulatedAir.radio_fingerprint`), so another ``[sim]`` config or seed
        gives another identity."""
        return {"name": self.name, "driver": self.driver, "air": self._air.identity(),
                "fingerprint": self._air.radio_fingerprint(self.name)}

    def hidden_truth(self) -> dict[str, Any]:
        """FOR TESTS ONLY: the impairment parameters this radio was built with (its resolved ``[sim]`` parameters,
        its drawn ppm, LO-leakage phase, phase jitter) and its links. Calibration code must never call this: it
        has to estimate these from samples, as on hardware."""
        return self._air._radio_truth(self.name)

    # ---- backend hooks ----------------------------------------------------------------------------------------
    # The air is one shared state: each call runs whole under the air's lock. A simulated receive computes and
    # never waits, so a call that waits for one waits at most that long.
    def _apply(self, settings: RadioSettings) -> None:
        with self._lock:
            self._air._apply(self.name, settings)

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        with self._lock:
            self._air._start_emission(self.name, samples, cyclic)

    def _stop_transmit(self) -> None:
        with self._lock:
            self._air._stop_emission(self.name)

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        with self._lock:
            return self._air._receive(self.name, num_samples)

    def _close(self) -> None:
        with self._lock:
            self._air._unregister(self.name)


__all__ = ["AirBackend", "SimRadio"]
