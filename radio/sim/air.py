"""The simulated air shared by any number of simulated radios.

Time model
----------
- One air clock in seconds (float64), starting at 0. Radio ``r`` samples its receive stream on its own grid
  ``t = k / rate_r`` (k an integer) and keeps a *cursor*: the air time up to which it has received.
- ``receive(n)`` returns the n samples of the radio's grid starting at the later of its cursor and the time of the
  latest *event* (a transmit, a stop, retuning a transmitting radio, :meth:`SimulatedAir.advance`), then moves the
  cursor past them. So consecutive receives on one radio are contiguous, several radios receiving after the same
  event capture the same air time (each with its own noise), and a receive that follows a transmit call hears it
  from its start. ``RxMetadata.timestamp_s`` is the air time of the first sample.
- ``now`` is the latest of the cursors and the latest event. A transmit call happens at ``now`` and does not move
  the clock, so several transmit calls in a row start together and superpose.
- A cyclic buffer plays forever from the air time of its transmit call (its sample 0 at that time), until it is
  stopped or replaced; retuning a transmitting radio keeps the buffer's phase and changes the settings from
  ``now`` on. A one-shot buffer plays once from the air time of its transmit call. A transmitter switching on or
  changing buffer does so abruptly, so the samples right after it carry its spectral splatter.
- Retuning a radio's RX LO or rate moves its cursor to ``now`` (the receive stream restarts, as a real radio
  flushes).

Signal path of a link ``tx -> rx``
----------------------------------
TX chain (:func:`~radio.sim.frontend.tx_chain`, at ``tx_oversample`` times the TX rate) -> TX gain -> path loss
and fractional delay (exact, in the frequency domain) -> the LO difference including each radio's ppm error ->
the sample-clock difference (each radio's ppm also scales its sample clock: the receiver sees the transmitter's
samples stretched by ``(1 + ppm_tx 1e-6) / (1 + ppm_rx 1e-6)``, a delay growing by ``(ppm_tx - ppm_rx) 1e-6``
samples per sample, applied as a Farrow fractional-delay interpolator, see :data:`FARROW_HALF_TAPS`) ->
the receiver's simulated band -> TX phase noise and TX distortion -> fading -> [sum over all transmitters, the
self link included] -> LNA -> channel filter (:func:`~radio.sim.frontend.rx_channel_fir`) -> RX phase noise and
RX distortion -> RX gain -> thermal noise (added here, which is equivalent: the stages in between are linear for
it and leave it white) -> ADC.

The receiver's simulated band is its sample-rate band, unless transmitters outside it are strong enough to
matter to its LNA (compression, desensitisation, their own products spilling in): then it is the smallest power of
two times the rate (up to ``rx_oversample_max``) that holds their occupied bands, and the channel filter and
decimation follow the LNA. A transmitter outside the simulated band still reaches the receiver through whatever
part of its spectrum (e.g. PA regrowth) falls inside.

What is cached, and what is drawn fresh
---------------------------------------
- The deterministic TX chain output of a buffer (DAC, IQ imbalance, LO leakage, PA) is computed once per
  transmit call. For each receiver, its contribution resampled to the receiver's grid (delay, path loss, LO
  offset, band selection) is computed once per (buffer, receiver settings) and reused; a periodic buffer's
  contribution is one period times a phase that advances each period with the frequency offset.
- Phase noise and the TX/RX additive distortion are multiplicative processes F(t) = (1 + m(t)) exp(j theta(t)),
  one per LO (each radio's TX and RX), pre-generated per radio as a periodic stream of 2^18 samples at its sample
  rate (fresh draws per radio and rate) and read at the air time, so a transmitter's phase noise is the same for
  every receiver that hears it at the same moment. A stream repeats every 2^18 samples (34 ms at 7.68 MS/s);
  within that, every sample is an independent part of the process.
- Thermal noise is read from a pool of 2^20 pre-drawn complex Gaussian samples at a random offset per receive
  call, so within one call (up to 2^17 samples) every noise sample is distinct; longer calls draw fresh noise.
  Noise of different calls may overlap in the pool, which leaves any average unbiased but makes captures longer
  than the pool share some noise. Jakes fading is a deterministic function of air time per link (sum of sinusoids
  with drawn angles and phases).
- Every draw comes from numpy generators seeded by (seed, radio or link name), so the same config, seed and call
  sequence give bit-identical samples.

Limits: the sample-clock difference does not stretch the TX phase noise, distortion or fading, which are read
at the receiver's sample times. The LNA's products falling outside the
simulated band alias into it. The TX phase noise and distortion are applied at the receiver's sample times,
not delayed by the link's delay (a few samples against their microsecond correlation times).
"""

from __future__ import annotations

import cmath
import dataclasses
import hashlib
import itertools
import json
import math
import threading
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft as sfft

from radio.base import RadioSettings, Reception, RxMetadata
from radio.errors import RadioConfigError, RadioDisconnected
from radio.guard import TxGuard
from radio.sim import frontend as fe
from radio.sim.params import LinkParams, RadioParams, SimConfig, check_value
from radio.sim.radio import SimRadio

STREAM_SAMPLES = 1 << 18
"""Period (samples at the radio's rate) of each pre-generated phase-noise/distortion stream."""
STREAM_TAIL = 1 << 17
"""The streams carry a copy of their first samples at the end, so reads up to this long are plain slices."""
NOISE_POOL_SAMPLES = 1 << 20
"""Size of the pool of pre-drawn unit complex Gaussian noise samples."""
NOISE_SLICE_MAX = 1 << 17
"""Longest receive call served from the noise pool; longer ones draw fresh noise."""
ONE_SHOT_PAD = 256
"""Silence (TX samples) simulated before and after a one-shot burst, where its band-limited edges ring."""
DECIMATION_MARGIN = fe.RX_FILTER_HALF_TAPS + 2
"""Extra receiver samples computed on each side of an oversampled receive block, for the channel filter."""
MAX_TX_CHAIN_SAMPLES = 1 << 23
"""Largest oversampled TX chain; longer buffers use a lower TX oversampling."""
LNA_NEGLIGIBLE_NOISE_RATIO = 1e-2
"""The LNA's cubic term is skipped when its estimated output power is below this fraction of the thermal noise
power (it would raise the noise floor by less than 0.05 dB) ..."""
LNA_NEGLIGIBLE_GAIN = 2.3e-3
"""... and the gain compression it causes, 2 P / P_IIP3, is below this (0.01 dB)."""
CHUNK = 1 << 15
"""Receiver samples processed at a time in a co-channel receive call (keeps the work arrays in cache)."""
TILED_MAX = 1 << 21
"""Longest run of tiled periods kept per cyclic contribution (complex64 samples)."""
_GRID_TOL = 1e-6
_JAKES_POINTS_PER_CYCLE = 64


FARROW_HALF_TAPS = 12
"""Half-length of the sample-clock interpolator: 24 taps of a Kaiser-windowed sinc (beta 8) whose dependence on
the fractional delay is a degree-6 polynomial per tap (a Farrow structure: 7 fixed FIR filters, then a
polynomial in the delay per sample). Error below -85 dB for signals within +-0.3 of the processing rate (an
oversampled or standard-rate OFDM carrier), a few % of the signal for content near Nyquist."""
FARROW_DEGREE = 6
"""Degree of the Farrow polynomial in the fractional delay."""
FARROW_BETA = 8.0
"""Kaiser window parameter of the interpolator."""
RESAMPLED_PEAK_MARGIN = 1.2
"""Bound on how far interpolation can raise a band-limited signal's peak over its samples' (for the ADC's
clipping-scan shortcut)."""


