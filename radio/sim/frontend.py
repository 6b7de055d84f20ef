"""The RF front-end stages of a simulated radio, each a small vectorised function.

Units used throughout:
- *digital units*: complex baseband at digital full scale 1.0 (0 dBFS = mean |x|^2 = 1), what the DAC receives
  and the ADC delivers;
- *air units*: complex baseband in sqrt(mW), so ``|x|^2`` is power in mW (0 dBm = 1.0), what travels between
  radios and reaches the LNA.

TX chain (per sample buffer, in this order): :func:`quantize` (DAC) -> :func:`iq_imbalance` -> LO leakage ->
:func:`oversample_periodic` (DAC reconstruction) -> :func:`rapp_pa` -> TX gain (:func:`tx_amplitude`) -> LO phase
noise and additive distortion (:func:`multiplicative_stream`). :func:`tx_chain` composes the deterministic part.

RX chain: thermal noise (:func:`thermal_noise_mw`) -> :func:`lna_cubic` -> channel filter
(:func:`rx_channel_fir`) -> LO phase noise and additive distortion (:func:`multiplicative_stream`) -> RX gain
(:func:`rx_digital_gain`) -> :func:`adc_inplace`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
import scipy.signal

from radio.sim.params import RadioParams

BOLTZMANN_J_PER_K = 1.380649e-23
"""Boltzmann constant (J/K)."""

DISTORTION_BANDWIDTH_RATIO = 1.0 / 64.0
"""Standard deviation of the additive-distortion process spectrum, as a fraction of the sample rate: wide enough
that the distortion decorrelates between subcarriers and symbols, narrow enough to stay in-band."""


def dbm_to_mw(dbm: float) -> float:
    """Power in dBm -> mW."""
    return 10.0 ** (dbm / 10.0)


def mw_to_dbm(mw: float) -> float:
    """Power in mW -> dBm (``-inf`` for 0)."""
    return 10.0 * math.log10(mw) if mw > 0 else -math.inf


# ---- converters -----------------------------------------------------------------------------------------------
def quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Uniform quantiser of I and Q with full scale +-1: codes -2^(bits-1) ... 2^(bits-1)-1, step 2^-(bits-1).

    x: complex [n], digital units. Returns (complex64 [n] quantised, digital units; number of samples whose I or Q
    was beyond the code range and was clipped). ``bits >= 24`` only clips at +-1 (float32 carries no more).
    """
    out = np.array(x, dtype=np.complex64, copy=True)
    clipped = adc_inplace(out, 1.0, bits)
    return out, clipped


def adc_inplace(x: np.ndarray, scale: float, bits: int) -> int:
    """Scale, quantise and clip I and Q in place: ``x <- Q(scale * x)``.

    x: complex64 [n] (modified in place), scale: real factor to digital units, bits: per component. Returns how
    many samples had I or Q beyond full scale (clipped, never wrapped).
    """
    v = x.view(np.float32)
    if scale != 1.0:
        np.multiply(v, np.float32(scale), out=v)
    return adc_finish_inplace(x, bits, 0.0, check_clipping=True)


def adc_levels(bits: int) -> float:
    """Codes per unit of digital full scale: 2^(bits-1), or 1 for ``bits >= 24`` (no quantisation)."""
    return 1.0 if bits >= 24 else float(2 ** (bits - 1))


def adc_rounding_offset(bits: int) -> float:
    """A constant whose addition to, then removal from, a float32 value in digital units rounds it to the ADC step
    2^-(bits-1) (round half to even), for |value| < 8: 1.5 * 2^(24 - bits). 0.0 where that does not apply
    (bits > 20, or no quantisation)."""
    return 1.5 * 2.0 ** (24 - bits) if bits <= 20 else 0.0


