"""Front-end measurements on sample arrays: EVM (plain RMS and the 3GPP method), ACLR, ACS and ACIR.

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
             *, freq_smoothing: int = 19) -> Evm3gpp:
    """EVM by the TS 36.104 Annex E / 38.104 Annex B procedure on a time- and frequency-corrected signal.

    For each window extremity: FFT every OFDM symbol from ``start + offset`` (see :func:`evm_window_offsets`);
    the equaliser is Z/I on the reference REs, averaged over time per subcarrier (phase unwrapped), smoothed by a
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
    """
    rx = np.asarray(rx, np.complex128)
    L, K = ideal.shape
    if len(symbol_starts) != L or len(cp_lengths) != L:
        raise ValueError(f"{len(symbol_starts)} starts and {len(cp_lengths)} CP lengths for {L} symbols")
    if not pilot_mask.any() or not data_mask.any():
        raise ValueError("need at least one reference RE and one data RE")
    results = []
    per_symbol = []
    for pick in (0, 1):
        grid = np.empty((L, K), np.complex128)
        for l, (s, cp) in enumerate(zip(symbol_starts, cp_lengths)):
            off = evm_window_offsets(int(cp), min(window, int(cp)))[pick]
            seg = rx[int(s) + off: int(s) + off + fft_size]
            if seg.size != fft_size:
                raise ValueError(f"symbol {l} runs past the end of the capture")
            grid[l] = np.fft.fft(seg)[bins] / math.sqrt(fft_size)
        eq = _reference_equaliser(grid, ideal, pilot_mask, freq_smoothing, _signed_bins(bins, fft_size))
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
    amp = np.array([np.abs(ratio[pilot_mask[:, k], k]).mean() for k in ref_sc])
    phase = np.array([np.unwrap(np.angle(ratio[pilot_mask[:, k], k])).mean() for k in ref_sc])
    phase = np.unwrap(phase)
    half = span // 2
    fr = freq[ref_sc]
    amp_s = np.empty_like(amp)
    ph_s = np.empty_like(phase)
    n = ref_sc.size
    for j in range(n):
        w = min(half, j, n - 1 - j)  # the window shrinks symmetrically at the band edges
        sl = slice(j - w, j + w + 1)
        if w == 0:
            amp_s[j], ph_s[j] = amp[j], phase[j]
            continue
        # A local straight-line fit evaluated at the centre: the moving average for uniformly spaced reference
        # subcarriers, and still exact for the linear phase of a timing offset where the DC gap breaks the spacing.
        x = fr[sl] - fr[j]
        amp_s[j] = np.polyfit(x, amp[sl], 1)[1]
        ph_s[j] = np.polyfit(x, phase[sl], 1)[1]
    a = _interp_linear_extrapolate(freq, freq[ref_sc], amp_s)
    p = _interp_linear_extrapolate(freq, freq[ref_sc], ph_s)
    return a * np.exp(1j * p)


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
