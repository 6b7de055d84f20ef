"""ADALM-Pluto through pyadi-iio (``adi``), imported lazily so the rest of the project runs without it.

What this class enforces that pyadi-iio itself does not:
- RX gain is applied in ``manual`` gain-control mode only (pyadi-iio silently ignores ``rx_hardwaregain_chan0``
  in any AGC mode), and read back to make sure it took;
- a TX buffer is destroyed before a new one is pushed (pyadi-iio refuses to push over a cyclic buffer and refuses
  to change ``tx_cyclic_buffer`` while one exists);
- TX samples are scaled to int16 after the contract's clipping, with a peak check: pyadi-iio casts with
  ``astype(int)`` into an int16 array, which would wrap a value beyond +-32767 to the opposite sign;
- RX samples come back as 12-bit ADC codes in int16 (-2048..2047) and are scaled to full scale 1.0.
"""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception, RxMetadata
from radio.errors import RadioConfigError, RadioDisconnected, RadioFault, RadioTimeout
from radio.guard import TxGuard

TX_FULL_SCALE = 32767.0
"""int16 code for digital full scale 1.0 (the AD936x DAC uses the 12 MSBs of the 16-bit word)."""
RX_FULL_SCALE = 2048.0
"""12-bit ADC code for full scale 1.0 (codes are sign-extended into int16)."""
_DISCONNECT_ERRNOS = {errno.ENODEV, errno.EPIPE, errno.ECONNRESET, errno.ENOENT, errno.EIO, errno.ECONNREFUSED}


def _import_adi() -> ModuleType:
    try:
        import adi  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RadioConfigError(
            f"driver 'pluto' needs pyadi-iio and libiio ({e}); install with: pip install -e '.[pluto]' "
            "and apt-get install libiio0") from None
    return adi


def _fault(what: str, err: BaseException) -> RadioFault:
    code = getattr(err, "errno", None)
    if code == errno.ETIMEDOUT:
        return RadioTimeout(f"{what}: timed out ({err})")
    if code in _DISCONNECT_ERRNOS:
        return RadioDisconnected(f"{what}: device gone ({err})")
    return RadioFault(f"{what}: {err}")