def adc_finish_inplace(x: np.ndarray, bits: int, offset: float, check_clipping: bool = True) -> int:
    """Quantise and clip, in place, a signal in digital units to which :func:`adc_rounding_offset` ``offset`` has
    already been added to I and Q (``offset = 0``: nothing added, quantise by rounding here).

    x: complex64 [n], digital units. ``check_clipping = False`` skips the clipping scan when the caller knows no
    component can reach full scale. Returns how many samples had I or Q beyond full scale.
    """
    v = x.view(np.float32)
    levels = adc_levels(bits)
    if offset:
        np.subtract(v, np.float32(offset), out=v)
    elif bits < 24:
        np.multiply(v, np.float32(levels), out=v)
        np.rint(v, out=v)
        np.multiply(v, np.float32(1.0 / levels), out=v)
    hi = 1.0 - 1.0 / levels if bits < 24 else 1.0
    clipped = 0
    if check_clipping and v.size and (v.max() > hi or v.min() < -1.0):
        clipped = _count_out_of_range(v, -1.0, hi)
        np.clip(v, -1.0, hi, out=v)
    return clipped


def _count_out_of_range(v: np.ndarray, lo: float, hi: float) -> int:
    """Samples (I/Q pairs of the float32 view ``v``) with a component outside [lo, hi]."""
    bad = (v > hi) | (v < lo)
    return int(np.count_nonzero(bad.reshape(-1, 2).any(axis=1)))


# ---- TX analogue stages ---------------------------------------------------------------------------------------
def iq_imbalance_coefficients(gain_db: float, phase_deg: float) -> tuple[complex, complex]:
    """(mu, nu) of the widely linear IQ-imbalance model y = mu x + nu conj(x), for a Q branch with gain
    10^(gain_db/20) and a quadrature error of phase_deg: y = I + j g (Q cos(phi) - I sin(phi)).
    The image rejection ratio is |nu|^2 / |mu|^2."""
    g = 10.0 ** (gain_db / 20.0)
    phi = math.radians(phase_deg)
    mu = (1.0 + g * complex(math.cos(phi), -math.sin(phi))) / 2.0
    nu = (1.0 - g * complex(math.cos(phi), math.sin(phi))) / 2.0
    return mu, nu


def iq_imbalance(x: np.ndarray, gain_db: float, phase_deg: float) -> np.ndarray:
    """Apply IQ gain/phase imbalance. x: complex [n], digital units -> complex128 [n], digital units."""
    mu, nu = iq_imbalance_coefficients(gain_db, phase_deg)
    x = np.asarray(x, dtype=np.complex128)
    if nu == 0 and mu == 1:
        return x.copy()
    return mu * x + nu * np.conj(x)


def lo_leakage_amplitude(leakage_dbc: float, phase_rad: float) -> complex:
    """The constant (digital units) added at the DAC output by LO feed-through of ``leakage_dbc`` relative to a
    full-scale carrier."""
    if math.isinf(leakage_dbc):
        return 0j
    return 10.0 ** (leakage_dbc / 20.0) * complex(math.cos(phase_rad), math.sin(phase_rad))


def oversample_periodic(x: np.ndarray, factor: int) -> np.ndarray:
    """Ideal band-limited interpolation of a periodic sequence (the DAC's reconstruction filter).

    x: complex [n] at rate R, one period. Returns complex128 [n * factor] at rate factor * R with the same spectrum
    inside +-R/2 (the Nyquist bin of an even n is split between +-R/2) and nothing outside.
    """
    x = np.asarray(x, dtype=np.complex128)
    n = x.size
    if factor == 1:
        return x.copy()
    spec = sfft.fft(x)
    big = np.zeros(n * factor, dtype=np.complex128)
    half = n // 2
    if n % 2 == 0:
        big[:half] = spec[:half]
        big[-half:] = spec[half:]
        big[half] = spec[half] / 2.0
        big[-half] = spec[half] / 2.0
    else:
        big[:half + 1] = spec[:half + 1]
        if half:
            big[-half:] = spec[half + 1:]
    return sfft.ifft(big) * factor


def rapp_pa(x: np.ndarray, smoothness: float, sat_dbfs: float, am_pm_deg: float = 0.0) -> np.ndarray:
    """Rapp solid-state PA with optional Saleh-form AM/PM, unit small-signal gain.

    |y| = |x| / (1 + (|x|/A)^(2p))^(1/(2p)),  arg y = arg x + am_pm * 2u/(1+u),  u = (|x|/A)^2,  A = 10^(sat/20).
    x: complex [n], digital units -> complex128 [n], digital units. ``sat_dbfs = inf`` is a linear PA.
    """
    x = np.asarray(x, dtype=np.complex128)
    if math.isinf(sat_dbfs):
        return x.copy()
    a_sat = 10.0 ** (sat_dbfs / 20.0)
    u = (x.real ** 2 + x.imag ** 2) / (a_sat * a_sat)
    p = float(smoothness)
    gain = (1.0 + u ** p) ** (-1.0 / (2.0 * p))
    if am_pm_deg:
        gain = gain * np.exp(1j * math.radians(am_pm_deg) * 2.0 * u / (1.0 + u))
    return x * gain