@lru_cache(maxsize=1)
def _farrow_coefficients() -> np.ndarray:
    """float64 ``[FARROW_DEGREE + 1, 2 FARROW_HALF_TAPS]``: ``c[p, k]`` such that the interpolated value at
    ``i + mu`` (``0 <= mu < 1``) is ``sum_p mu^p sum_k c[p, k] x[i - K + 1 + k]``."""
    half = FARROW_HALF_TAPS
    mus = np.linspace(0.0, 1.0, 401)
    t = np.arange(-half + 1, half + 1)[None, :] - mus[:, None]
    window = np.i0(FARROW_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(FARROW_BETA)
    taps = np.sinc(t) * window
    vander = np.vander(mus, FARROW_DEGREE + 1, increasing=True)
    coefficients, *_ = np.linalg.lstsq(vander, taps, rcond=None)
    return coefficients


_EMISSION_SERIALS = itertools.count()
_CACHED_VECTOR_MAX = 1 << 17
"""Longest frequency grid or LO-offset ramp kept in the small caches below (a slot-sized buffer's)."""


@lru_cache(maxsize=16)
def _shifted_freqs(size: int, oversample: int) -> np.ndarray:
    """``fftshift(fftfreq(size, 1 / oversample))``, cached (read-only)."""
    freqs = sfft.fftshift(sfft.fftfreq(size, 1.0 / oversample))
    freqs.flags.writeable = False
    return freqs


@lru_cache(maxsize=16)
def _fft_freqs(length: int, rate: float) -> np.ndarray:
    """``fftfreq(length, 1 / rate)``, cached (read-only)."""
    freqs = sfft.fftfreq(length, 1.0 / rate)
    freqs.flags.writeable = False
    return freqs


@lru_cache(maxsize=16)
def _offset_ramp(cycles_per_sample: float, m: int) -> np.ndarray:
    """``exp(j 2 pi cycles_per_sample k)``, k < m, complex128, cached (read-only): the LO offset of a link on the
    receiver's grid, the same for every buffer the link carries."""
    ramp = np.exp(2j * np.pi * cycles_per_sample * np.arange(m))
    ramp.flags.writeable = False
    return ramp


def _sum_moments(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """(E|x|^2, E|x|^4, E|x|^6) of x = a + b for independent circular a and b."""
    return (a[0] + b[0],
            a[1] + 4.0 * a[0] * b[0] + b[1],
            a[2] + 9.0 * a[1] * b[0] + 9.0 * a[0] * b[1] + b[2])


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _seedseq(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=tuple(key))


_PURPOSE_TRUTH, _PURPOSE_TX_STREAM, _PURPOSE_RX_STREAM, _PURPOSE_NOISE, _PURPOSE_LINK, _PURPOSE_POOL = range(6)


class _Stream:
    """A pre-generated periodic complex64 process at a fixed rate, read by air-time grid index."""

    def __init__(self, period: np.ndarray, rate: float):
        self.rate = rate
        self.period = period.size
        self.data = np.concatenate([period, period[:min(STREAM_TAIL, period.size)]]).astype(np.complex64)
        self.peak = float(np.max(np.abs(period))) if period.size else 0.0
        self._faster: dict[int, _Stream] = {}

    def faster(self, factor: int) -> "_Stream":
        """The same process at ``factor`` times the rate (exact band-limited interpolation of the period)."""
        stream = self._faster.get(factor)
        if stream is None:
            stream = _Stream(fe.oversample_periodic(self.data[:self.period], factor), self.rate * factor)
            self._faster[factor] = stream
        return stream

    def window(self, start: int, count: int) -> np.ndarray:
        """Samples ``start ... start + count - 1`` (indices at the stream's own rate, wrapped): complex64 [count]."""
        s = start % self.period
        if s + count <= self.data.size:
            return self.data[s:s + count]
        return np.take(self.data[:self.period], np.arange(s, s + count), mode="wrap")

    def on_grid(self, first: int, count: int, grid_rate: float) -> np.ndarray:
        """The stream at air times ``(first + i) / grid_rate``, i < count (nearest sample): complex64 [count]."""
        if grid_rate == self.rate:
            return self.window(first, count)
        factor = grid_rate / self.rate
        if factor == round(factor) and 1 < factor <= 16:
            return self.faster(int(factor)).window(first, count)
        idx = np.floor((first + np.arange(count, dtype=np.float64)) * (self.rate / grid_rate) + 0.5)
        return np.take(self.data[:self.period], idx.astype(np.int64) % self.period)


@dataclass
class _RadioState:
    name: str
    params: RadioParams
    """Resolved parameters, ppm drawn if it was not given."""
    leak_phase: float
    radio: SimRadio | None = None
    settings: RadioSettings | None = None
    cursor_s: float = 0.0
    noise_rng: np.random.Generator | None = None
    tx_stream: _Stream | None = None
    rx_stream: _Stream | None = None
    stream_rate: float = 0.0
    stream_version: int = 0
    emission: "_Emission | None" = None
    rx_stream_scaled: tuple[float, "_Stream", "_Stream"] | None = None
    noise_scaled: tuple[tuple[float, float], np.ndarray, float] | None = None
    plan: tuple[tuple, int, bool] | None = None
    """Last receive plan (key, oversampling, LNA on), reused while the same transmissions are heard."""

    def tx_lo(self, settings: RadioSettings) -> float:
        return settings.lo_hz * (1.0 + self.params.ppm * 1e-6)

    def rx_lo(self) -> float:
        assert self.settings is not None
        return self.settings.rx_lo * (1.0 + self.params.ppm * 1e-6)


@dataclass
class _TxBuffer:
    """The deterministic TX chain output of one transmit call (digital units, oversampled)."""

    z: np.ndarray
    """complex64 [(n + 2 pad) * oversample]: PA output, one period (cyclic) or the padded burst (one-shot)."""
    n: int
    pad: int
    oversample: int
    spectra: dict[int, np.ndarray] = field(default_factory=dict)
    """FFT of ``z`` zero-padded to a length, by that length (complex128)."""
    occupied: tuple[float, float] = (-0.5, 0.5)
    """Band holding 99 % of the output power, as fractions of the TX sample rate (low, high)."""
    moments: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """mean |z|^2, |z|^4, |z|^6 over the buffer (the burst itself for a one-shot), digital units."""

    def measure(self) -> None:
        """Fill ``moments`` and ``occupied``."""
        body = self.z[self.pad * self.oversample:(self.pad + self.n) * self.oversample].astype(np.complex128)
        power = body.real ** 2 + body.imag ** 2
        self.moments = (float(np.mean(power)), float(np.mean(power ** 2)), float(np.mean(power ** 3)))
        spec = self.spectrum(self.z.size)
        power = np.abs(sfft.fftshift(spec)) ** 2
        total = power.sum()
        if total <= 0:
            return
        cumulative = np.cumsum(power) / total
        freqs = (_shifted_freqs(self.z.size, self.oversample) if self.z.size <= _CACHED_VECTOR_MAX
                 else sfft.fftshift(sfft.fftfreq(self.z.size, 1.0 / self.oversample)))
        low = freqs[min(np.searchsorted(cumulative, 0.005), freqs.size - 1)]
        high = freqs[min(np.searchsorted(cumulative, 0.995), freqs.size - 1)]
        self.occupied = (float(low), float(high))

    def spectrum(self, length: int) -> np.ndarray:
        spec = self.spectra.get(length)
        if spec is None:
            z = self.z.astype(np.complex128)
            if length > z.size:
                z = np.concatenate([z, np.zeros(length - z.size, np.complex128)])
            spec = sfft.fft(z)
            self.spectra[length] = spec
        return spec


@dataclass
class _LinkCache:
    """One transmission as received by one receiver at one processing rate (air units, before TX phase noise)."""

    u: np.ndarray
    """complex64 [M]: one period (cyclic) or the whole padded burst (one-shot), LO offset ramp included."""
    g_first: int
    """Processing-grid index where ``u[0]`` lands."""
    phase0: float
    """Phase (rad) of period 0."""
    step: float
    """Phase advance (rad) per period, from the LO offset."""
    peak: float
    """Largest |u|."""
    key: tuple
    position: float = 0.0
    """Processing-grid position (fractional) where the transmission's sample 0 lands: the point the sample-clock
    stretch is anchored at."""
    clock: float = 0.0
    """Relative sample-clock offset ``(1 + ppm_tx 1e-6) / (1 + ppm_rx 1e-6) - 1``: grid index ``g`` receives what
    an exact clock would receive at ``g + clock (g - position)``."""
    tiled: np.ndarray | None = None
    """Several periods of a cyclic ``u`` with their phase steps (see ``SimulatedAir._tiled``)."""
    prescaled: tuple[tuple, np.ndarray] | None = None
    """A constant-phase contribution pre-multiplied by its phase and the receiver's scale."""

    @property
    def constant_phase(self) -> bool:
        """Whether every period has the same phase (the LO offset turns a whole number of cycles per period)."""
        return abs(math.remainder(self.step, 2.0 * math.pi)) < 1e-12


@dataclass
class _Emission:
    tx: _RadioState
    buffer: _TxBuffer
    settings: RadioSettings
    origin_s: float
    """Air time of buffer sample 0."""
    t_on: float
    t_off: float
    cyclic: bool
    caches: dict[tuple[str, int], _LinkCache] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_EMISSION_SERIALS))

    @property
    def anchor_s(self) -> float:
        """Air time of ``buffer.z[0]`` (before the one-shot padding)."""
        return self.origin_s - self.buffer.pad / self.settings.rate_sps

    @property
    def start_s(self) -> float:
        return self.t_on if self.cyclic else self.anchor_s

    @property
    def end_s(self) -> float:
        if self.cyclic:
            return self.t_off
        return self.anchor_s + (self.buffer.n + 2 * self.buffer.pad) / self.settings.rate_sps


