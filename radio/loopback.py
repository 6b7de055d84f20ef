"""An ideal loopback radio: what it transmits it receives, sample for sample, for unit tests of the PHY.

Time model: the radio keeps a receive stream position. A cyclic buffer plays forever, phase-aligned with the
stream (sample ``n`` of the stream is buffer sample ``(n - start) mod len``); a one-shot buffer starts at the
current stream position. ``delay_samples`` (integer) and ``noise_rms`` (complex AWGN per sample) let tests move
away from the ideal without bringing in the simulated front ends.
"""

from __future__ import annotations

import time

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception, RxMetadata
from radio.guard import TxGuard


class LoopbackRadio(Radio):
    """Ideal loopback: no impairments unless ``noise_rms`` or ``delay_samples`` are set."""

    driver = "loopback"

    def __init__(self, name: str = "loop0", guard: TxGuard | None = None, settings: RadioSettings | None = None,
                 *, delay_samples: int = 0, noise_rms: float = 0.0, seed: int = 0):
        super().__init__(name, guard, settings)
        self.delay_samples = int(delay_samples)
        self.noise_rms = float(noise_rms)
        self._rng = np.random.default_rng(seed)
        self._buffer: np.ndarray | None = None
        self._cyclic = False
        self._start = 0
        self._position = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            lo_hz=Range(70e6, 6e9, unit="Hz"), rate_sps=Range(1e3, 61.44e6, unit="S/s"),
            bandwidth_hz=Range(200e3, 56e6, unit="Hz"), tx_gain_db=Range(-90.0, 0.0, unit="dB"),
            rx_gain_db=Range(-10.0, 73.0, unit="dB"), dac_bits=32, adc_bits=32, loopback=True)

    def _apply(self, settings: RadioSettings) -> None:
        """An ideal loopback has no hardware to tune."""

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        self._buffer = samples.copy()
        self._cyclic = cyclic
        self._start = self._position + self.delay_samples

    def _stop_transmit(self) -> None:
        self._buffer = None

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        n = np.arange(self._position, self._position + num_samples)
        out = np.zeros(num_samples, np.complex64)
        if self._buffer is not None:
            rel = n - self._start
            if self._cyclic:
                valid = rel >= 0
                out[valid] = self._buffer[rel[valid] % self._buffer.size]
            else:
                valid = (rel >= 0) & (rel < self._buffer.size)
                out[valid] = self._buffer[rel[valid]]
        if self.noise_rms > 0:
            out += (self.noise_rms / np.sqrt(2) * (self._rng.standard_normal(num_samples)
                                                   + 1j * self._rng.standard_normal(num_samples))).astype(np.complex64)
        self._position += num_samples
        meta = RxMetadata(radio=self.name, lo_hz=self.settings.rx_lo, rate_sps=self.settings.rate_sps,
                          gain_db=self.settings.rx_gain_db, timestamp_s=time.time())
        return Reception(out, meta)