class PlutoRadio(Radio):
    """One ADALM-Pluto (AD9363; ``extended_range`` for the 70 MHz-6 GHz / 56 MHz firmware setting)."""

    driver = "pluto"

    def __init__(self, name: str, uri: str = "ip:192.168.2.1", guard: TxGuard | None = None,
                 settings: RadioSettings | None = None, *, extended_range: bool = False,
                 adi_module: ModuleType | Any | None = None):
        super().__init__(name, guard, settings)
        self.uri = uri
        self.extended_range = extended_range
        adi = adi_module if adi_module is not None else _import_adi()
        try:
            self._sdr = adi.Pluto(uri=uri)
        except Exception as e:  # noqa: BLE001 - libiio raises bare Exceptions and OSErrors alike
            raise RadioDisconnected(f"pluto {name!r} at {uri} does not answer: {e}") from None
        self._rx_size = 0

    @property
    def capabilities(self) -> Capabilities:
        lo = Range(70e6, 6e9, unit="Hz") if self.extended_range else Range(325e6, 3.8e9, unit="Hz")
        bw = Range(200e3, 56e6, unit="Hz") if self.extended_range else Range(200e3, 20e6, unit="Hz")
        return Capabilities(
            lo_hz=lo, rate_sps=Range(521e3, 61.44e6, unit="S/s"), bandwidth_hz=bw,
            tx_gain_db=Range(-89.75, 0.0, 0.25, "dB"), rx_gain_db=Range(0.0, 71.0, 1.0, "dB"),
            dac_bits=12, adc_bits=12, has_timestamp=False, has_temperature=True, loopback=True,
            max_buffer_samples=2**22)

    def identity(self) -> dict[str, Any]:
        ident = {**super().identity(), "uri": self.uri}
        ctx = getattr(self._sdr, "ctx", None) or getattr(self._sdr, "_ctx", None)  # older pyadi-iio: _ctx
        attrs = getattr(ctx, "attrs", None)
        if isinstance(attrs, dict):
            ident["serial"] = attrs.get("hw_serial")
        return ident

    def temperature_c(self) -> float | None:
        """AD936x die temperature from the ``temp0`` channel of ad9361-phy (millidegrees)."""
        try:
            return float(self._sdr._ctrl.find_channel("temp0").attrs["input"].value) / 1000.0
        except Exception:  # noqa: BLE001 - firmware without the sensor
            return None

    def _apply(self, s: RadioSettings) -> None:
        sdr = self._sdr
        try:
            sdr.sample_rate = int(round(s.rate_sps))
            sdr.rx_rf_bandwidth = int(round(s.bandwidth_hz))
            sdr.tx_rf_bandwidth = int(round(s.bandwidth_hz))
            sdr.tx_lo = int(round(s.lo_hz))
            sdr.rx_lo = int(round(s.rx_lo))
            sdr.gain_control_mode_chan0 = "manual"
            sdr.rx_hardwaregain_chan0 = float(s.rx_gain_db)
            sdr.tx_hardwaregain_chan0 = float(s.tx_gain_db)
            got_rx = float(sdr.rx_hardwaregain_chan0)
            got_tx = float(sdr.tx_hardwaregain_chan0)
        except OSError as e:
            raise _fault(f"pluto {self.name!r} configure", e) from None
        if abs(got_rx - s.rx_gain_db) > 0.5 or abs(got_tx - s.tx_gain_db) > 0.25:
            raise RadioFault(f"pluto {self.name!r} did not take the gains: asked rx {s.rx_gain_db:g} dB / "
                             f"tx {s.tx_gain_db:g} dB, reads back rx {got_rx:g} / tx {got_tx:g}")

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        codes = np.round(samples.astype(np.complex128) * TX_FULL_SCALE)
        peak = max(float(np.max(np.abs(codes.real))), float(np.max(np.abs(codes.imag))))
        if peak > TX_FULL_SCALE:
            raise RadioFault(f"pluto {self.name!r}: int16 peak {peak:g} would wrap; refusing to send")
        try:
            self._sdr.tx_destroy_buffer()
            self._sdr.tx_cyclic_buffer = bool(cyclic)
            self._sdr.tx(codes)
        except OSError as e:
            raise _fault(f"pluto {self.name!r} transmit", e) from None

    def _stop_transmit(self) -> None:
        try:
            self._sdr.tx_destroy_buffer()
        except OSError as e:
            raise _fault(f"pluto {self.name!r} stop transmit", e) from None

    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        sdr = self._sdr
        try:
            if num_samples != self._rx_size:
                # pyadi-iio sizes the RX buffer when it creates it: a new size needs a new buffer.
                sdr.rx_destroy_buffer()
                sdr.rx_buffer_size = num_samples
                self._rx_size = num_samples
            ctx = getattr(sdr, "ctx", None) or getattr(sdr, "_ctx", None)
            if ctx is not None and hasattr(ctx, "set_timeout"):
                ctx.set_timeout(int(timeout_s * 1000))
            raw = np.asarray(sdr.rx())
        except OSError as e:
            raise _fault(f"pluto {self.name!r} receive", e) from None
        if raw.size != num_samples:
            raise RadioFault(f"pluto {self.name!r} returned {raw.size} samples, {num_samples} asked")
        clip = int(np.count_nonzero((raw.real >= RX_FULL_SCALE - 1) | (raw.real <= -RX_FULL_SCALE)
                                    | (raw.imag >= RX_FULL_SCALE - 1) | (raw.imag <= -RX_FULL_SCALE)))
        out = (raw / RX_FULL_SCALE).astype(np.complex64)
        meta = RxMetadata(radio=self.name, lo_hz=self.settings.rx_lo, rate_sps=self.settings.rate_sps,
                          gain_db=self.settings.rx_gain_db, clip_count=clip, temperature_c=self.temperature_c())
        return Reception(out, meta)

    def _close(self) -> None:
        for call in ("tx_destroy_buffer", "rx_destroy_buffer"):
            try:
                getattr(self._sdr, call)()
            except Exception:  # noqa: BLE001 - closing a radio that is already gone
                pass
