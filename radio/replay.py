"""A receive-only radio that serves a SigMF recording as its receive stream.

Its sample rate is the recording's (any other is a configuration error); the LO may be set to anything (the
recording does not change) and is reported in the metadata. At the end of the recording it wraps around when
``loop`` is true, otherwise it raises RadioDisconnected. It never transmits: ``transmit`` is refused after the
TX guard, so the guard's behaviour is the same as on every other backend.
"""

from __future__ import annotations

import os

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception, RxMetadata
from radio.errors import RadioConfigError, RadioDisconnected
from radio.guard import TxGuard
from radio.recording import Recording, read_sigmf


class ReplayRadio(Radio):
    """Serves ``path`` (a SigMF recording) as received samples."""

    driver = "replay"

    def __init__(self, name: str, path: str | os.PathLike[str], guard: TxGuard | None = None, *, loop: bool = True):
        self.recording: Recording = read_sigmf(path)
        rec = self.recording
        super().__init__(name, guard, RadioSettings(lo_hz=rec.lo_hz or 2.45e9, rate_sps=rec.rate_sps,
                                                    bandwidth_hz=rec.rate_sps, tx_gain_db=-90.0, rx_gain_db=0.0))
        self.loop = loop
        self._position = 0

    @property
    def capabilities(self) -> Capabilities:
        rate = self.recording.rate_sps
        return Capabilities(
            lo_hz=Range(0.0, 100e9, unit="Hz"), rate_sps=Range(rate, rate, unit="S/s"),
            bandwidth_hz=Range(0.0, rate, unit="Hz"), tx_gain_db=Range(-90.0, -90.0, unit="dB"),
            rx_gain_db=Range(-100.0, 100.0, unit="dB"), dac_bits=0, adc_bits=32)

    def identity(self) -> dict[str, object]:
        return {**super().identity(), "path": self.recording.meta_path, "samples": int(self.recording.samples.size)}

    def _apply(self, settings: RadioSettings) -> None:
        """Nothing to tune: the recording is what it is; the settings only label the metadata."""

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        raise RadioConfigError(f"radio {self.name!r} replays a recording and cannot transmit")

    def _stop_transmit(self) -> None:
        """Never transmits, so there is nothing to stop."""

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        data = self.recording.samples
        if not self.loop and self._position + num_samples > data.size:
            raise RadioDisconnected(
                f"recording {self.recording.meta_path} ends after {data.size} samples "
                f"({data.size - self._position} left, {num_samples} asked)")
        idx = (self._position + np.arange(num_samples)) % data.size
        out = data[idx].astype(np.complex64)
        t0 = self._position / self.recording.rate_sps
        self._position += num_samples
        clip = int(np.count_nonzero((np.abs(out.real) >= 1.0) | (np.abs(out.imag) >= 1.0)))
        meta = RxMetadata(radio=self.name, lo_hz=self.settings.rx_lo, rate_sps=self.recording.rate_sps,
                          gain_db=self.settings.rx_gain_db, timestamp_s=t0, clip_count=clip,
                          extra={"recording": self.recording.meta_path})
        return Reception(out, meta)
