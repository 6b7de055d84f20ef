"""A stand-in for pyadi-iio's ``adi`` module with the behaviours of a real ADALM-Pluto that matter to the backend.

Reproduced from pyadi-iio and the ad9361 IIO driver:
- out-of-range attribute writes fail with OSError(EINVAL) (the driver rejects them);
- ``rx_hardwaregain_chan0`` writes are silently ignored unless ``gain_control_mode_chan0 == "manual"``;
- ``tx()`` raises when a cyclic buffer was already pushed, and ``tx_cyclic_buffer`` cannot change while a TX
  buffer exists (both until ``tx_destroy_buffer()``);
- ``tx()`` converts with ``astype(int)`` into an int16 array, so codes beyond +-32767 wrap around;
- the RX buffer is sized when it is created: changing ``rx_buffer_size`` takes effect after ``rx_destroy_buffer()``;
- ``rx()`` returns complex values of 12-bit ADC codes (-2048..2047).
The RX stream is the TX buffer looped back through an attenuator (a cable), plus a little noise.
"""

from __future__ import annotations

import errno
from typing import Any, Callable

import numpy as np

UNREACHABLE_URIS = {"ip:192.0.2.1"}  # TEST-NET-1: nothing answers there


class _Attr:
    def __init__(self, value: str):
        self.value = value


class _Channel:
    def __init__(self, attrs: dict[str, str]):
        self.attrs = {k: _Attr(v) for k, v in attrs.items()}


class _Ctrl:
    def __init__(self, temperature_mdeg: str):
        self._temp = _Channel({"input": temperature_mdeg})

    def find_channel(self, name: str, output: bool = False) -> _Channel | None:
        return self._temp if name == "temp0" else None


class _RxAdc:
    """The ``cf-ad9361-lpc`` device: only the kernel block count the backend sets."""

    def __init__(self) -> None:
        self.kernel_buffers = 4

    def set_kernel_buffers_count(self, count: int) -> None:
        if count < 1:
            raise OSError(errno.EINVAL, f"Invalid argument: kernel buffers count {count}")
        self.kernel_buffers = int(count)


class _Ctx:
    def __init__(self) -> None:
        self.attrs = {"hw_serial": "104473dc59930009ffff1f00c6a7f94ae0"}
        self.timeout_ms = 0

    def set_timeout(self, ms: int) -> None:
        self.timeout_ms = ms


def _einval(what: str, value: Any) -> OSError:
    return OSError(errno.EINVAL, f"Invalid argument: {what}={value}")