def tx_chain(samples: np.ndarray, params: RadioParams, leak_phase_rad: float, oversample: int,
             pad: int = 0) -> np.ndarray:
    """The deterministic part of the TX chain: DAC -> IQ imbalance -> LO leakage -> reconstruction -> PA.

    samples: complex64 [n], digital units, already clipped to full scale. ``pad`` zeros are put before and after
    the buffer (a one-shot burst: the transmitter is silent there, LO leakage included); the result is treated as
    one period. Returns complex128 [(n + 2 pad) * oversample], digital units at oversample * the sample rate.
    Phase noise and additive distortion are random and applied later (:func:`multiplicative_stream`).
    """
    x, _ = quantize(samples, params.dac_bits)
    y = iq_imbalance(x, params.iq_gain_db, params.iq_phase_deg)
    y = y + lo_leakage_amplitude(params.lo_leakage_dbc, leak_phase_rad)
    if pad:
        y = np.concatenate([np.zeros(pad, np.complex128), y, np.zeros(pad, np.complex128)])
    y = oversample_periodic(y, oversample)
    return rapp_pa(y, params.pa_smoothness, params.pa_sat_dbfs, params.am_pm_deg)


def tx_amplitude(tx_fullscale_dbm: float, tx_gain_db: float) -> float:
    """Air units per digital unit at the TX output: sqrt(mW) of a full-scale (0 dBFS) signal at this TX gain."""
    return math.sqrt(dbm_to_mw(tx_fullscale_dbm + tx_gain_db))


# ---- random processes (LO phase noise, additive distortion) ---------------------------------------------------
def phase_noise_psd(freq_hz: np.ndarray, dbc_hz: float, offset_hz: float, corner_hz: float) -> np.ndarray:
    """Two-sided phase PSD S(f) = K / (f^2 + corner^2) in rad^2/Hz, with S(offset) = 10^(dbc_hz/10) (for small
    angles the SSB phase noise L(f) in dBc/Hz equals 10 log10 S(f)). freq_hz: float [n] -> float64 [n]."""
    if math.isinf(dbc_hz):
        return np.zeros(np.shape(freq_hz))
    k = 10.0 ** (dbc_hz / 10.0) * (offset_hz ** 2 + corner_hz ** 2)
    f = np.asarray(freq_hz, dtype=np.float64)
    return k / (f * f + corner_hz ** 2)


def phase_noise_rms_rad(dbc_hz: float, offset_hz: float, corner_hz: float) -> float:
    """RMS phase jitter (rad) of :func:`phase_noise_psd` integrated over all frequencies: sqrt(K pi / corner)."""
    if math.isinf(dbc_hz):
        return 0.0
    k = 10.0 ** (dbc_hz / 10.0) * (offset_hz ** 2 + corner_hz ** 2)
    return math.sqrt(k * math.pi / corner_hz)


def phase_noise_stream(n: int, rate: float, dbc_hz: float, offset_hz: float, corner_hz: float,
                       rng: np.random.Generator) -> np.ndarray:
    """One period of a periodic, stationary Gaussian phase process with PSD :func:`phase_noise_psd` (up to +-rate/2).

    Returns float64 [n], radians, sampled at ``rate``; generated in the frequency domain, so it continues smoothly
    across its wrap-around.
    """
    if math.isinf(dbc_hz):
        return np.zeros(n)
    f = sfft.fftfreq(n, 1.0 / rate)
    amp = np.sqrt(phase_noise_psd(f, dbc_hz, offset_hz, corner_hz) * rate / n)
    w = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    # Re of a circular process with PSD S has PSD S/2; the sqrt(2) restores S.
    c = sfft.ifft(amp * w / math.sqrt(2.0)) * n
    return math.sqrt(2.0) * c.real


