"""The radio contract: one abstract class every backend (simulated, loopback, replay, Pluto, USRP, remote) implements.

Conventions
-----------
- Samples are 1-D ``numpy.complex64`` arrays at *digital full scale 1.0*: the DAC/ADC saturates where the I or
  the Q component reaches +-1.0. A backend never wraps: values beyond full scale are clipped component-wise and
  counted.
- Frequencies in Hz, rates in samples/s, gains in dB in the radio's own convention (Pluto TX gain is an
  attenuation <= 0 dB, USRP TX gain is >= 0 dB); :class:`Capabilities` says which.
- Every setting is validated against :class:`Capabilities` before anything reaches the hardware; a bad value
  raises :class:`~radio.errors.RadioConfigError` naming the value and the allowed range.
- Every transmission passes the :class:`~radio.guard.TxGuard` first. So does any reconfiguration while a cyclic
  transmission is running, because retuning a running transmitter is a transmission at the new settings.

Backends implement the ``_apply``, ``_transmit``, ``_stop_transmit``, ``_receive`` and ``_close`` hooks; the
public methods here do the validation, the guard and the bookkeeping, so no backend can skip them.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from radio.errors import RadioConfigError, RadioDisconnected, TxGuardRefused
from radio.guard import OccupiedBand, TxGuard, measure_occupied_band


@dataclass(frozen=True)
class Range:
    """A closed interval ``[low, high]`` with an optional step (0 means continuous), in the unit named by ``unit``."""

    low: float
    high: float
    step: float = 0.0
    unit: str = ""

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def check(self, what: str, value: float) -> float:
        """Return ``value`` (snapped to the step) or raise RadioConfigError naming the range."""
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
            raise RadioConfigError(f"{what} = {value!r} is not a finite number; allowed {self.describe()}")
        value = float(value)
        if not self.contains(value):
            raise RadioConfigError(f"{what} = {value:g} {self.unit} is out of range; allowed {self.describe()}")
        if self.step > 0:
            snapped = self.low + round((value - self.low) / self.step) * self.step
            value = min(max(snapped, self.low), self.high)
        return value

    def describe(self) -> str:
        step = f" in steps of {self.step:g}" if self.step > 0 else ""
        return f"{self.low:g} to {self.high:g} {self.unit}{step}".replace("  ", " ")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Capabilities:
    """What a radio can do. Used to validate settings before anything is sent to the hardware."""

    lo_hz: Range
    """Tunable LO range (TX and RX)."""
    rate_sps: Range
    """Baseband sample-rate range."""
    bandwidth_hz: Range
    """Analogue RF/IF filter bandwidth range."""
    tx_gain_db: Range
    """TX gain range in the radio's own convention (Pluto: attenuation, <= 0)."""
    rx_gain_db: Range
    """RX gain range (manual gain)."""
    dac_bits: int = 12
    """DAC resolution, bits per component."""
    adc_bits: int = 12
    """ADC resolution, bits per component."""
    has_timestamp: bool = False
    """Whether received buffers carry a hardware timestamp."""
    has_temperature: bool = False
    """Whether the radio reports a temperature sensor."""
    loopback: bool = False
    """Whether the radio can receive its own transmission (internal or cabled loopback)."""
    max_buffer_samples: int = 2**24
    """Largest TX or RX buffer accepted in one call."""

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return d


@dataclass(frozen=True)
class RadioSettings:
    """One radio's tuning. ``rx_lo_hz = None`` means the RX LO follows the TX LO."""

    lo_hz: float = 2.45e9
    """TX LO frequency (Hz)."""
    rate_sps: float = 7.68e6
    """Baseband sample rate (samples/s), the same for TX and RX."""
    bandwidth_hz: float = 5e6
    """Analogue filter bandwidth (Hz)."""
    tx_gain_db: float = -10.0
    """TX gain (dB, radio convention)."""
    rx_gain_db: float = 30.0
    """RX gain (dB); always manual, never AGC, so measurements are repeatable."""
    rx_lo_hz: float | None = None
    """RX LO frequency (Hz); None: same as ``lo_hz``."""

    @property
    def rx_lo(self) -> float:
        return self.lo_hz if self.rx_lo_hz is None else self.rx_lo_hz

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate_settings(caps: Capabilities, settings: RadioSettings, radio_name: str = "radio") -> RadioSettings:
    """Check every field of ``settings`` against ``caps``; return them snapped to the radio's steps."""
    p = f"{radio_name}:"
    return RadioSettings(
        lo_hz=caps.lo_hz.check(f"{p} lo_hz", settings.lo_hz),
        rate_sps=caps.rate_sps.check(f"{p} rate_sps", settings.rate_sps),
        bandwidth_hz=caps.bandwidth_hz.check(f"{p} bandwidth_hz", settings.bandwidth_hz),
        tx_gain_db=caps.tx_gain_db.check(f"{p} tx_gain_db", settings.tx_gain_db),
        rx_gain_db=caps.rx_gain_db.check(f"{p} rx_gain_db", settings.rx_gain_db),
        rx_lo_hz=None if settings.rx_lo_hz is None else caps.lo_hz.check(f"{p} rx_lo_hz", settings.rx_lo_hz),
    )


