"""A stand-in for the UHD Python API (``uhd``) with the behaviours of a USRP B200 the backend relies on.

Reproduced from UHD: MetaRange objects with start()/stop()/step(); tune requests; gains coerced to the gain
step; RX streaming driven by stream commands, ``recv`` filling a (channels, n) buffer and reporting errors in
``RXMetadata.error_code`` (it does not raise); TX ``send`` with start/end-of-burst flags; async TX messages
carrying underflow events. The RX stream is the last TX buffer through a 40 dB cable, plus noise.
"""

from __future__ import annotations

import enum
import time
from types import SimpleNamespace
from typing import Any

import numpy as np


class MetaRange:
    def __init__(self, start: float, stop: float, step: float = 0.0):
        self._start, self._stop, self._step = start, stop, step

    def start(self) -> float:
        return self._start

    def stop(self) -> float:
        return self._stop

    def step(self) -> float:
        return self._step

    def clip(self, value: float, clip_step: bool = False) -> float:
        v = min(max(value, self._start), self._stop)
        if clip_step and self._step:
            v = self._start + round((v - self._start) / self._step) * self._step
        return v


class TuneRequest:
    def __init__(self, target_freq: float, lo_off: float = 0.0):
        self.target_freq = target_freq


class StreamMode(enum.Enum):
    start_cont = "a"
    stop_cont = "o"
    num_done = "d"
    num_more = "m"


class StreamCMD:
    def __init__(self, mode: StreamMode):
        self._mode = mode  # UHD's stream_cmd takes the mode at construction and exposes no attribute for it
        self.num_samps = 0
        self.stream_now = False


class RXMetadataErrorCode(enum.Enum):
    none = 0x0
    timeout = 0x1
    late = 0x2
    broken_chain = 0x4
    overflow = 0x8
    alignment = 0xC
    bad_packet = 0xF


class TXMetadataEventCode(enum.Enum):
    burst_ack = 0x1
    underflow = 0x2
    seq_error = 0x4
    time_error = 0x8
    underflow_in_packet = 0x10
    seq_error_in_packet = 0x20


class _TimeSpec:
    def __init__(self, secs: float):
        self._secs = secs

    def get_real_secs(self) -> float:
        return self._secs


class RXMetadata:
    def __init__(self) -> None:
        self.error_code = RXMetadataErrorCode.none
        self.has_time_spec = False
        self.time_spec = _TimeSpec(0.0)

    def strerror(self) -> str:
        return f"ERROR_CODE_{self.error_code.name.upper()}"


class TXMetadata:
    def __init__(self) -> None:
        self.start_of_burst = False
        self.end_of_burst = False
        self.has_time_spec = False


class TXAsyncMetadata:
    def __init__(self) -> None:
        self.event_code = TXMetadataEventCode.burst_ack


class StreamArgs:
    def __init__(self, cpu: str, otw: str):
        self.cpu_format, self.otw_format = cpu, otw
        self.channels: list[int] = [0]


class _Sensor:
    def __init__(self, value: float):
        self._v = value

    def to_real(self) -> float:
        return self._v


class _RxStreamer:
    def __init__(self, dev: "MultiUSRP"):
        self.dev = dev
        self._pending = 0

    def get_max_num_samps(self) -> int:
        return 2040

    def issue_stream_cmd(self, cmd: StreamCMD) -> None:
        self._pending = cmd.num_samps

    def recv(self, buffer: np.ndarray, md: RXMetadata, timeout: float = 0.1) -> int:
        dev = self.dev
        if dev.inject_rx_error is not None:
            md.error_code, dev.inject_rx_error = dev.inject_rx_error, None
            return 0
        if self._pending <= 0:
            md.error_code = RXMetadataErrorCode.timeout
            return 0
        n = min(buffer.shape[1], self._pending)
        src = dev.last_tx if dev.last_tx is not None else np.zeros(1, np.complex64)
        idx = (dev.rx_pos + np.arange(n)) % src.size
        gain = 10 ** ((dev.tx_gain + dev.rx_gain - 89.75 - 40.0) / 20)
        x = src[idx] * gain + 1e-4 * (dev.rng.standard_normal(n) + 1j * dev.rng.standard_normal(n))
        full = 32767 / 32768
        x = np.clip(x.real, -1, full) + 1j * np.clip(x.imag, -1, full)
        buffer[0, :n] = x.astype(np.complex64)
        md.error_code = RXMetadataErrorCode.none
        md.has_time_spec = True
        md.time_spec = _TimeSpec(dev.rx_pos / dev.rate)
        dev.rx_pos += n
        self._pending -= n
        return n