class Pluto:
    """Fake ``adi.Pluto``."""

    cable_loss_db = 50.0
    noise_codes = 1.0
    fail_rx_with: BaseException | None = None

    def __init__(self, uri: str = "ip:192.168.2.1"):
        if uri in UNREACHABLE_URIS:
            raise Exception(f"No device found at {uri}")  # what libiio's context creation raises
        self.uri = uri
        self.ctx = _Ctx()
        self._ctrl = _Ctrl("38500")
        self._rxadc = _RxAdc()
        self._sample_rate = 30720000
        self._rx_lo = self._tx_lo = 2400000000
        self._rx_bw = self._tx_bw = 18000000
        self._gain_mode = "slow_attack"
        self._rx_gain = 40.0
        self._tx_gain = -10.0
        self._cyclic = False
        self._txbuf: np.ndarray | None = None
        self.rx_buffer_size = 1024
        self._rxbuf_size: int | None = None
        self.sent: list[np.ndarray] = []
        self._rng = np.random.default_rng(1)
        self._rx_pos = 0
        self.rx_source: Callable[[int], np.ndarray] | None = None

    # --- attributes with the driver's ranges ------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @sample_rate.setter
    def sample_rate(self, value: int) -> None:
        if not 520833 <= value <= 61440000:
            raise _einval("sampling_frequency", value)
        self._sample_rate = int(value)

    def _lo(self, value: int, what: str) -> int:
        if not 325000000 <= value <= 3800000000:
            raise _einval(what, value)
        return int(value)

    @property
    def rx_lo(self) -> int:
        return self._rx_lo

    @rx_lo.setter
    def rx_lo(self, value: int) -> None:
        self._rx_lo = self._lo(value, "rx_lo")

    @property
    def tx_lo(self) -> int:
        return self._tx_lo

    @tx_lo.setter
    def tx_lo(self, value: int) -> None:
        self._tx_lo = self._lo(value, "tx_lo")

    @property
    def rx_rf_bandwidth(self) -> int:
        return self._rx_bw

    @rx_rf_bandwidth.setter
    def rx_rf_bandwidth(self, value: int) -> None:
        if not 200000 <= value <= 56000000:
            raise _einval("rf_bandwidth", value)
        self._rx_bw = int(value)

    @property
    def tx_rf_bandwidth(self) -> int:
        return self._tx_bw

    @tx_rf_bandwidth.setter
    def tx_rf_bandwidth(self, value: int) -> None:
        if not 200000 <= value <= 56000000:
            raise _einval("rf_bandwidth", value)
        self._tx_bw = int(value)

    @property
    def gain_control_mode_chan0(self) -> str:
        return self._gain_mode

    @gain_control_mode_chan0.setter
    def gain_control_mode_chan0(self, value: str) -> None:
        if value not in ("manual", "slow_attack", "fast_attack", "hybrid"):
            raise _einval("gain_control_mode", value)
        self._gain_mode = value

    @property
    def rx_hardwaregain_chan0(self) -> float:
        return self._rx_gain

    @rx_hardwaregain_chan0.setter
    def rx_hardwaregain_chan0(self, value: float) -> None:
        if self._gain_mode == "manual":  # pyadi-iio ignores the write in AGC modes
            if not -3 <= value <= 71:
                raise _einval("hardwaregain", value)
            self._rx_gain = float(round(value))

    @property
    def tx_hardwaregain_chan0(self) -> float:
        return self._tx_gain

    @tx_hardwaregain_chan0.setter
    def tx_hardwaregain_chan0(self, value: float) -> None:
        if not -89.75 <= value <= 0:
            raise _einval("hardwaregain", value)
        self._tx_gain = round(value * 4) / 4

    # --- buffers --------------------------------------------------------------------------------------------
    @property
    def tx_cyclic_buffer(self) -> bool:
        return self._cyclic

    @tx_cyclic_buffer.setter
    def tx_cyclic_buffer(self, value: bool) -> None:
        if self._txbuf is not None:
            raise Exception("TX buffer already created, buffer must be destroyed then recreated to modify "
                            "tx_cyclic_buffer")
        self._cyclic = bool(value)

    def tx(self, data_np: np.ndarray) -> None:
        if self._txbuf is not None and self._cyclic:
            raise Exception("TX buffer has been submitted in cyclic mode. To push more data the tx buffer must be "
                            "destroyed first.")
        data = np.empty(2 * len(data_np), dtype=np.int16)
        with np.errstate(over="ignore"):
            data[0::2] = np.real(data_np).astype(int)  # wraps beyond int16, as pyadi-iio does
            data[1::2] = np.imag(data_np).astype(int)
        self._txbuf = data
        self.sent.append(data.copy())

    def tx_destroy_buffer(self) -> None:
        self._txbuf = None

    def rx_destroy_buffer(self) -> None:
        self._rxbuf_size = None

    def rx(self) -> np.ndarray:
        if self.fail_rx_with is not None:
            raise self.fail_rx_with
        if self._rxbuf_size is None:
            self._rxbuf_size = int(self.rx_buffer_size)
        n = self._rxbuf_size
        if self.rx_source is not None:
            x = np.asarray(self.rx_source(n), dtype=np.complex128)
        else:
            x = np.zeros(n, np.complex128)
            if self._txbuf is not None:
                iq = self._txbuf[0::2].astype(np.float64) + 1j * self._txbuf[1::2]
                idx = (self._rx_pos + np.arange(n)) % iq.size
                x = iq[idx] / 16.0  # 16-bit DAC word -> 12-bit code domain
                x = x * 10 ** ((self._tx_gain + self._rx_gain - self.cable_loss_db) / 20)
            x = x + self.noise_codes * (self._rng.standard_normal(n) + 1j * self._rng.standard_normal(n))
        self._rx_pos += n
        re = np.clip(np.round(x.real), -2048, 2047)
        im = np.clip(np.round(x.imag), -2048, 2047)
        return re + 1j * im