@dataclass
class _LinkState:
    tx: str
    rx: str
    params: LinkParams
    phase: float
    jakes_angles: np.ndarray
    jakes_phases: np.ndarray
    version: int = 0


@dataclass
class _Source:
    """One transmission heard by the receiver being computed."""

    emission: _Emission
    link: _LinkState
    cache: _LinkCache
    tx_stream: _Stream | None


class _RxTail:
    """The end of one receive call, applied block by block: RX LO phase noise and distortion, gain to digital
    units, thermal noise (which the first two would leave white), ADC. Adding and removing a rounding offset
    quantises float32 to the ADC step."""

    def __init__(self, air: "SimulatedAir", st: _RadioState, n: int, digital: float, noisy: bool):
        p = st.params
        self.bits = p.adc_bits
        self.digital = digital
        self.rx_stream = air._rx_stream_scaled(st, digital)
        self.offset = fe.adc_rounding_offset(self.bits)
        self.full_scale = 1.0 - 1.0 / fe.adc_levels(self.bits) if self.bits < 24 else 1.0
        self.clipped = 0
        self.noise: np.ndarray | None = None
        self.noise_peak = 0.0
        self.noise_start = 0
        self.separate_offset = bool(self.offset)
        self.rng = st.noise_rng
        if noisy and n <= NOISE_SLICE_MAX:
            # Storing the offset with the noise pre-rounds the noise to the ADC step: harmless only when the
            # noise spans several steps (the extra rounding is then < 0.5 % of the noise power).
            bake = self.offset if digital * math.sqrt(0.5) >= 4.0 / fe.adc_levels(self.bits) else 0.0
            assert self.rng is not None
            self.noise_start = int(self.rng.random() * NOISE_POOL_SAMPLES)
            self.noise, self.noise_peak = air._noise_scaled(st, digital, bake)
            self.separate_offset = bool(self.offset) and not bake
        self.fresh_noise = noisy and n > NOISE_SLICE_MAX

    def apply(self, block: np.ndarray, k_first: int, position: int, peak: float) -> None:
        """Finish ``block`` (complex64, internal units -> digital units in place): receiver samples from
        ``k_first``, at ``position`` in the call; ``peak`` bounds |block| before this stage (internal units)."""
        count = block.size
        if self.rx_stream is not None:
            block *= self.rx_stream.window(k_first, count)
            peak *= self.rx_stream.peak
        else:
            v = block.view(np.float32)
            np.multiply(v, np.float32(self.digital), out=v)
            peak *= self.digital
        if self.noise is not None:
            start = self.noise_start + position
            block += self.noise[start:start + count]
            peak += self.noise_peak
        elif self.fresh_noise:
            assert self.rng is not None
            noise = np.empty(count, np.complex64)
            noise.real = self.rng.standard_normal(count, dtype=np.float32)
            noise.imag = self.rng.standard_normal(count, dtype=np.float32)
            noise *= np.float32(self.digital * math.sqrt(0.5))
            block += noise
            peak = math.inf
        if self.separate_offset or (self.fresh_noise and self.offset):
            block += np.complex64(complex(self.offset, self.offset))
        # A complex peak below full scale cannot put I or Q beyond it, so the clipping scan can be skipped.
        self.clipped += fe.adc_finish_inplace(block, self.bits, self.offset,
                                              check_clipping=not peak < self.full_scale)


