"""Front-end measurements on sample arrays: EVM (plain RMS and the 3GPP method), PSD, channel power, ACLR, ACS
and ACIR. The one home of these measurements: the calibration session and the tests call them from here (the
link receiver's per-RB adjacent power, ``radio.ofdm.receiver.rb_power_profile``, is a receiver metric, not a
spectrum measurement).

Written here rather than taken from a library: no maintained Python package implements the TS 36.104 Annex E /
38.104 Annex B EVM procedure or the E-UTRA/NR ACLR bands. The definitions follow
``reference/3gpp-and-models.md`` sections 2 and 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import signal as _signal


# ---------------------------------------------------------------------------------------------------------------
# EVM
# ---------------------------------------------------------------------------------------------------------------
def rms_evm(received: np.ndarray, ideal: np.ndarray, *, fit_gain: bool = True) -> float:
    """RMS EVM (ratio, not %) of received constellation points against the ideal ones.

    Args:
        received: shape [n], complex, the equalised symbols.
        ideal: shape [n], complex, the transmitted symbols.
        fit_gain: first remove the least-squares complex gain between the two (what a receiver's equaliser does).

    Returns:
        sqrt(sum |r - i|^2 / sum |i|^2).
    """
    r = np.asarray(received, np.complex128).reshape(-1)
    i = np.asarray(ideal, np.complex128).reshape(-1)
    if r.shape != i.shape or r.size == 0:
        raise ValueError(f"received {r.shape} and ideal {i.shape} must be non-empty and of the same length")
    ref = float(np.vdot(i, i).real)
    if ref <= 0:
        raise ValueError("ideal symbols have zero power; EVM is undefined")
    if fit_gain:
        g = np.vdot(i, r) / ref
        if abs(g) > 0:
            r = r / g
    return math.sqrt(float(np.sum(np.abs(r - i) ** 2)) / ref)


def evm_window_offsets(cp_len: int, window: int) -> tuple[int, int]:
    """FFT start offsets inside the CP for the two EVM-window extremities (TS 36.104 E.5 as the MathWorks/ADI
    code writes it): low = CP/2 + alpha - floor(W/2), high = CP/2 + floor(W/2), alpha = 1 for odd W else 0."""
    if not 0 < window <= cp_len:
        raise ValueError(f"EVM window W = {window}; allowed 1 to the CP length {cp_len}")
    alpha = window % 2
    half_cp = cp_len // 2
    return max(half_cp + alpha - window // 2, 0), min(half_cp + window // 2, cp_len)


LTE_EVM_WINDOW_NORMAL_CP: dict[int, int] = {128: 5, 256: 12, 512: 32, 1024: 66, 1536: 102, 2048: 136}
"""EVM window length W (samples) of LTE with the normal CP, by FFT size at the standard rate (TS 36.104 E.5.1 /
36.101 F.5.3: 1.4, 3, 5, 10, 15, 20 MHz)."""


def evm_window_length(rat: str, fft_size: int) -> int:
    """The 3GPP EVM window W (samples) of an LTE carrier with the normal CP at its standard rate.

    Args:
        rat: ``"lte"`` (the only one with a table here).
        fft_size: the carrier's FFT size at its standard sample rate (128 ... 2048).

    Raises:
        ValueError: another RAT or FFT size (NR FR1 windows, TS 38.104 Annex B, are not tabulated here).
    """
    if rat != "lte" or fft_size not in LTE_EVM_WINDOW_NORMAL_CP:
        raise ValueError(f"no EVM window table for rat {rat!r} with FFT size {fft_size}; allowed: rat 'lte' with "
                         f"FFT size one of {sorted(LTE_EVM_WINDOW_NORMAL_CP)}")
    return LTE_EVM_WINDOW_NORMAL_CP[fft_size]


@dataclass(frozen=True)
class Evm3gpp:
    """Result of :func:`evm_3gpp`."""

    evm: float
    """max(evm_low, evm_high): the figure compared with the limit (ratio)."""
    evm_low: float
    """EVM with the FFT window at the early extremity."""
    evm_high: float
    """EVM with the FFT window at the late extremity."""
    per_symbol_low: np.ndarray
    per_symbol_high: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"evm": self.evm, "evm_low": self.evm_low, "evm_high": self.evm_high}


def evm_3gpp(rx: np.ndarray, symbol_starts: Sequence[int], cp_lengths: Sequence[int], fft_size: int,
             bins: np.ndarray, ideal: np.ndarray, data_mask: np.ndarray, pilot_mask: np.ndarray, window: int,
             *, freq_smoothing: int = 19, delays: Sequence[float] | None = None) -> Evm3gpp:
    """EVM by the TS 36.104 Annex E / 38.104 Annex B procedure on a time- and frequency-corrected signal.

    For each window extremity: FFT every OFDM symbol from ``start + offset`` (see :func:`evm_window_offsets`),
    the known phase ramp of starting ``cp - offset`` samples before the symbol's body removed (symbols with
    different CP lengths then share one channel); the equaliser is Z/I on the reference REs, averaged over time per subcarrier (phase unwrapped), smoothed by a
    moving average over ``freq_smoothing`` reference subcarriers (shrinking at the band edges), interpolated to
    every subcarrier; EVM is RMS over the data REs of the frame. The larger of the two is the result.

    Args:
        rx: shape [n], complex, timing- and CFO-corrected samples; ``symbol_starts`` index into it.
        symbol_starts: per OFDM symbol, the index of its first CP sample. Length L.
        cp_lengths: per OFDM symbol, its CP length in samples. Length L.
        fft_size: N.
        bins: shape [K], int, the FFT bin (0..N-1) of each used subcarrier, in increasing frequency order.
        ideal: shape [L, K], complex, the transmitted REs (data and reference).
        data_mask: shape [L, K], bool, REs counted in the EVM.
        pilot_mask: shape [L, K], bool, reference REs used by the equaliser.
        window: the EVM window length W in samples.
        delays: optional, per OFDM symbol, how many samples (fractional) later than ``symbol_starts`` the symbol
            really arrives (a sample-clock drift tracked by the caller); removed as a phase ramp. Length L.
    """
    rx = np.asarray(rx, np.complex128)
    L, K = ideal.shape
    if delays is not None and len(delays) != L:
        raise ValueError(f"{len(delays)} delays for {L} symbols")
    if len(symbol_starts) != L or len(cp_lengths) != L:
        raise ValueError(f"{len(symbol_starts)} starts and {len(cp_lengths)} CP lengths for {L} symbols")
    if not pilot_mask.any() or not data_mask.any():
        raise ValueError("need at least one reference RE and one data RE")
    results = []
    per_symbol = []
    signed = _signed_bins(bins, fft_size)
    for pick in (0, 1):
        grid = np.empty((L, K), np.complex128)
        for l, (s, cp) in enumerate(zip(symbol_starts, cp_lengths)):
            off = evm_window_offsets(int(cp), min(window, int(cp)))[pick]
            seg = rx[int(s) + off: int(s) + off + fft_size]
            if seg.size != fft_size:
                raise ValueError(f"symbol {l} runs past the end of the capture")
            # The window starts cp - off samples before the symbol's body; that advance's phase ramp is taken out,
            # so symbols with different CP lengths (LTE's longer first CP) share one equaliser.
            advance = int(cp) - off + (float(delays[l]) if delays is not None else 0.0)
            grid[l] = np.fft.fft(seg)[bins] / math.sqrt(fft_size) * np.exp(2j * np.pi * signed * advance / fft_size)
        eq = _reference_equaliser(grid, ideal, pilot_mask, freq_smoothing, signed)
        z = grid / eq[None, :]
        err = np.abs(z - ideal) ** 2
        ref = np.abs(ideal) ** 2
        num = np.where(data_mask, err, 0).sum(axis=1)
        den = np.where(data_mask, ref, 0).sum(axis=1)
        results.append(math.sqrt(num.sum() / den.sum()))
        per_symbol.append(np.sqrt(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))
    return Evm3gpp(max(results), results[0], results[1], per_symbol[0], per_symbol[1])


def _signed_bins(bins: np.ndarray, fft_size: int) -> np.ndarray:
    b = np.asarray(bins)
    return np.where(b >= fft_size // 2, b - fft_size, b).astype(float)


def _reference_equaliser(grid: np.ndarray, ideal: np.ndarray, pilot_mask: np.ndarray, span: int,
                         freq: np.ndarray) -> np.ndarray:
    """Per-subcarrier complex gain [K] from the reference REs (steps 1-4 of the 3GPP equaliser).

    Interpolation runs over the subcarriers' frequencies (``freq``, in bins), not their index, so the unused DC
    subcarrier does not bend the linear phase a timing offset leaves."""
    ratio = np.divide(grid, ideal, out=np.zeros_like(grid), where=pilot_mask & (ideal != 0))
    have = pilot_mask.any(axis=0)
    ref_sc = np.flatnonzero(have)
    mask = pilot_mask[:, ref_sc]
    counts = mask.sum(axis=0)
    r = ratio[:, ref_sc]
    amp = np.where(mask, np.abs(r), 0.0).sum(axis=0) / counts
    # Time average of the unwrapped phase per subcarrier: unwrap along time over that subcarrier's reference REs.
    order = np.argsort(~mask, axis=0, kind="stable")          # each column's reference REs first, in time order
    ph = np.take_along_axis(np.angle(r), order, axis=0)
    valid = np.take_along_axis(mask, order, axis=0)
    ph = np.where(valid, ph, np.nan)
    first = ph[0]
    ph = np.where(valid, ph, first[None, :])                  # padding repeats the first value: no unwrap jump
    ph = np.unwrap(ph, axis=0)
    phase = np.where(valid, ph, 0.0).sum(axis=0) / counts
    phase = np.unwrap(phase)
    fr = freq[ref_sc]
    amp_s = _local_linear_smooth(fr, amp, span // 2)
    ph_s = _local_linear_smooth(fr, phase, span // 2)
    a = _interp_linear_extrapolate(freq, freq[ref_sc], amp_s)
    p = _interp_linear_extrapolate(freq, freq[ref_sc], ph_s)
    return a * np.exp(1j * p)


def _local_linear_smooth(x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """At every point j, a straight line fitted to points j-w..j+w (w = min(half, j, n-1-j): the window shrinks
    symmetrically at the edges), evaluated at x[j]. For uniformly spaced x this is the moving average; where a gap
    (the DC subcarrier) breaks the spacing, a linear trend (a timing offset's phase) still passes unbent.
    x, y: float [n] -> float [n]."""
    n = x.size
    j = np.arange(n)
    w = np.minimum(np.minimum(j, n - 1 - j), half)
    xc = x - x.mean()  # conditioning of the sums
    c = [np.concatenate([[0.0], np.cumsum(v)]) for v in (np.ones(n), xc, xc * xc, y, xc * y)]
    lo, hi = j - w, j + w + 1
    s0, s1, s2, sy, sxy = (cs[hi] - cs[lo] for cs in c)
    den = s0 * s2 - s1 * s1
    safe = np.abs(den) > 1e-12 * np.maximum(s0 * s2, 1e-300)
    slope = np.divide(s0 * sxy - s1 * sy, den, out=np.zeros(n), where=safe)
    mean_x, mean_y = s1 / s0, sy / s0
    return mean_y + slope * (xc - mean_x)


def _interp_linear_extrapolate(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp, but continuing the end segments' slopes beyond the first/last point (subcarriers outside the
    outermost reference REs would otherwise get a constant, i.e. wrong, phase)."""
    y = np.interp(x, xp, fp)
    if xp.size >= 2:
        lo, hi = x < xp[0], x > xp[-1]
        y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
        y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


# ---------------------------------------------------------------------------------------------------------------
# ACLR / ACS / ACIR
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AclrResult:
    """ACLR of one capture (dB, positive = adjacent channel weaker)."""

    aclr1_low: float
    aclr1_high: float
    aclr2_low: float | None
    aclr2_high: float | None
    channel_power_dbfs: float

    @property
    def aclr1(self) -> float:
        """Worst side, first adjacent channel."""
        return min(self.aclr1_low, self.aclr1_high)

    @property
    def aclr2(self) -> float | None:
        """Worst side, second adjacent channel (None when the capture is too narrow to see it)."""
        if self.aclr2_low is None or self.aclr2_high is None:
            return None
        return min(self.aclr2_low, self.aclr2_high)

    def as_dict(self) -> dict[str, float | None]:
        return {"aclr1_db": self.aclr1, "aclr2_db": self.aclr2, "aclr1_low_db": self.aclr1_low,
                "aclr1_high_db": self.aclr1_high, "aclr2_low_db": self.aclr2_low, "aclr2_high_db": self.aclr2_high,
                "channel_power_dbfs": self.channel_power_dbfs}


def power_spectral_density(x: np.ndarray, rate_sps: float, *, nfft: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Welch PSD (Blackman-Harris, 50 % overlap), fftshifted.

    Returns (freqs [nfft] Hz, psd [nfft] power per Hz, in |x|^2 units, integrating to the mean power).
    """
    x = np.asarray(x, np.complex128).reshape(-1)
    nfft = int(min(nfft, 2 ** int(math.floor(math.log2(max(x.size, 16))))))
    f, p = _signal.welch(x, fs=rate_sps, window="blackmanharris", nperseg=nfft, noverlap=nfft // 2,
                         return_onesided=False, scaling="density", detrend=False)
    order = np.argsort(f)
    return f[order], p[order]


def band_power(freqs: np.ndarray, psd: np.ndarray, centre_hz: float, width_hz: float) -> float:
    """Power in the square band [centre - width/2, centre + width/2] (bins weighted by their overlap)."""
    df = float(freqs[1] - freqs[0])
    lo, hi = centre_hz - width_hz / 2, centre_hz + width_hz / 2
    left = freqs - df / 2
    overlap = np.clip(np.minimum(left + df, hi) - np.maximum(left, lo), 0, df)
    return float(np.sum(psd * overlap))


def aclr(x: np.ndarray, rate_sps: float, channel_bw_hz: float, measurement_bw_hz: float, *,
         centre_hz: float = 0.0, nfft: int = 4096) -> AclrResult:
    """E-UTRA/NR ACLR: power in ``measurement_bw_hz`` (BW_Config) at the channel centre over the power in the
    same square band at +-channel_bw_hz (first) and +-2 channel_bw_hz (second adjacent channel).

    The capture must reach the first adjacent channel's outer edge; the second is reported when it fits too.
    Args:
        x: shape [n], complex baseband samples.
        rate_sps: sample rate.
        channel_bw_hz: the channel bandwidth (e.g. 5e6 for LTE 5 MHz): the adjacent-channel spacing.
        measurement_bw_hz: BW_Config (e.g. N_RB * 180 kHz).
        centre_hz: the wanted channel's centre relative to the capture's centre.
    """
    nyq = rate_sps / 2
    edge1 = abs(centre_hz) + channel_bw_hz + measurement_bw_hz / 2
    if edge1 > nyq:
        raise ValueError(f"a {rate_sps / 1e6:g} MS/s capture spans +-{nyq / 1e6:g} MHz but the first adjacent "
                         f"channel reaches {edge1 / 1e6:g} MHz; allowed: rate >= {2 * edge1 / 1e6:g} MS/s")
    f, p = power_spectral_density(x, rate_sps, nfft=nfft)
    main = band_power(f, p, centre_hz, measurement_bw_hz)
    if main <= 0:
        raise ValueError("no power in the wanted channel")

    def ratio(offset: float) -> float:
        adj = band_power(f, p, centre_hz + offset, measurement_bw_hz)
        return 10 * math.log10(main / max(adj, 1e-30))

    second_fits = abs(centre_hz) + 2 * channel_bw_hz + measurement_bw_hz / 2 <= nyq
    return AclrResult(ratio(-channel_bw_hz), ratio(channel_bw_hz),
                      ratio(-2 * channel_bw_hz) if second_fits else None,
                      ratio(2 * channel_bw_hz) if second_fits else None,
                      10 * math.log10(main))


def channel_power(x: np.ndarray, rate_sps: float, measurement_bw_hz: float, *, centre_hz: float = 0.0,
                  nfft: int = 4096) -> float:
    """Mean power of ``x`` (shape [n], complex) in the square band ``measurement_bw_hz`` at ``centre_hz``: the
    :func:`band_power` of its :func:`power_spectral_density`."""
    f, p = power_spectral_density(x, rate_sps, nfft=nfft)
    return band_power(f, p, centre_hz, measurement_bw_hz)


ADJACENT_OFFSETS: tuple[int, ...] = (-2, -1, 1, 2)
"""The adjacent channels measured, as multiples of the channel spacing."""


@dataclass(frozen=True)
class NetAclr:
    """Result of :func:`net_aclr`: a capture's spectrum with the receiver's noise removed, and its ACLR."""

    freqs: np.ndarray
    """Shape [nfft], Hz, ascending."""
    psd_on: np.ndarray
    """Shape [nfft]: PSD of the capture with the transmitter on (power per Hz)."""
    psd_off: np.ndarray
    """Shape [nfft]: PSD of the capture with the transmitter off (the receiver's own noise)."""
    channel_power: float
    """Power in the wanted channel, noise removed (linear, > 0)."""
    adjacent_power: dict[int, float]
    """Per offset k of :data:`ADJACENT_OFFSETS`: power in the channel at k spacings, noise removed (linear; can be
    <= 0 where the transmitter adds nothing the captures resolve)."""

    @property
    def aclr_db(self) -> dict[int, float]:
        """Per offset k: ACLR in dB, the adjacent power floored at 0 and at 1e-12 of the channel power."""
        main = self.channel_power
        return {k: 10 * math.log10(main / max(max(v, 0.0), main * 1e-12)) for k, v in self.adjacent_power.items()}

    @property
    def leakage_ratios(self) -> dict[int, float]:
        """Per offset k: adjacent power over channel power (linear, unfloored)."""
        return {k: v / self.channel_power for k, v in self.adjacent_power.items()}


def net_aclr(on: np.ndarray, off: np.ndarray, rate_sps: float, channel_bw_hz: float, measurement_bw_hz: float, *,
             nfft: int = 4096) -> NetAclr:
    """ACLR of a transmitter from a capture with it on and one with it off (the same receiver, same settings).

    The receiver's noise is removed from the band totals, not bin by bin (clipping each noisy bin would add power):
    PSD(on) - PSD(off) integrated over BW_Config (``measurement_bw_hz``) at the channel centre and at +-1, +-2
    ``channel_bw_hz``.

    Raises:
        ValueError: no power is left in the wanted channel once the noise is removed.
    """
    f, p_on = power_spectral_density(on, rate_sps, nfft=nfft)
    _, p_off = power_spectral_density(off, rate_sps, nfft=nfft)
    net = p_on - p_off
    main = band_power(f, net, 0.0, measurement_bw_hz)
    if main <= 0:
        raise ValueError("nothing received in the channel")
    adjacent = {k: band_power(f, net, k * channel_bw_hz, measurement_bw_hz) for k in ADJACENT_OFFSETS}
    return NetAclr(f, p_on, p_off, main, adjacent)


def acir_from_channel_powers(heard: dict[int, float], noise: dict[int, float]) -> dict[int, float]:
    """ACIR (dB) per adjacent offset from a receiver tuned to the wanted channel (offset 0) and to each adjacent
    one, with the transmitter on (``heard``) and off (``noise``): the wanted power over the power that lands in the
    adjacent channel, noise removed from both (floored at 1e-12 of the wanted power).

    Raises:
        ValueError: no power is left in the wanted channel once the noise is removed.
    """
    wanted = heard[0] - noise[0]
    if wanted <= 0:
        raise ValueError("nothing received in the narrow channel")
    return {k: 10 * math.log10(wanted / max(heard[k] - noise[k], wanted * 1e-12)) for k in ADJACENT_OFFSETS}


def acs_db(interferer_power: float, leaked_power: float) -> float:
    """ACS (dB) = the adjacent-channel interferer's power over the part of it that the receiver lets into the
    assigned channel (both linear, same units). Equivalently the filter attenuation on the adjacent channel
    relative to the assigned one."""
    if interferer_power <= 0 or leaked_power <= 0:
        raise ValueError(f"powers must be positive (interferer {interferer_power}, leaked {leaked_power})")
    return 10 * math.log10(interferer_power / leaked_power)


def acir_db(aclr_db: float, acs_db_value: float) -> float:
    """ACIR = 1 / (1/ACLR + 1/ACS), all linear; returned in dB."""
    return -10 * math.log10(10 ** (-aclr_db / 10) + 10 ** (-acs_db_value / 10))


def acs_from_acir_db(acir_db: float, aclr_db: float) -> float | None:
    """ACS (dB) from a measured ACIR and the transmitter's ACLR: 1/ACS = 1/ACIR - 1/ACLR (linear). None where the
    ACIR is not below the ACLR (the receiver's selectivity is not resolved)."""
    inv = 10 ** (-acir_db / 10) - 10 ** (-aclr_db / 10)
    return 10 * math.log10(1.0 / inv) if inv > 0 else None


# ---------------------------------------------------------------------------------------------------------------
# The transmitter's own ACLR, the analyser's contribution removed
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommonAclr:
    """Result of :func:`common_adjacent_ratios`: adjacent-channel power over channel power (linear), per offset."""

    common: dict[int, float]
    """Per adjacent-channel offset k (+-1, +-2): the part both receivers share (the transmitter's emission) over
    the shared channel power. Can be <= 0 where the shared part is below what the captures resolve."""
    lag: int
    """Samples ``b`` was shifted by to align it with ``a``."""
    frequency_offset_hz: float
    """Frequency of ``b`` relative to ``a`` that was removed."""


def common_adjacent_ratios(a: np.ndarray, b: np.ndarray, rate_sps: float, channel_bw_hz: float,
                           measurement_bw_hz: float, *, nfft: int = 4096, max_lag: int = 256) -> CommonAclr:
    """The transmitter's ACLR from two receivers capturing the same transmission at the same time.

    Each receiver adds its own distortion, phase-noise spreading (reciprocal mixing) and noise to the adjacent
    channels; they are independent between two receivers, while the transmitter's emission is common to both. The
    cross-spectral density of the two captures keeps only the common part: its power in the adjacent band over its
    power in the wanted channel is the transmitter's ACLR (as a linear leakage ratio) without the analysers'.

    The captures are aligned first: the lag from the correlation of their envelopes (within +-``max_lag``), the
    frequency offset between their LOs from the phase drift of their product, and the remaining fractional delay
    from the cross-spectrum's phase slope over the wanted channel.

    Args:
        a, b: shape [n], complex, two captures of the same air time at ``rate_sps`` (equal length).
        channel_bw_hz: the adjacent-channel spacing; measurement_bw_hz: BW_Config.
    """
    a = np.asarray(a, np.complex128).reshape(-1)
    b = np.asarray(b, np.complex128).reshape(-1)
    n = min(a.size, b.size)
    if n < 4 * nfft:
        raise ValueError(f"captures of {n} samples; allowed: at least {4 * nfft} (4 x nfft)")
    a, b = a[:n], b[:n]
    ea = np.abs(a) ** 2 - np.mean(np.abs(a) ** 2)
    eb = np.abs(b) ** 2 - np.mean(np.abs(b) ** 2)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    xc = np.fft.ifft(np.fft.fft(ea, size) * np.conj(np.fft.fft(eb, size)))
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    lag = int(lags[np.argmax(np.abs(xc[lags]))])
    if lag >= 0:
        a, b = a[lag:], b[:n - lag]
    else:
        a, b = a[:n + lag], b[-lag:]
    z = a * np.conj(b)
    d = 256
    offset = float(np.angle(np.sum(z[d:] * np.conj(z[:-d])))) / (2 * np.pi * d) * rate_sps
    b = b * np.exp(2j * np.pi * offset / rate_sps * np.arange(b.size))
    f, c = _signal.csd(a, b, fs=rate_sps, window="blackmanharris", nperseg=nfft, noverlap=nfft // 2,
                       return_onesided=False, scaling="density", detrend=False)
    order = np.argsort(f)
    f, c = f[order], c[order]
    main_sel = np.abs(f) <= measurement_bw_hz / 2
    phase = np.unwrap(np.angle(c[main_sel]))
    slope, intercept = np.polyfit(f[main_sel], phase, 1, w=np.abs(c[main_sel]))
    aligned = (c * np.exp(-1j * (slope * f + intercept))).real
    main = band_power(f, aligned, 0.0, measurement_bw_hz)
    if main <= 0:
        raise ValueError("the two captures share no power in the wanted channel")
    common = {k: band_power(f, aligned, k * channel_bw_hz, measurement_bw_hz) / main for k in (-2, -1, 1, 2)}
    return CommonAclr(common, lag, offset)
