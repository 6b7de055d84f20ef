"""USRP through the UHD Python API (``uhd``), imported lazily so the rest of the project runs without it.

- ranges come from the device (``get_*_range`` MetaRanges), so B2xx, N2xx and X3xx each validate as they are;
- tuning goes through ``TuneRequest``; the actual frequency and gain are read back;
- RX uses a ``num_done`` stream command per buffer; the RX metadata error codes map onto the contract:
  timeout -> RadioTimeout, overflow -> RadioOverflow, broken chain / bad packet -> RadioFault;
- TX streams fc32 (full scale 1.0, the contract's own scale) in one burst; a cyclic buffer is resent by a
  background thread until stopped, because USRPs have no on-device cyclic buffer; underflows reported on the
  async message queue are counted and reported in the next receive's metadata.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np

from radio.base import Capabilities, Radio, RadioSettings, Range, Reception, RxMetadata
from radio.errors import RadioConfigError, RadioDisconnected, RadioFault, RadioOverflow, RadioTimeout
from radio.guard import TxGuard


def _import_uhd() -> ModuleType:
    try:
        import uhd  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RadioConfigError(
            f"driver 'usrp' needs the UHD Python API ({e}); on Debian/Ubuntu: apt-get install python3-uhd "
            "(it serves the system Python; build UHD with ENABLE_PYTHON_API for a virtual environment)") from None
    return uhd


def _range(meta_range: Any, unit: str) -> Range:
    return Range(float(meta_range.start()), float(meta_range.stop()), float(meta_range.step()), unit)


class UsrpRadio(Radio):
    """One channel of a USRP (``args`` as UHD takes them, e.g. ``"type=b200,serial=3123ABC"``)."""

    driver = "usrp"

    def __init__(self, name: str, args: str = "", guard: TxGuard | None = None,
                 settings: RadioSettings | None = None, *, channel: int = 0, uhd_module: ModuleType | Any = None):
        super().__init__(name, guard, settings)
        self.args = args
        self.channel = channel
        self._uhd = uhd_module if uhd_module is not None else _import_uhd()
        uhd = self._uhd
        try:
            self._usrp = uhd.usrp.MultiUSRP(args)
        except RuntimeError as e:
            raise RadioDisconnected(f"usrp {name!r} ({args or 'first found'}) does not answer: {e}") from None
        stream_args = uhd.usrp.StreamArgs("fc32", "sc16")
        stream_args.channels = [channel]
        self._rx_stream = self._usrp.get_rx_stream(stream_args)
        self._tx_stream = self._usrp.get_tx_stream(stream_args)
        self._caps = self._read_capabilities()
        self._tx_thread: threading.Thread | None = None
        self._tx_stop = threading.Event()
        self._tx_error: BaseException | None = None
        self._underflows = 0

    def _read_capabilities(self) -> Capabilities:
        u, c = self._usrp, self.channel
        rates = u.get_rx_rates(c)
        return Capabilities(
            lo_hz=_range(u.get_rx_freq_range(c), "Hz"),
            rate_sps=Range(float(rates.start()), float(rates.stop()), 0.0, "S/s"),
            bandwidth_hz=_range(u.get_rx_bandwidth_range(c), "Hz"),
            tx_gain_db=_range(u.get_tx_gain_range(c), "dB"),
            rx_gain_db=_range(u.get_rx_gain_range(c), "dB"),
            dac_bits=12, adc_bits=12, has_timestamp=True,
            has_temperature="temp" in list(u.get_mboard_sensor_names(0)), loopback=False)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def identity(self) -> dict[str, Any]:
        """Name, driver, device args, channel, and the motherboard's serial and model (None when UHD cannot say)."""
        ident = {**super().identity(), "args": self.args, "channel": self.channel, "serial": None, "model": None}
        try:
            info = dict(self._usrp.get_usrp_rx_info(self.channel))
            ident["serial"] = info.get("mboard_serial")
            ident["model"] = info.get("mboard_id")
        except RuntimeError:
            pass
        return ident

    def temperature_c(self) -> float | None:
        if not self._caps.has_temperature:
            return None
        try:
            return float(self._usrp.get_mboard_sensor("temp", 0).to_real())
        except RuntimeError:
            return None

    def _apply(self, s: RadioSettings) -> None:
        u, c, uhd = self._usrp, self.channel, self._uhd
        try:
            u.set_rx_rate(s.rate_sps, c)
            u.set_tx_rate(s.rate_sps, c)
            u.set_rx_bandwidth(s.bandwidth_hz, c)
            u.set_tx_bandwidth(s.bandwidth_hz, c)
            u.set_tx_freq(uhd.types.TuneRequest(s.lo_hz), c)
            u.set_rx_freq(uhd.types.TuneRequest(s.rx_lo), c)
            u.set_rx_agc(False, c)
            u.set_rx_gain(s.rx_gain_db, c)
            u.set_tx_gain(s.tx_gain_db, c)
            actual_rate = float(u.get_rx_rate(c))
        except RuntimeError as e:
            raise RadioFault(f"usrp {self.name!r} configure: {e}") from None
        if abs(actual_rate - s.rate_sps) > 1e-6 * s.rate_sps:
            raise RadioConfigError(f"usrp {self.name!r}: rate {s.rate_sps:g} S/s is not reachable from the master "
                                   f"clock (the device gives {actual_rate:g}); pick a rate it divides into")

    # ---- TX --------------------------------------------------------------------------------------------------
    def _send_burst(self, samples: np.ndarray) -> None:
        md = self._uhd.types.TXMetadata()
        md.start_of_burst = True
        md.end_of_burst = True
        md.has_time_spec = False
        sent = self._tx_stream.send(samples.reshape(1, -1), md, 1.0)
        if sent != samples.size:
            raise RadioFault(f"usrp {self.name!r} sent {sent} of {samples.size} samples")

    def _cyclic_loop(self, samples: np.ndarray) -> None:
        md = self._uhd.types.TXMetadata()
        md.has_time_spec = False
        md.start_of_burst, md.end_of_burst = True, False
        chunk = samples.reshape(1, -1)
        try:
            while not self._tx_stop.is_set():
                self._tx_stream.send(chunk, md, 1.0)
                md.start_of_burst = False
            md.end_of_burst = True
            self._tx_stream.send(np.zeros((1, 0), np.complex64), md, 1.0)
        except RuntimeError as e:
            self._tx_error = e

    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        if cyclic:
            self._tx_stop.clear()
            self._tx_error = None
            self._tx_thread = threading.Thread(target=self._cyclic_loop, args=(samples,), daemon=True,
                                               name=f"usrp-{self.name}-tx")
            self._tx_thread.start()
        else:
            try:
                self._send_burst(samples)
            except RuntimeError as e:
                raise RadioFault(f"usrp {self.name!r} transmit: {e}") from None

    def _stop_transmit(self) -> None:
        self._tx_stop.set()
        if self._tx_thread is not None:
            self._tx_thread.join(timeout=5.0)
            self._tx_thread = None
        if self._tx_error is not None:
            err, self._tx_error = self._tx_error, None
            raise RadioFault(f"usrp {self.name!r} cyclic transmit failed: {err}")

    def _drain_async(self) -> None:
        uhd = self._uhd
        md = uhd.types.TXAsyncMetadata()
        while self._tx_stream.recv_async_msg(md, 0.0):
            if md.event_code in (uhd.types.TXMetadataEventCode.underflow,
                                 uhd.types.TXMetadataEventCode.underflow_in_packet):
                self._underflows += 1

    # ---- RX --------------------------------------------------------------------------------------------------
    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        uhd = self._uhd
        cmd = uhd.types.StreamCMD(uhd.types.StreamMode.num_done)
        cmd.num_samps = num_samples
        cmd.stream_now = True
        self._rx_stream.issue_stream_cmd(cmd)
        out = np.zeros((1, num_samples), np.complex64)
        per_call = min(num_samples, int(self._rx_stream.get_max_num_samps()) or num_samples)
        md = uhd.types.RXMetadata()
        got = 0
        t0: float | None = None
        codes = uhd.types.RXMetadataErrorCode
        while got < num_samples:
            view = np.zeros((1, min(per_call, num_samples - got)), np.complex64)
            try:
                n = int(self._rx_stream.recv(view, md, timeout_s))
            except RuntimeError as e:
                raise RadioDisconnected(f"usrp {self.name!r} receive: {e}") from None
            if md.error_code == codes.timeout:
                raise RadioTimeout(f"usrp {self.name!r}: no samples within {timeout_s:g} s ({got} received)")
            if md.error_code == codes.overflow:
                raise RadioOverflow(f"usrp {self.name!r}: overflow after {got} samples; samples were lost")
            if md.error_code != codes.none:
                raise RadioFault(f"usrp {self.name!r} receive error {md.strerror()}")
            if t0 is None and md.has_time_spec:
                t0 = float(md.time_spec.get_real_secs())
            out[0, got:got + n] = view[0, :n]
            got += n
        self._drain_async()
        underflows, self._underflows = self._underflows, 0
        samples = out[0]
        full = 1.0 - 1.0 / 32768  # sc16 over the wire: the largest code is 32767
        clip = int(np.count_nonzero((np.abs(samples.real) >= full) | (np.abs(samples.imag) >= full)))
        meta = RxMetadata(radio=self.name, lo_hz=self.settings.rx_lo, rate_sps=self.settings.rate_sps,
                          gain_db=self.settings.rx_gain_db, timestamp_s=t0, underflow_count=underflows,
                          clip_count=clip, temperature_c=self.temperature_c())
        return Reception(samples, meta)

    def _close(self) -> None:
        self._tx_stop.set()
        if self._tx_thread is not None:
            self._tx_thread.join(timeout=5.0)