def distortion_stream(n: int, rate: float, rms: float, rng: np.random.Generator) -> np.ndarray:
    """One period of a periodic complex Gaussian process m(t) with a Gaussian-shaped spectrum (standard deviation
    DISTORTION_BANDWIDTH_RATIO * rate), scaled so that mean |m|^2 over the period is exactly rms^2.

    Returns complex128 [n] at ``rate``. ``x * m`` is an additive distortion of RMS ratio ``rms`` that follows the
    spectrum of ``x`` and is uncorrelated with it.
    """
    if rms == 0:
        return np.zeros(n, np.complex128)
    sigma = DISTORTION_BANDWIDTH_RATIO * rate
    f = sfft.fftfreq(n, 1.0 / rate)
    shape = np.exp(-(f / sigma) ** 2 / 4.0)  # amplitude: the PSD is exp(-f^2 / (2 sigma^2))
    w = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    m = sfft.ifft(shape * w)
    m -= m.mean()
    return m * (rms / math.sqrt(float(np.mean(np.abs(m) ** 2))))


def multiplicative_stream(n: int, rate: float, evm: float, params: RadioParams,
                          rng: np.random.Generator) -> np.ndarray | None:
    """One period of F(t) = (1 + m(t)) exp(j theta(t)): an LO's phase noise theta and an additive distortion m of
    RMS ``evm`` (:func:`phase_noise_stream`, :func:`distortion_stream`).

    Returns complex64 [n] at ``rate``, or None when both are switched off (F = 1). A signal multiplied by F has the
    LO's phase noise and an additive distortion of RMS ratio ``evm``.
    """
    pn_off = math.isinf(params.phase_noise_dbc_hz)
    if pn_off and evm == 0:
        return None
    theta = phase_noise_stream(n, rate, params.phase_noise_dbc_hz, params.phase_noise_offset_hz,
                               params.phase_noise_corner_hz, rng)
    m = distortion_stream(n, rate, evm, rng)
    return ((1.0 + m) * np.exp(1j * theta)).astype(np.complex64)


# ---- RX analogue stages ---------------------------------------------------------------------------------------
def thermal_noise_mw(rate: float, noise_figure_db: float, temperature_c: float) -> float:
    """Thermal noise power (mW) referred to the LNA input over a bandwidth equal to the sample rate:
    k (T + 273.15) B 10^(NF/10)."""
    kelvin = max(temperature_c + 273.15, 0.0)
    return BOLTZMANN_J_PER_K * kelvin * rate * 10.0 ** (noise_figure_db / 10.0) * 1e3


def lna_cubic(x: np.ndarray, iip3_dbm: float) -> np.ndarray:
    """Memoryless third-order LNA with unit small-signal gain: y = x (1 - |x|^2 / P3), P3 = IIP3 in mW; above the
    polynomial's peak (|x|^2 = P3/3) the output stays at that peak amplitude, 2/3 sqrt(P3/3).

    A two-tone input of A per tone gives products at 2 f1 - f2 and 2 f2 - f1 of amplitude A^3 / P3, so their
    power rises 3 dB per dB and meets the (extrapolated) fundamental at IIP3; a strong signal lowers the gain
    seen by a weak one (desensitisation). x: complex64 [n], air units (modified in place and returned).
    ``iip3_dbm = inf`` returns x unchanged.
    """
    if math.isinf(iip3_dbm):
        return x
    return lna_cubic_units(x, dbm_to_mw(iip3_dbm))


def lna_cubic_units(x: np.ndarray, p3: float, may_saturate: bool = True,
                    work: np.ndarray | None = None) -> np.ndarray:
    """:func:`lna_cubic` with the IIP3 power ``p3`` given in the units of ``|x|^2``. ``may_saturate = False``
    skips the saturation branch when the caller knows |x|^2 < p3 / 3 everywhere. x: complex64 [n], in place;
    ``work``: optional float32 [n] scratch."""
    gain = np.abs(x, out=work) if work is not None else np.abs(x)
    np.multiply(gain, gain, out=gain)
    saturated = None
    if may_saturate and gain.size and gain.max() > p3 / 3.0:
        saturated = gain > p3 / 3.0
        sat_power = gain[saturated]
    np.multiply(gain, np.float32(-1.0 / p3), out=gain)
    np.add(gain, np.float32(1.0), out=gain)
    if saturated is not None:
        gain[saturated] = ((2.0 / 3.0) * math.sqrt(p3 / 3.0) / np.sqrt(sat_power)).astype(np.float32)
    np.multiply(x, gain, out=x)
    return x


