"""ADALM-Pluto through pyadi-iio (``adi``), imported lazily so the rest of the project runs without it.

What this class enforces that pyadi-iio itself does not:
- RX gain is applied in ``manual`` gain-control mode only (pyadi-iio silently ignores ``rx_hardwaregain_chan0``
  in any AGC mode), and read back to make sure it took;
- a TX buffer is destroyed before a new one is pushed (pyadi-iio refuses to push over a cyclic buffer and refuses
  to change ``tx_cyclic_buffer`` while one exists);
- TX samples are scaled to int16 after the contract's clipping, with a peak check: pyadi-iio casts the floats
  straight to the channel's int16 type, and a value beyond +-32767 does not saturate (numpy leaves the result of
  an out-of-range float-to-int cast undefined; on x86 it wraps);
- RX samples come back as 12-bit ADC codes sign-extended in int16 (-2048..2047, scan format ``le:S12/16>>0``)
  and are scaled to full scale 1.0;
- every receive is fresh: the RX device keeps a single kernel block. With libiio's default of 4, the blocks fill
  as soon as the buffer exists and each refill returns the oldest, so the first receives after a transmit or a
  retune would return what was on the air before it;
- the sample rate is read back: the AD9361 divides it from a fractional BBPLL (521000 S/s reads 520999), and a
  rate the clock chain cannot reach is a configuration error rather than a silently different rate;
- ``extended_range`` (70 MHz-6 GHz, 56 MHz) is checked against the chip the firmware reports
  (context attribute ``ad9361-phy,model``): an ``ad9363a`` refuses those LOs and caps the bandwidth at 20 MHz.
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
RATE_READBACK_TOLERANCE = 1e-5
"""Relative difference allowed between the asked and the read-back sample rate (BBPLL fractional-N rounding)."""
_EXTENDED_RANGE_CHIPS = {"ad9364", "ad9361"}
_DISCONNECT_ERRNOS = {errno.ENODEV, errno.EPIPE, errno.ECONNRESET, errno.ENOENT, errno.EIO, errno.ECONNREFUSED}


def _import_adi() -> ModuleType:
    try:
        import adi  # type: ignore[import-not-found]
    # A libiio that is missing or too old for the installed bindings fails while they load it with ctypes: OSError
    # (cannot open shared object) or AttributeError (undefined symbol), not ImportError.
    except (ImportError, OSError, AttributeError) as e:
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
        chip = self._context_attrs().get("ad9361-phy,model")
        if extended_range and chip is not None and chip not in _EXTENDED_RANGE_CHIPS:
            raise RadioConfigError(
                f"pluto {name!r}: extended_range = true but the firmware reports ad9361-phy,model = {chip}, which "
                f"refuses LOs outside 325 MHz-3.8 GHz; allowed: extended_range = false, or set the firmware to "
                f"{' / '.join(sorted(_EXTENDED_RANGE_CHIPS))} (fw_setenv compatible ad9364)")
        try:
            # One kernel block, so that a refill waits for samples taken after it was asked for.
            self._sdr._rxadc.set_kernel_buffers_count(1)
        except OSError as e:
            raise _fault(f"pluto {name!r} set RX kernel buffers", e) from None

    @property
    def capabilities(self) -> Capabilities:
        lo = Range(70e6, 6e9, unit="Hz") if self.extended_range else Range(325e6, 3.8e9, unit="Hz")
        bw = Range(200e3, 56e6, unit="Hz") if self.extended_range else Range(200e3, 20e6, unit="Hz")
        return Capabilities(
            lo_hz=lo, rate_sps=Range(521e3, 61.44e6, unit="S/s"), bandwidth_hz=bw,
            tx_gain_db=Range(-89.75, 0.0, 0.25, "dB"), rx_gain_db=Range(0.0, 71.0, 1.0, "dB"),
            dac_bits=12, adc_bits=12, has_timestamp=False, has_temperature=True, loopback=True,
            max_buffer_samples=2**22)

    def _context_attrs(self) -> dict[str, str]:
        ctx = getattr(self._sdr, "ctx", None) or getattr(self._sdr, "_ctx", None)  # older pyadi-iio: _ctx
        attrs = getattr(ctx, "attrs", None)
        return attrs if isinstance(attrs, dict) else {}

    def identity(self) -> dict[str, Any]:
        """Name, driver, URI, the unit's serial (``hw_serial`` of the IIO context; None when it reports none) and
        the transceiver its firmware declares (``ad9361-phy,model``: ad9363a, or ad9364 when set for extended range)."""
        attrs = self._context_attrs()
        return {**super().identity(), "uri": self.uri, "serial": attrs.get("hw_serial") or None,
                "model": attrs.get("ad9361-phy,model")}

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
            got_rate = float(sdr.sample_rate)
        except OSError as e:
            raise _fault(f"pluto {self.name!r} configure", e) from None
        if abs(got_rate - s.rate_sps) > RATE_READBACK_TOLERANCE * s.rate_sps:
            raise RadioConfigError(f"pluto {self.name!r}: rate {s.rate_sps:g} S/s reads back as {got_rate:g} S/s; "
                                   "pick a rate the AD936x clock chain reaches")
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