@dataclass
class RxMetadata:
    """What a radio says about one received buffer."""

    radio: str
    lo_hz: float
    rate_sps: float
    gain_db: float
    timestamp_s: float | None = None
    """Hardware time of the first sample, when the radio has a clock; else None."""
    overflow_count: int = 0
    """Overflows since the previous receive (samples were lost before this buffer)."""
    underflow_count: int = 0
    """TX underflows since the previous receive."""
    clip_count: int = 0
    """Samples of this buffer with I or Q at ADC full scale."""
    temperature_c: float | None = None
    """Radio temperature when it has a sensor."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Reception:
    """Received samples (complex64, full scale 1.0) and their metadata; unpacks as ``samples, meta``."""

    samples: np.ndarray
    meta: RxMetadata

    def __iter__(self) -> Iterator[Any]:
        yield self.samples
        yield self.meta


@dataclass(frozen=True)
class TxReport:
    """What happened to one transmit call."""

    samples: int
    clipped: int
    cyclic: bool


def clip_to_full_scale(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """Clip I and Q to [-1, 1] (what a DAC does instead of wrapping); return the clipped copy and how many
    samples had a component beyond full scale."""
    re, im = samples.real, samples.imag
    over = (np.abs(re) > 1.0) | (np.abs(im) > 1.0)
    n = int(np.count_nonzero(over))
    if n == 0:
        return samples.astype(np.complex64, copy=False), 0
    out = (np.clip(re, -1.0, 1.0) + 1j * np.clip(im, -1.0, 1.0)).astype(np.complex64)
    return out, n


def as_tx_samples(samples: Any, max_len: int) -> np.ndarray:
    """Validate a transmit buffer: 1-D, non-empty, numeric, finite. Returns complex64."""
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise RadioConfigError(f"transmit samples must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise RadioConfigError("transmit samples are empty; at least 1 sample is needed")
    if arr.size > max_len:
        raise RadioConfigError(f"transmit buffer of {arr.size} samples is too long; allowed at most {max_len}")
    if not (np.issubdtype(arr.dtype, np.number)):
        raise RadioConfigError(f"transmit samples have dtype {arr.dtype}; allowed: a numeric (complex) dtype")
    arr = arr.astype(np.complex64, copy=False)
    if not np.all(np.isfinite(arr.view(np.float32))):
        raise RadioConfigError("transmit samples contain NaN or infinity; allowed: finite values")
    return arr


class Radio(abc.ABC):
    """One radio. Use as a context manager; ``close`` is idempotent."""

    driver: str = "abstract"

    def __init__(self, name: str, guard: TxGuard | None = None, settings: RadioSettings | None = None):
        self.name = name
        self.guard = guard if guard is not None else TxGuard.deny_all()
        self._settings = settings or RadioSettings()
        self._tx_active = False
        self._closed = False
        self._configured = False

    # ---- description -------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """The ranges and features of this radio."""

    @property
    def settings(self) -> RadioSettings:
        """The settings last applied."""
        return self._settings

    @property
    def transmitting(self) -> bool:
        """Whether a cyclic transmission is running."""
        return self._tx_active

    def identity(self) -> dict[str, Any]:
        """Name, driver and whatever identifies the unit (serial, URI)."""
        return {"name": self.name, "driver": self.driver}

    # ---- control ----------------------------------------------------------------------------------------------
    def configure(self, settings: RadioSettings | None = None, **changes: Any) -> RadioSettings:
        """Validate and apply settings (a full :class:`RadioSettings`, or field changes to the current ones).

        While a cyclic transmission runs, the new settings must also pass the TX guard, otherwise nothing changes.
        """
        self._check_open()
        base = settings if settings is not None else self._settings
        unknown = set(changes) - {f.name for f in dataclasses.fields(RadioSettings)}
        if unknown:
            allowed = ", ".join(f.name for f in dataclasses.fields(RadioSettings))
            raise RadioConfigError(f"unknown radio setting(s) {sorted(unknown)}; allowed: {allowed}")
        new = validate_settings(self.capabilities, dataclasses.replace(base, **changes), self.name)
        if self._tx_active:
            self.guard.check_transmission(self.name, new.lo_hz, new.rate_sps, self._tx_occupied_bw,
                                          self._tx_measured_band, new.tx_gain_db)
        self._apply(new)
        self._settings = new
        self._configured = True
        return new

    def transmit(self, samples: Any, *, cyclic: bool = False, occupied_bw_hz: float | None = None) -> TxReport:
        """Send ``samples`` (full scale 1.0). ``cyclic`` repeats the buffer until :meth:`stop_transmit`.

        ``occupied_bw_hz`` is the bandwidth the waveform occupies around the LO, for the TX guard; by default the
        whole sample-rate band, the conservative choice. The guard also measures the band the clipped samples
        occupy (99 % power bandwidth at its offset from the LO) and refuses when either band leaves the allowed
        bands: a declared value can make the check stricter, never looser. Raises TxGuardRefused before anything
        reaches the radio.
        """
        self._check_open()
        self._ensure_configured()
        occupied = float(self._settings.rate_sps if occupied_bw_hz is None else occupied_bw_hz)
        if not math.isfinite(occupied) or occupied <= 0 or occupied > self._settings.rate_sps:
            raise RadioConfigError(
                f"occupied_bw_hz = {occupied_bw_hz!r}; allowed: 0 < value <= sample rate {self._settings.rate_sps:g}")
        arr = as_tx_samples(samples, self.capabilities.max_buffer_samples)
        # What is measured is what will be radiated: the buffer after clipping, whose distortion widens it.
        clipped_arr, n_clipped = clip_to_full_scale(arr)
        measured = measure_occupied_band(clipped_arr)
        self.guard.check_transmission(self.name, self._settings.lo_hz, self._settings.rate_sps, occupied, measured,
                                      self._settings.tx_gain_db)
        if self._tx_active:
            self._stop_transmit()
            self._tx_active = False
        self._tx_occupied_bw = occupied
        self._tx_measured_band = measured
        self._transmit(clipped_arr, cyclic)
        self._tx_active = bool(cyclic)
        return TxReport(samples=int(arr.size), clipped=n_clipped, cyclic=bool(cyclic))

    def stop_transmit(self) -> None:
        """Stop a cyclic transmission (no-op when none runs)."""
        if self._tx_active and not self._closed:
            self._stop_transmit()
        self._tx_active = False

    def receive(self, num_samples: int, *, timeout_s: float = 5.0) -> Reception:
        """Receive ``num_samples`` complex64 samples at full scale 1.0, with metadata."""
        self._check_open()
        self._ensure_configured()
        if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool):
            raise RadioConfigError(f"num_samples = {num_samples!r}; allowed: an integer >= 1")
        if not 1 <= int(num_samples) <= self.capabilities.max_buffer_samples:
            raise RadioConfigError(
                f"num_samples = {num_samples}; allowed 1 to {self.capabilities.max_buffer_samples}")
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise RadioConfigError(f"timeout_s = {timeout_s!r}; allowed: a positive number of seconds")
        return self._receive(int(num_samples), float(timeout_s))

    def close(self) -> None:
        """Stop transmitting and release the radio. Safe to call twice."""
        if self._closed:
            return
        try:
            if self._tx_active:
                self._stop_transmit()
        finally:
            self._tx_active = False
            self._closed = True
            self._close()

    def __enter__(self) -> "Radio":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} driver={self.driver}>"

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RadioDisconnected(f"radio {self.name!r} is closed")

    def _ensure_configured(self) -> None:
        if not self._configured:
            self.configure(self._settings)

    _tx_occupied_bw: float = 0.0
    _tx_measured_band: OccupiedBand | None = None

    # ---- backend hooks ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _apply(self, settings: RadioSettings) -> None:
        """Send validated settings to the device."""

    @abc.abstractmethod
    def _transmit(self, samples: np.ndarray, cyclic: bool) -> None:
        """Send a guarded, clipped complex64 buffer."""

    @abc.abstractmethod
    def _stop_transmit(self) -> None:
        """Stop the running cyclic buffer."""

    @abc.abstractmethod
    def _receive(self, num_samples: int, timeout_s: float) -> Reception:
        """Receive a buffer; raise RadioTimeout / RadioOverflow / RadioDisconnected on faults."""

    def _close(self) -> None:
        """Release device resources."""


__all__ = [
    "Capabilities", "Radio", "RadioSettings", "Range", "Reception", "RxMetadata", "TxReport",
    "as_tx_samples", "clip_to_full_scale", "validate_settings", "TxGuardRefused",
]