RX_FILTER_HALF_TAPS = 48
"""Half-length of the receiver's channel filter in receiver samples (the filter spans 97 samples)."""


def rx_channel_fir(rate: float, over: int) -> np.ndarray:
    """Taps of the receiver's channel (anti-alias / decimation) filter at ``over`` times the sample rate: a
    Kaiser-windowed sinc (beta 8, -80 dB stopband) with its cut-off at 0.475 rate, flat (+-0.01 dB) to about
    +-0.45 rate and below -75 dB from +-0.5 rate. Returns float64 [2 * RX_FILTER_HALF_TAPS * over + 1], unit DC
    gain, centred on its middle tap."""
    taps = 2 * RX_FILTER_HALF_TAPS * over + 1
    return scipy.signal.firwin(taps, 0.475 * rate, fs=over * rate, window=("kaiser", 8.0))


def rx_channel_response(freq_hz: np.ndarray, rate: float) -> np.ndarray:
    """Amplitude response of :func:`rx_channel_fir` (zero phase: its delay is compensated) at ``freq_hz``,
    |f| <= rate / 2. freq_hz: float [n] -> float64 [n]."""
    grid, table = _rx_channel_table(float(rate))
    return np.interp(np.abs(np.asarray(freq_hz, dtype=np.float64)), grid, table)


@lru_cache(maxsize=16)
def _rx_channel_table(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, amplitude response) of :func:`rx_channel_fir` on a fine grid over [0, rate / 2], cached."""
    fine = 1 << 14
    taps = rx_channel_fir(rate, 1)
    half = taps.size // 2
    centred = np.zeros(fine)
    centred[:half + 1] = taps[half:]
    centred[-half:] = taps[:half]
    table = sfft.fft(centred).real[:fine // 2 + 1]
    grid = np.arange(fine // 2 + 1) * (rate / fine)
    return grid, table


def rx_digital_gain(rx_gain_db: float, rx_fullscale_dbm: float) -> float:
    """Digital units per air unit at the ADC: an input of rx_fullscale_dbm - rx_gain_db dBm reaches 0 dBFS."""
    return 10.0 ** ((rx_gain_db - rx_fullscale_dbm) / 20.0)


# ---- fading ---------------------------------------------------------------------------------------------------
JAKES_SINUSOIDS = 32
"""Number of scatterers in the sum-of-sinusoids Jakes model."""


def jakes_gains(times_s: np.ndarray, doppler_hz: float, angles_rad: np.ndarray,
                phases_rad: np.ndarray) -> np.ndarray:
    """Flat Rayleigh fading with a Clarke/Jakes spectrum: h(t) = M^-1/2 sum_m exp(j (2 pi f_d t cos a_m + phi_m)).

    times_s: float64 [n] seconds; angles_rad, phases_rad: float [M] arrival angles and phases. Returns
    complex128 [n] with E|h|^2 = 1 and autocorrelation approaching J0(2 pi f_d tau).
    """
    t = np.asarray(times_s, dtype=np.float64)
    arg = 2.0 * np.pi * doppler_hz * np.outer(t, np.cos(angles_rad)) + phases_rad[None, :]
    return np.exp(1j * arg).sum(axis=1) / math.sqrt(len(angles_rad))


__all__ = [
    "BOLTZMANN_J_PER_K", "DISTORTION_BANDWIDTH_RATIO", "JAKES_SINUSOIDS", "RX_FILTER_HALF_TAPS",
    "adc_finish_inplace", "adc_inplace", "adc_levels", "adc_rounding_offset", "dbm_to_mw", "distortion_stream",
    "iq_imbalance", "iq_imbalance_coefficients", "jakes_gains", "lna_cubic", "lna_cubic_units",
    "lo_leakage_amplitude", "multiplicative_stream", "mw_to_dbm", "oversample_periodic", "phase_noise_psd",
    "phase_noise_rms_rad", "phase_noise_stream", "quantize", "rapp_pa", "rx_channel_fir", "rx_channel_response",
    "rx_digital_gain", "thermal_noise_mw", "tx_amplitude", "tx_chain",
]