class _TxStreamer:
    def __init__(self, dev: "MultiUSRP"):
        self.dev = dev
        self.bursts: list[tuple[bool, bool, int]] = []
        self._async: list[TXMetadataEventCode] = []

    def send(self, samples: np.ndarray, md: TXMetadata, timeout: float = 0.1) -> int:
        arr = np.asarray(samples)
        if arr.ndim != 2 or arr.dtype != np.complex64:
            raise RuntimeError("send buffer must be complex64 of shape (channels, n)")
        if arr.shape[1]:
            time.sleep(min(arr.shape[1] / self.dev.rate, 0.01))  # a real send blocks at the device's rate
            self.dev.last_tx = arr[0].copy()
            self.dev.sent_samples += arr.shape[1]
        self.bursts.append((md.start_of_burst, md.end_of_burst, arr.shape[1]))
        if self.dev.inject_underflow:
            self._async.append(TXMetadataEventCode.underflow)
            self.dev.inject_underflow = False
        return arr.shape[1]

    def recv_async_msg(self, md: TXAsyncMetadata, timeout: float = 0.1) -> bool:
        if not self._async:
            return False
        md.event_code = self._async.pop(0)
        return True


class MultiUSRP:
    unreachable_args = {"serial=DEADBEEF"}

    def __init__(self, args: str = ""):
        if args in self.unreachable_args:
            raise RuntimeError(f"LookupError: KeyError: No devices found for ----->\nDevice Address:\n    {args}")
        self.args = args
        self.rate = 1e6
        self.rx_freq = self.tx_freq = 1e9
        self.rx_gain = 0.0
        self.tx_gain = 0.0
        self.agc = True
        self.bw = 56e6
        self.last_tx: np.ndarray | None = None
        self.sent_samples = 0
        self.rx_pos = 0
        self.rng = np.random.default_rng(2)
        self.inject_rx_error: RXMetadataErrorCode | None = None
        self.inject_underflow = False
        self._rx = _RxStreamer(self)
        self._tx = _TxStreamer(self)

    def get_rx_stream(self, args: StreamArgs) -> _RxStreamer:
        return self._rx

    def get_tx_stream(self, args: StreamArgs) -> _TxStreamer:
        return self._tx

    def get_rx_freq_range(self, chan: int = 0) -> MetaRange:
        return MetaRange(70e6, 6e9)

    def get_rx_rates(self, chan: int = 0) -> MetaRange:
        return MetaRange(62.5e3, 61.44e6)

    def get_rx_bandwidth_range(self, chan: int = 0) -> MetaRange:
        return MetaRange(200e3, 56e6)

    def get_rx_gain_range(self, chan: int = 0) -> MetaRange:
        return MetaRange(0.0, 76.0, 1.0)

    def get_tx_gain_range(self, chan: int = 0) -> MetaRange:
        return MetaRange(0.0, 89.75, 0.25)

    def get_mboard_sensor_names(self, mboard: int = 0) -> list[str]:
        return ["ref_locked"]

    def get_mboard_sensor(self, name: str, mboard: int = 0) -> _Sensor:
        raise RuntimeError(f"sensor {name} not found")

    def get_usrp_rx_info(self, chan: int = 0) -> dict[str, str]:
        return {"mboard_id": "B200", "mboard_serial": "3123ABC"}

    def set_rx_rate(self, rate: float, chan: int = 0) -> None:
        self.rate = float(MetaRange(62.5e3, 61.44e6).clip(rate))

    def set_tx_rate(self, rate: float, chan: int = 0) -> None:
        self.rate = float(MetaRange(62.5e3, 61.44e6).clip(rate))

    def get_rx_rate(self, chan: int = 0) -> float:
        return self.rate

    def set_rx_bandwidth(self, bw: float, chan: int = 0) -> None:
        self.bw = bw

    def set_tx_bandwidth(self, bw: float, chan: int = 0) -> None:
        self.bw = bw

    def set_rx_freq(self, req: TuneRequest, chan: int = 0) -> Any:
        self.rx_freq = self.get_rx_freq_range().clip(req.target_freq)
        return SimpleNamespace(actual_rf_freq=self.rx_freq)

    def set_tx_freq(self, req: TuneRequest, chan: int = 0) -> Any:
        self.tx_freq = self.get_rx_freq_range().clip(req.target_freq)
        return SimpleNamespace(actual_rf_freq=self.tx_freq)

    def set_rx_agc(self, enable: bool, chan: int = 0) -> None:
        self.agc = enable

    def set_rx_gain(self, gain: float, chan: int = 0) -> None:
        self.rx_gain = self.get_rx_gain_range().clip(gain, True)

    def set_tx_gain(self, gain: float, chan: int = 0) -> None:
        self.tx_gain = self.get_tx_gain_range().clip(gain, True)


usrp = SimpleNamespace(MultiUSRP=MultiUSRP, StreamArgs=StreamArgs)
types = SimpleNamespace(TuneRequest=TuneRequest, StreamCMD=StreamCMD, StreamMode=StreamMode,
                        RXMetadata=RXMetadata, RXMetadataErrorCode=RXMetadataErrorCode, TXMetadata=TXMetadata,
                        TXAsyncMetadata=TXAsyncMetadata, TXMetadataEventCode=TXMetadataEventCode)