class SimulatedAir:
    """The air shared by simulated radios: every radio hears every transmitting radio (itself included, through its
    self link) with the path loss, delay, fading and LO offset of that ordered pair.

    ``config`` is the parsed ``[sim]`` table (defaults when None); ``seed`` overrides ``config.seed`` when given.
    See the module documentation for the time model and what is cached.
    """

    def __init__(self, config: SimConfig | None = None, seed: int | None = None):
        self.config = config if config is not None else SimConfig()
        self.seed = int(self.config.seed if seed is None else seed)
        if self.seed < 0:
            raise RadioConfigError(f"seed = {seed!r}; allowed: an integer >= 0")
        self._states: dict[str, _RadioState] = {}
        self._links: dict[tuple[str, str], _LinkState] = {}
        self._link_overrides: dict[tuple[str, str], dict[str, Any]] = {}
        self._emissions: list[_Emission] = []
        self._event_s = 0.0
        self._noise_pool: tuple[np.ndarray, float] | None = None
        self._fir_spectra: dict[tuple[int, int, float], np.ndarray] = {}
        self._work = np.empty(0, np.complex64)
        self._gain_buf = np.empty(0, np.float32)
        self._farrow_spectra: dict[int, np.ndarray] = {}
        self.lock = threading.RLock()
        """Held by each of this air's radios for a whole call: the air is one state shared by all of them, and a
        served radio may be told to stop transmitting (by a server's watchdog) while another thread receives."""

    # ---- public API -------------------------------------------------------------------------------------------
    def radio(self, name: str, guard: TxGuard | None = None, settings: RadioSettings | None = None) -> SimRadio:
        """Open the simulated radio ``name`` (any name) on this air. Its impairments are ``config`` for ``name``;
        its hidden draws (ppm when not given, LO-leakage phase) depend only on the seed and the name."""
        if not isinstance(name, str) or not name:
            raise RadioConfigError(f"radio name {name!r}; allowed: a non-empty string")
        state = self._states.get(name)
        if state is not None and state.radio is not None:
            raise RadioConfigError(f"radio {name!r} is already open on this simulated air; close it first")
        if state is None:
            state = self._new_state(name)
            self._states[name] = state
        radio = SimRadio(self, name, guard, settings)
        state.radio = radio
        state.cursor_s = self.now
        return radio

    @property
    def now(self) -> float:
        """The air clock (s): the latest receive cursor or event."""
        cursors = [s.cursor_s for s in self._states.values() if s.radio is not None]
        return max([self._event_s, *cursors])

    def advance(self, seconds: float) -> float:
        """Let ``seconds`` of air time pass: the next receive of every radio starts at least that much later than
        ``now``. Returns the new ``now``."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
            raise RadioConfigError(f"advance({seconds!r}); allowed: a finite number of seconds >= 0")
        self._event_s = self.now + float(seconds)
        return self._event_s

    def set_link(self, tx: str, rx: str, **changes: Any) -> LinkParams:
        """Change the link ``tx -> rx`` from now on (any link key of the ``[sim]`` table). Values are checked as in
        the table. Returns the link's new parameters."""
        where = "set_link"
        for key, value in changes.items():
            if key not in {f.name for f in dataclasses.fields(LinkParams)}:
                allowed = ", ".join(f.name for f in dataclasses.fields(LinkParams))
                raise RadioConfigError(f"{where}: unknown link key {key!r}; allowed: {allowed}")
            changes[key] = check_value(key, value, f'links."{tx}->{rx}".{key}', where)
        over = self._link_overrides.setdefault((tx, rx), {})
        over.update(changes)
        link = self._link(tx, rx)
        link.params = dataclasses.replace(link.params, **changes)
        link.version += 1
        self._event_s = self.now
        return link.params

    def hidden_truth(self) -> dict[str, Any]:
        """FOR TESTS ONLY: every radio's hidden parameters and every link between open radios. Calibration code must
        never read this."""
        names = [n for n, s in self._states.items() if s.radio is not None]
        links = {}
        for tx in names:
            for rx in names:
                link = self._link(tx, rx)
                links[f"{tx}->{rx}"] = {**dataclasses.asdict(link.params), "phase_rad": link.phase}
        return {"seed": self.seed, "radios": {n: self._radio_truth(n) for n in names}, "links": links}

    def identity(self) -> dict[str, Any]:
        return {"kind": "simulated air", "seed": self.seed}

    def radio_fingerprint(self, name: str) -> str:
        """sha256 (64 hex digits) of what makes radio ``name`` the unit it is on this air: its resolved parameters
        (ppm drawn from the seed when not given), the air's parameters and seed (which fix every hidden draw), and
        the parameters of each link between it and every radio open on this air, both directions, its self link
        included. A pure function of the ``[sim]`` config, the seed and the set of open radios: unlike
        :meth:`hidden_truth`, nothing in it depends on the radio's current settings."""
        st = self._states.get(name)
        if st is None:
            raise RadioConfigError(f"simulated radio {name!r} was never opened on this air; open ones: "
                                   f"{sorted(self._states) or 'none'}")
        peers = sorted({n for n, s in self._states.items() if s.radio is not None} | {name})
        links = {f"{tx}->{rx}": dataclasses.asdict(self._link_params(tx, rx))
                 for peer in peers for tx, rx in sorted({(name, peer), (peer, name)})}
        description = {"radio": dataclasses.asdict(st.params),
                       "air": {**dataclasses.asdict(self.config.air), "seed": self.seed}, "links": links}
        canonical = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # ---- radio bookkeeping ------------------------------------------------------------------------------------
    def _new_state(self, name: str) -> _RadioState:
        params = self.config.radio_params(name)
        rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_TRUTH, _name_key(name)))
        ppm_draw = float(rng.uniform(-params.ppm_spread, params.ppm_spread))
        leak_phase = float(rng.uniform(0.0, 2.0 * np.pi))
        if params.ppm is None:
            params = dataclasses.replace(params, ppm=ppm_draw)
        noise_rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_NOISE, _name_key(name)))
        return _RadioState(name=name, params=params, leak_phase=leak_phase, noise_rng=noise_rng)

    def _radio_bits(self, name: str) -> tuple[int, int]:
        p = self._states[name].params if name in self._states else self.config.radio_params(name)
        return p.dac_bits, p.adc_bits

    def _radio_truth(self, name: str) -> dict[str, Any]:
        st = self._states[name]
        p = st.params
        jitter = fe.phase_noise_rms_rad(p.phase_noise_dbc_hz, p.phase_noise_offset_hz, p.phase_noise_corner_hz)
        mu, nu = fe.iq_imbalance_coefficients(p.iq_gain_db, p.iq_phase_deg)
        return {
            "name": name,
            "params": dataclasses.asdict(p),
            "lo_leakage_phase_rad": st.leak_phase,
            "phase_noise_rms_deg": math.degrees(jitter),
            "iq_image_rejection_db": -10.0 * math.log10(abs(nu) ** 2 / abs(mu) ** 2) if nu else math.inf,
            "thermal_noise_dbm": (fe.mw_to_dbm(fe.thermal_noise_mw(st.settings.rate_sps, p.noise_figure_db,
                                                                   p.temperature_c))
                                  if st.settings is not None else None),
        }

    def _state(self, name: str) -> _RadioState:
        st = self._states.get(name)
        if st is None or st.radio is None:
            raise RadioDisconnected(f"simulated radio {name!r} is not open on this air")
        return st

    def _unregister(self, name: str) -> None:
        st = self._states.get(name)
        if st is None:
            return
        if st.emission is not None:
            self._stop_emission(name)
        st.radio = None

    def _apply(self, name: str, settings: RadioSettings) -> None:
        st = self._state(name)
        old = st.settings
        st.settings = settings
        if old is None:
            return
        now = self.now
        if (old.rx_lo, old.rate_sps) != (settings.rx_lo, settings.rate_sps):
            st.cursor_s = max(st.cursor_s, now)  # a retuned receiver restarts its stream
        em = st.emission
        if em is not None and (old.lo_hz, old.rate_sps, old.tx_gain_db) != (
                settings.lo_hz, settings.rate_sps, settings.tx_gain_db):
            # Retuning a running transmitter: the same buffer goes on at the new settings from now.
            self._event_s = now
            em.t_off = now
            origin = em.origin_s if settings.rate_sps == old.rate_sps else now
            st.emission = _Emission(st, em.buffer, settings, origin, now, math.inf, True)
            self._emissions.append(st.emission)

    # ---- transmit ---------------------------------------------------------------------------------------------
    def _start_emission(self, name: str, samples: np.ndarray, cyclic: bool) -> None:
        st = self._state(name)
        assert st.settings is not None
        now = self.now
        self._event_s = now
        if st.emission is not None:
            st.emission.t_off = now
            st.emission = None
        pad = 0 if cyclic else ONE_SHOT_PAD
        over = self.config.air.tx_oversample
        while over > 1 and (samples.size + 2 * pad) * over > MAX_TX_CHAIN_SAMPLES:
            over //= 2
        z = fe.tx_chain(samples, st.params, st.leak_phase, over, pad).astype(np.complex64)
        buffer = _TxBuffer(z=z, n=int(samples.size), pad=pad, oversample=over)
        buffer.measure()
        t_off = math.inf if cyclic else now + samples.size / st.settings.rate_sps
        em = _Emission(st, buffer, st.settings, now, now, t_off, cyclic)
        self._emissions.append(em)
        if cyclic:
            st.emission = em

    def _stop_emission(self, name: str) -> None:
        st = self._states[name]
        now = self.now
        self._event_s = now
        if st.emission is not None:
            st.emission.t_off = now
            st.emission = None

    # ---- links ------------------------------------------------------------------------------------------------
    def _link_params(self, tx: str, rx: str) -> LinkParams:
        """The current parameters of the link ``tx -> rx`` (config and overrides), without drawing its state."""
        link = self._links.get((tx, rx))
        if link is not None:
            return link.params
        return dataclasses.replace(self.config.link_params(tx, rx), **self._link_overrides.get((tx, rx), {}))

    def _link(self, tx: str, rx: str) -> _LinkState:
        link = self._links.get((tx, rx))
        if link is None:
            params = self.config.link_params(tx, rx)
            if (tx, rx) in self._link_overrides:
                params = dataclasses.replace(params, **self._link_overrides[(tx, rx)])
            rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_LINK, _name_key(tx), _name_key(rx)))
            phase = float(rng.uniform(0.0, 2.0 * np.pi))
            m = fe.JAKES_SINUSOIDS
            theta = rng.uniform(-np.pi, np.pi)
            angles = (2.0 * np.pi * np.arange(1, m + 1) - np.pi + theta) / m
            phases = rng.uniform(-np.pi, np.pi, m)
            link = _LinkState(tx, rx, params, phase, angles, phases)
            self._links[(tx, rx)] = link
        return link

    def _link_cache(self, em: _Emission, rx: _RadioState, link: _LinkState, over: int) -> _LinkCache | None:
        assert rx.settings is not None
        key = (rx.settings.rx_lo, rx.settings.rate_sps, rx.params.ppm, link.version)
        hit = em.caches.get((rx.name, over))
        if hit is not None and hit.key == key:
            return hit
        cache = self._build_link_cache(em, rx, link, over, key)
        if cache is not None:
            em.caches[(rx.name, over)] = cache
        return cache

    def _build_link_cache(self, em: _Emission, rx: _RadioState, link: _LinkState, over: int,
                          key: tuple) -> _LinkCache | None:
        """Resample one transmission onto the receiver's processing grid (rate ``over`` * rx rate): band selection,
        fractional delay, path loss and LO offset, in the frequency domain."""
        assert rx.settings is not None
        buf = em.buffer
        rate_z = buf.oversample * em.settings.rate_sps
        grid_rate = over * rx.settings.rate_sps
        rho = grid_rate / rate_z
        n_z = buf.z.size
        frac = Fraction(rho).limit_denominator(1 << 16)
        exact = abs(float(frac) - rho) <= 1e-12 * rho
        length = n_z
        if exact:
            p, q = frac.numerator, frac.denominator
            if em.cyclic:
                periods = q // math.gcd(q, n_z)
                m = periods * n_z * p // q
                if m > MAX_TX_CHAIN_SAMPLES * 4:
                    exact = False
            else:
                length = -(-n_z // q) * q
                m = length * p // q
        if not exact:
            # No short common period: the receiver's grid is stretched by < 0.5 / m for this link.
            m = max(1, round(n_z * rho))
        spec = buf.spectrum(length)
        freqs = _fft_freqs(length, rate_z) if length <= _CACHED_VECTOR_MAX else sfft.fftfreq(length, 1.0 / rate_z)
        offset = em.tx.tx_lo(em.settings) - rx.rx_lo()
        rx_freq = freqs + offset
        sel = (rx_freq >= -grid_rate / 2.0) & (rx_freq < grid_rate / 2.0)
        if not np.any(sel):
            return None
        delay_s = link.params.delay_samples / rx.settings.rate_sps
        anchor = em.anchor_s if not em.cyclic else em.origin_s
        position = (anchor + delay_s) * grid_rate
        g_first = math.ceil(position - _GRID_TOL)
        delta_s = (position - g_first) / grid_rate
        amp = fe.tx_amplitude(em.tx.params.tx_fullscale_dbm, em.settings.tx_gain_db)
        amp *= 10.0 ** (-link.params.path_loss_db / 20.0)
        coeff = spec[sel] * (amp / length) * np.exp(-2j * np.pi * freqs[sel] * delta_s)
        if over == 1:
            coeff *= fe.rx_channel_response(rx_freq[sel], rx.settings.rate_sps)
        index = np.rint(freqs[sel] * (m / grid_rate)).astype(np.int64) % m
        placed = np.zeros(m, np.complex128)
        if exact:
            placed[index] = coeff  # distinct bins
        else:
            np.add.at(placed, index, coeff)
        u = sfft.ifft(placed) * m
        # The receiver counts the LO difference in its own clock's Hz, offset / (1 + ppm_rx 1e-6); the sample-clock
        # stretch (1 + ppm_tx 1e-6) / (1 + ppm_rx 1e-6) applied later scales this ramp too, hence its frequency.
        ramp_hz = offset / (1.0 + em.tx.params.ppm * 1e-6)
        if m <= _CACHED_VECTOR_MAX:
            u *= _offset_ramp(ramp_hz / grid_rate, m)
        else:
            u *= np.exp(2j * np.pi * (ramp_hz / grid_rate) * np.arange(m))
        cycles0 = math.fmod(ramp_hz * (g_first / grid_rate), 1.0)
        step = 2.0 * np.pi * math.fmod(ramp_hz * (m / grid_rate), 1.0)
        u64 = u.astype(np.complex64)
        power = np.abs(u) ** 2
        clock = (1.0 + em.tx.params.ppm * 1e-6) / (1.0 + rx.params.ppm * 1e-6) - 1.0
        return _LinkCache(u=u64, g_first=g_first, phase0=link.phase + 2.0 * np.pi * cycles0, step=step,
                          peak=float(np.sqrt(power.max())), key=key, position=position, clock=clock)

    # ---- streams ----------------------------------------------------------------------------------------------
    def _streams(self, st: _RadioState) -> tuple[_Stream | None, _Stream | None]:
        """(TX stream, RX stream) of a radio at its current rate, generated on first use and on rate changes."""
        assert st.settings is not None
        rate = st.settings.rate_sps
        if st.stream_rate != rate:
            st.stream_version += 1
            key = (_name_key(st.name), st.stream_version)
            tx_rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_TX_STREAM, *key))
            rx_rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_RX_STREAM, *key))
            tx = fe.multiplicative_stream(STREAM_SAMPLES, rate, st.params.tx_evm, st.params, tx_rng)
            rx = fe.multiplicative_stream(STREAM_SAMPLES, rate, st.params.rx_evm, st.params, rx_rng)
            st.tx_stream = None if tx is None else _Stream(tx, rate)
            st.rx_stream = None if rx is None else _Stream(rx, rate)
            st.stream_rate = rate
        return st.tx_stream, st.rx_stream

    def _noise(self) -> tuple[np.ndarray, float]:
        """The pool of unit-power complex Gaussian noise (complex64 [NOISE_POOL_SAMPLES + NOISE_SLICE_MAX], the tail
        repeating the head) and its largest magnitude."""
        if self._noise_pool is None:
            rng = np.random.default_rng(_seedseq(self.seed, _PURPOSE_POOL))
            n = NOISE_POOL_SAMPLES
            w = np.empty(n + NOISE_SLICE_MAX, np.complex64)
            w[:n].real = rng.standard_normal(n, dtype=np.float32)
            w[:n].imag = rng.standard_normal(n, dtype=np.float32)
            w[:n] *= np.float32(math.sqrt(0.5))
            w[n:] = w[:NOISE_SLICE_MAX]
            self._noise_pool = (w, float(np.max(np.abs(w))))
        return self._noise_pool

    # ---- receive ----------------------------------------------------------------------------------------------
    def _plan(self, rx: _RadioState, heard: list[tuple[_Emission, _LinkState]], unit: float, noisy: bool,
              t0: float, t1: float) -> tuple[int, bool]:
        """(oversampling, whether to apply the LNA's cubic term) for one receive call.

        The LNA matters when its cubic term could reach 1 % of the thermal noise power or change the gain by
        0.01 dB; the moments of the sum at its input are estimated from each transmission's moments as if the
        transmissions were independent and circular. The receiver is oversampled, to the smallest power of two
        (<= rx_oversample_max) that holds the occupied band (99 % of the power) of every transmitter it hears, only
        when the transmitters outside its own band matter to the LNA; otherwise only their in-band part is
        computed.
        """
        assert rx.settings is not None
        p = rx.params
        if math.isinf(p.lna_iip3_dbm) or not heard:
            return 1, False
        top = self.config.air.rx_oversample_max
        rate = rx.settings.rate_sps
        f_rx = rx.settings.rx_lo
        p3 = fe.dbm_to_mw(p.lna_iip3_dbm) / (unit * unit)
        need = 1
        inside = (0.0, 0.0, 0.0)
        outside = (0.0, 0.0, 0.0)
        for em, link in heard:
            f_tx, r_tx = em.settings.lo_hz, em.settings.rate_sps
            low, high = (f_tx + r_tx * edge - f_rx for edge in em.buffer.occupied)
            amp = fe.tx_amplitude(em.tx.params.tx_fullscale_dbm, em.settings.tx_gain_db)
            amp *= 10.0 ** (-link.params.path_loss_db / 20.0) / unit
            tx_stream, _ = self._streams(em.tx)
            if tx_stream is not None:
                amp *= tx_stream.peak
            if link.params.fading == "jakes":
                amp *= self._fading_peak(link, t0, t1)
            a2 = amp * amp
            m2, m4, m6 = em.buffer.moments
            link_moments = (a2 * m2, a2 * a2 * m4, a2 * a2 * a2 * m6)
            half = max(abs(low), abs(high))
            over = 1
            while over < top and over * rate / 2.0 < half * (1.0 - 1e-9):
                over *= 2
            if over == 1:
                inside = _sum_moments(inside, link_moments)
            elif high > -top * rate / 2.0 and low < top * rate / 2.0:
                outside = _sum_moments(outside, link_moments)
                need = max(need, over)
            # else: beyond even the widest band, only its far regrowth reaches this receiver

        def relevant_power(power: float) -> bool:  # noise units
            return not noisy or power >= LNA_NEGLIGIBLE_NOISE_RATIO

        total = _sum_moments(inside, outside)
        lna_on = relevant_power(total[2] / (p3 * p3)) or 2.0 * total[0] / p3 >= LNA_NEGLIGIBLE_GAIN
        if not lna_on:
            return 1, False
        # Signals outside the band act on the receiver through the gain compression they cause (2 P / P3), the
        # desensitisation term 2 |b|^2 a / P3 on in-band signals, and their own products spilling in.
        wide = (2.0 * outside[0] / p3 >= LNA_NEGLIGIBLE_GAIN
                or relevant_power(4.0 * outside[1] * inside[0] / (p3 * p3))
                or relevant_power(outside[2] / (p3 * p3)))
        return (need if wide else 1), True

    def _fading_peak(self, link: _LinkState, t0: float, t1: float) -> float:
        """Largest |h| of a link's Jakes fading over [t0, t1] (on a grid of 64 points per Doppler cycle)."""
        fd = link.params.doppler_hz
        step = 1.0 / (max(fd, 1e-9) * _JAKES_POINTS_PER_CYCLE)
        if fd == 0 or (t1 - t0) < step:
            times = np.array([t0])
        else:
            times = np.arange(math.floor(t0 / step), math.ceil(t1 / step) + 1) * step
        return float(np.max(np.abs(fe.jakes_gains(times, fd, link.jakes_angles, link.jakes_phases))))

    def _receive(self, name: str, n: int) -> Reception:
        st = self._state(name)
        settings = st.settings
        assert settings is not None
        p = st.params
        rate = settings.rate_sps
        k0 = math.ceil(max(st.cursor_s, self._event_s) * rate - _GRID_TOL)
        t0, t1 = k0 / rate, (k0 + n) / rate
        self._collect_garbage()

        heard = []
        slack = (DECIMATION_MARGIN + 2) / rate
        for em in self._emissions:
            link = self._link(em.tx.name, name)
            if math.isinf(link.params.path_loss_db):
                continue
            delay_s = link.params.delay_samples / rate
            if em.start_s + delay_s < t1 + slack and em.end_s + delay_s > t0 - slack:
                heard.append((em, link))
        # Internal unit: the thermal-noise RMS, so the noise pool adds unscaled (air units when there is no noise).
        sigma = math.sqrt(fe.thermal_noise_mw(rate, p.noise_figure_db, p.temperature_c))
        unit = sigma if sigma > 0 else 1.0
        plan_key = (tuple(em.serial for em, _ in heard), tuple(link.version for _, link in heard), settings, unit)
        if any(link.params.fading == "jakes" for _, link in heard) or st.plan is None or st.plan[0] != plan_key:
            over, lna_on = self._plan(st, heard, unit, sigma > 0, t0, t1)
            st.plan = (plan_key, over, lna_on)
        else:
            over, lna_on = st.plan[1], st.plan[2]
        grid_rate = over * rate

        sources: list[_Source] = []
        peak = 0.0  # bound on |sum| at the LNA input, internal units
        for em, link in heard:
            cache = self._link_cache(em, st, link, over)
            if cache is None:
                continue
            tx_stream, _ = self._streams(em.tx)
            gain = 1.0 / unit
            if tx_stream is not None:
                gain *= tx_stream.peak
            if link.params.fading == "jakes":
                gain *= self._fading_peak(link, t0, t1)
            sources.append(_Source(em, link, cache, tx_stream))
            peak += cache.peak * gain * (RESAMPLED_PEAK_MARGIN if cache.clock else 1.0)
        p3 = fe.dbm_to_mw(p.lna_iip3_dbm) / (unit * unit) if lna_on else math.inf
        lna_saturates = peak * peak > p3 / 3.0

        digital = fe.rx_digital_gain(settings.rx_gain_db, p.rx_fullscale_dbm) * unit
        tail = _RxTail(self, st, n, digital, sigma > 0)
        out = np.empty(n, np.complex64)
        # Blocks of CHUNK samples keep the work arrays in cache; an oversampled block carries margins for the
        # channel filter, so blocks join seamlessly.
        for c0 in range(0, n, CHUNK):
            c1 = min(n, c0 + CHUNK)
            block = out[c0:c1]
            if over == 1:
                self._sum_sources(sources, k0 + c0, c1 - c0, grid_rate, rate, unit, block)
                if lna_on:
                    fe.lna_cubic_units(block, p3, lna_saturates, self._gain_work(c1 - c0))
                tail.apply(block, k0 + c0, c0, peak)
            else:
                margin = DECIMATION_MARGIN
                n_dec = sfft.next_fast_len(c1 - c0 + 2 * margin)
                wide = np.empty(n_dec * over, np.complex64)
                self._sum_sources(sources, (k0 + c0 - margin) * over, wide.size, grid_rate, rate, unit, wide)
                if lna_on:
                    fe.lna_cubic_units(wide, p3, lna_saturates, self._gain_work(wide.size))
                block[:] = self._decimate(wide, over, n_dec, margin, c1 - c0, rate)
                tail.apply(block, k0 + c0, c0, peak * 1.5)  # the channel filter's ringing can raise peaks a little

        st.cursor_s = t1
        meta = RxMetadata(radio=name, lo_hz=settings.rx_lo, rate_sps=rate, gain_db=settings.rx_gain_db,
                          timestamp_s=t0, clip_count=tail.clipped, temperature_c=p.temperature_c,
                          extra={"rx_oversample": over, "transmitters_heard": len(heard)})
        return Reception(out, meta)

    def _sum_sources(self, sources: list["_Source"], g_start: int, count: int, grid_rate: float, rx_rate: float,
                     unit: float, out: np.ndarray) -> None:
        """Write into ``out`` (complex64 [count], internal units) the sum of every heard transmission at
        processing-grid indices [g_start, g_start + count)."""
        first = True
        for src in sources:
            target = out if first else self._scratch(count)
            if src.cache.clock:
                span = self._contribute_resampled(src, g_start, count, grid_rate, rx_rate, 1.0 / unit, target)
            else:
                span = self._contribute(src, g_start, count, grid_rate, rx_rate, 1.0 / unit, target)
            if span is None:
                continue
            a, b = span
            if first:
                if a:
                    out[:a] = 0
                if b < count:
                    out[b:] = 0
                first = False
            else:
                out[a:b] += target[a:b]
        if first:
            out[:] = 0

    def _gain_work(self, count: int) -> np.ndarray:
        """A reusable float32 work buffer of ``count`` samples (contents undefined)."""
        if self._gain_buf.size < count:
            self._gain_buf = np.empty(count, np.float32)
        return self._gain_buf[:count]

    def _scratch(self, count: int) -> np.ndarray:
        """A reusable complex64 work buffer of ``count`` samples (contents undefined)."""
        if self._work.size < count:
            self._work = np.empty(count, np.complex64)
        return self._work[:count]

    def _rx_stream_scaled(self, st: _RadioState, scale: float) -> _Stream | None:
        """The radio's RX stream multiplied by ``scale`` (internal units -> digital units), cached per scale."""
        _, rx_stream = self._streams(st)
        if rx_stream is None:
            return None
        cached = st.rx_stream_scaled
        if cached is None or cached[0] != scale or cached[1] is not rx_stream:
            scaled = _Stream(rx_stream.data[:rx_stream.period] * np.complex64(scale), rx_stream.rate)
            st.rx_stream_scaled = (scale, rx_stream, scaled)
            return scaled
        return cached[2]

    def _noise_scaled(self, st: _RadioState, scale: float, offset: float) -> tuple[np.ndarray, float]:
        """The noise pool times ``scale`` plus ``offset`` on I and Q (complex64), cached per receiver, and the
        largest magnitude of the scaled noise."""
        cached = st.noise_scaled
        if cached is None or cached[0] != (scale, offset):
            pool, pool_peak = self._noise()
            data = pool * np.complex64(scale)
            if offset:
                data += np.complex64(complex(offset, offset))
            cached = ((scale, offset), data, pool_peak * scale)
            st.noise_scaled = cached
        return cached[1], cached[2]

    def _contribute(self, src: "_Source", g0: int, count: int, grid_rate: float, rx_rate: float, scale: float,
                    out: np.ndarray) -> tuple[int, int] | None:
        """Write ``scale`` times the contribution of one heard transmission at processing-grid indices
        [g0, g0 + count) into ``out``: its cached waveform with the phase of each period, times the transmitter's
        phase-noise/distortion stream and the link's fading. Returns the span [a, b) of ``out`` written, or None
        when the transmission is silent there."""
        em, cache, link = src.emission, src.cache, src.link
        m = cache.u.size
        if em.cyclic:
            delay_s = link.params.delay_samples / rx_rate
            lo = max(g0, math.ceil((em.t_on + delay_s) * grid_rate - _GRID_TOL), cache.g_first)
            hi = g0 + count
            if math.isfinite(em.t_off):
                hi = min(hi, math.ceil((em.t_off + delay_s) * grid_rate - _GRID_TOL))
        else:
            lo, hi = max(g0, cache.g_first), min(g0 + count, cache.g_first + m)
        if lo >= hi:
            return None
        a, b = lo - g0, hi - g0
        rel = lo - cache.g_first
        stream = src.tx_stream.on_grid(lo, b - a, grid_rate) if src.tx_stream is not None else None
        # A one-shot burst, or a cyclic buffer whose LO offset turns a whole number of cycles per period, has one
        # phase throughout: its waveform is kept pre-multiplied by that phase, saving a pass.
        constant = not em.cyclic or cache.constant_phase
        tile = em.cyclic and 4 * m <= b - a  # tiling pays off only when a window spans many periods
        pos = a
        while pos < b:
            period, i0 = divmod(rel + (pos - a), m) if em.cyclic else (0, rel)
            if tile:
                take = min(b - pos, TILED_MAX - m)
            else:
                take = min(b - pos, m - i0)
            if constant:
                base = self._prescaled(cache, scale, tile, i0 + take)
                phasor = None
            else:
                base = self._tiled(cache, i0 + take) if tile else cache.u
                angle = math.fmod(cache.phase0 + cache.step * period, 2.0 * math.pi)
                phasor = np.complex64(scale * cmath.exp(1j * angle))
            piece, dst = base[i0:i0 + take], out[pos:pos + take]
            factor = stream[pos - a:pos - a + take] if stream is not None else None
            if phasor is None:
                if factor is not None:
                    np.multiply(piece, factor, out=dst)
                else:
                    dst[:] = piece
            else:
                np.multiply(piece, phasor, out=dst)
                if factor is not None:
                    dst *= factor
            pos += take
        if link.params.fading == "jakes":
            out[a:b] *= self._fading(link, lo, b - a, grid_rate)
        return a, b

    def _contribute_resampled(self, src: "_Source", g0: int, count: int, grid_rate: float, rx_rate: float,
                              scale: float, out: np.ndarray) -> tuple[int, int] | None:
        """:meth:`_contribute` for a transmitter whose sample clock differs from the receiver's: grid index ``g``
        receives the exact-clock contribution at ``g + clock (g - position)`` (module docstring), interpolated by
        the Farrow filter from the exact-clock samples around it. Returns the span of ``out`` written (all of
        it) or None when the transmission is silent there."""
        cache = src.cache
        half = FARROW_HALF_TAPS
        drift = cache.clock * (g0 - cache.position)
        shift = math.floor(drift)
        offsets = (drift - shift) + cache.clock * np.arange(count, dtype=np.float64)
        whole = np.floor(offsets)
        mu = offsets - whole
        whole_i = whole.astype(np.int64)
        lo, hi = int(whole_i[0]), int(whole_i[-1])
        lo, hi = min(lo, hi), max(lo, hi)
        first = g0 + shift + lo - (half - 1)
        n_src = count + (hi - lo) + 2 * half
        src_block = np.zeros(n_src, np.complex64)
        if self._contribute(src, first, n_src, grid_rate, rx_rate, scale, src_block) is None:
            return None
        coefficients = _farrow_coefficients()
        size = sfft.next_fast_len(n_src + 2 * half)
        spectra = self._farrow_spectra.get(size)
        if spectra is None:
            # y_p[i] = sum_k c[p, k] x[i + k]: a correlation, i.e. a convolution with the reversed taps.
            spectra = sfft.fft(coefficients[:, ::-1], size, axis=1).astype(np.complex64)
            if len(self._farrow_spectra) > 8:
                self._farrow_spectra.clear()
            self._farrow_spectra[size] = spectra
        filtered = sfft.ifft(sfft.fft(src_block, size)[None, :] * spectra, axis=1)
        index = np.arange(count) + (whole_i - lo) + (2 * half - 1)
        result = filtered[-1, index]
        for p in range(coefficients.shape[0] - 2, -1, -1):
            result = result * mu + filtered[p, index]
        out[:] = result
        return 0, count

    @staticmethod
    def _tiled(cache: _LinkCache, need: int) -> np.ndarray:
        """Consecutive periods of a cyclic contribution with their period-to-period phase steps, at least ``need``
        samples (complex64): sample q*m + i is u[i] * exp(j step q)."""
        tiled = cache.tiled
        if tiled is None or tiled.size < need:
            m = cache.u.size
            periods = max(1, min(-(-need // m) + 1, -(-TILED_MAX // m)))
            steps = np.exp(1j * np.mod(cache.step * np.arange(periods), 2.0 * np.pi)).astype(np.complex64)
            tiled = (cache.u[None, :] * steps[:, None]).reshape(-1)
            cache.tiled = tiled
        return tiled

    def _prescaled(self, cache: _LinkCache, scale: float, tiled: bool, need: int) -> np.ndarray:
        """``u`` (or its tiled periods, at least ``need`` samples) times ``scale`` and the constant phase of a
        constant-phase contribution, complex64, cached."""
        source = self._tiled(cache, need) if tiled else cache.u
        key = (scale, tiled, source.size)
        if cache.prescaled is None or cache.prescaled[0] != key:
            phasor = np.complex64(scale * cmath.exp(1j * cache.phase0))
            cache.prescaled = (key, source * phasor)
        return cache.prescaled[1]

    def _fading(self, link: _LinkState, first: int, count: int, grid_rate: float) -> np.ndarray:
        """Jakes gains at processing-grid indices [first, first + count): complex64 [count]."""
        fd = link.params.doppler_hz
        t_a, t_b = first / grid_rate, (first + count) / grid_rate
        if fd == 0:
            h0 = fe.jakes_gains(np.array([0.0]), 0.0, link.jakes_angles, link.jakes_phases)[0]
            return np.full(count, h0, np.complex64)
        step = 1.0 / (fd * _JAKES_POINTS_PER_CYCLE)
        k_a, k_b = math.floor(t_a / step), math.ceil(t_b / step)
        coarse_t = np.arange(k_a, k_b + 1, dtype=np.float64) * step
        coarse = fe.jakes_gains(coarse_t, fd, link.jakes_angles, link.jakes_phases)
        t = (first + np.arange(count, dtype=np.float64)) / grid_rate
        h = np.interp(t, coarse_t, coarse.real) + 1j * np.interp(t, coarse_t, coarse.imag)
        return h.astype(np.complex64)

    def _decimate(self, wide: np.ndarray, over: int, n_dec: int, margin: int, n: int, rate: float) -> np.ndarray:
        """Channel filter and decimation of an oversampled block: complex64 [n_dec * over] -> complex64 [n], the
        receiver samples ``margin ... margin + n - 1`` of the block.

        A linear FIR convolution computed by FFT: the block extends ``margin`` >= the filter's half-length on each
        side, so the kept samples equal those of a continuous filter (no block-edge effects), and decimation is a
        fold of the filtered spectrum."""
        key = (wide.size, over, rate)
        response = self._fir_spectra.get(key)
        if response is None:
            taps = fe.rx_channel_fir(rate, over)
            half = taps.size // 2
            centred = np.zeros(wide.size)
            centred[:half + 1] = taps[half:]
            centred[-half:] = taps[:half]
            response = (sfft.fft(centred) / over).astype(np.complex64)
            if len(self._fir_spectra) > 16:
                self._fir_spectra.clear()
            self._fir_spectra[key] = response
        spec = sfft.fft(wide)
        spec *= response
        folded = spec.reshape(over, n_dec).sum(axis=0)
        return np.ascontiguousarray(sfft.ifft(folded)[margin:margin + n])

    def _collect_garbage(self) -> None:
        """Forget transmissions no radio can hear any more."""
        if not any(math.isfinite(e.end_s) for e in self._emissions):
            return
        open_states = [s for s in self._states.values() if s.radio is not None and s.settings is not None]
        if not open_states:
            return
        horizon = min(max(s.cursor_s, self._event_s) for s in open_states)
        min_rate = min(s.settings.rate_sps for s in open_states)  # type: ignore[union-attr]
        max_delay = max([self.config.link.delay_samples]
                        + [o.get("delay_samples", 0.0) for o in self.config.links.values()]
                        + [o.get("delay_samples", 0.0) for o in self._link_overrides.values()]
                        + [l.params.delay_samples for l in self._links.values()])
        slack = (max_delay + DECIMATION_MARGIN + 2) / min_rate
        self._emissions = [e for e in self._emissions if e.end_s + slack > horizon]


__all__ = ["SimulatedAir", "STREAM_SAMPLES", "NOISE_POOL_SAMPLES"]
