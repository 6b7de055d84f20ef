"""Large- and small-scale channel models: 3GPP TR 38.901 UMi-Street Canyon and Jakes / Gauss-Markov fading.

All functions are batched torch and differentiable where that makes sense. Distances are in metres,
frequencies in Hz (converted to GHz inside the log terms as TR 38.901 requires), losses in dB.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SPEED_OF_LIGHT",
    "gauss_markov_step",
    "jakes_correlation",
    "umi_breakpoint_distance",
    "umi_los_probability",
    "umi_path_loss_db",
    "umi_shadow_fading_std_db",
]

SPEED_OF_LIGHT = 299_792_458.0
"""Speed of light (m/s)."""

_EFFECTIVE_ENVIRONMENT_HEIGHT_M = 1.0  # h_E of TR 38.901 Table 7.4.1-1 note 1 for UMi


def umi_breakpoint_distance(carrier_frequency_hz: float, bs_height_m: float, ut_height_m: float) -> float:
    """UMi breakpoint distance d'_BP = 4 h'_BS h'_UT f_c / c with effective heights h' = h - 1 m (m).

    Args:
        carrier_frequency_hz: f_c (Hz).
        bs_height_m: h_BS (m).
        ut_height_m: h_UT (m).
    """
    h_bs = bs_height_m - _EFFECTIVE_ENVIRONMENT_HEIGHT_M
    h_ut = ut_height_m - _EFFECTIVE_ENVIRONMENT_HEIGHT_M
    return 4.0 * h_bs * h_ut * carrier_frequency_hz / SPEED_OF_LIGHT


def umi_path_loss_db(distance_2d_m: torch.Tensor, los: torch.Tensor, carrier_frequency_hz: float,
                     bs_height_m: float = 10.0, ut_height_m: float = 1.5) -> torch.Tensor:
    """TR 38.901 Table 7.4.1-1 UMi-Street Canyon path loss (dB), without shadowing.

    PL1 = 32.4 + 21 log10(d_3D) + 20 log10(f_c)                        for 10 m <= d_2D <= d'_BP
    PL2 = 32.4 + 40 log10(d_3D) + 20 log10(f_c) - 9.5 log10(d'_BP^2 + (h_BS - h_UT)^2)   beyond d'_BP
    PL_NLOS = max(PL_LOS, 35.3 log10(d_3D) + 22.4 + 21.3 log10(f_c) - 0.3 (h_UT - 1.5))
    with f_c in GHz in the log terms, the breakpoint test on d_2D and the formulas on d_3D.
    Distances below 10 m (outside the model's range) are evaluated at 10 m.

    Args:
        distance_2d_m: [...] float, horizontal distance (m).
        los: [...] bool, line-of-sight state (broadcastable to ``distance_2d_m``).
        carrier_frequency_hz: f_c (Hz).
        bs_height_m: h_BS (m).
        ut_height_m: h_UT (m).

    Returns:
        [...] float, path loss (dB), same dtype as ``distance_2d_m``.
    """
    d2 = distance_2d_m.clamp(min=10.0)
    d3 = torch.sqrt(d2 * d2 + (bs_height_m - ut_height_m) ** 2)
    fc_ghz = carrier_frequency_hz / 1e9
    d_bp = umi_breakpoint_distance(carrier_frequency_hz, bs_height_m, ut_height_m)
    log_fc = math.log10(fc_ghz)
    pl1 = 32.4 + 21.0 * torch.log10(d3) + 20.0 * log_fc
    pl2 = (32.4 + 40.0 * torch.log10(d3) + 20.0 * log_fc
           - 9.5 * math.log10(d_bp * d_bp + (bs_height_m - ut_height_m) ** 2))
    pl_los = torch.where(d2 <= d_bp, pl1, pl2)
    pl_nlos_prime = 35.3 * torch.log10(d3) + 22.4 + 21.3 * log_fc - 0.3 * (ut_height_m - 1.5)
    pl_nlos = torch.maximum(pl_los, pl_nlos_prime)
    return torch.where(los, pl_los, pl_nlos)


def umi_los_probability(distance_2d_m: torch.Tensor) -> torch.Tensor:
    """TR 38.901 Table 7.4.2-1 UMi LoS probability (outdoor devices).

    P_LOS = 1 for d_2D <= 18 m, otherwise 18/d_2D + exp(-d_2D/36) (1 - 18/d_2D).

    Args:
        distance_2d_m: [...] float, horizontal distance (m).

    Returns:
        [...] float in [0, 1].
    """
    d = distance_2d_m.clamp(min=18.0)
    p = 18.0 / d + torch.exp(-d / 36.0) * (1.0 - 18.0 / d)
    return torch.where(distance_2d_m <= 18.0, torch.ones_like(p), p)


def umi_shadow_fading_std_db(los: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Shadow-fading standard deviation of UMi: 4 dB in LoS, 7.82 dB in NLoS.

    Args:
        los: [...] bool.
        dtype: result dtype (default: torch's default float dtype).

    Returns:
        [...] float, sigma_SF (dB).
    """
    dtype = dtype or torch.get_default_dtype()
    return torch.where(los, torch.tensor(4.0, dtype=dtype, device=los.device),
                       torch.tensor(7.82, dtype=dtype, device=los.device))


def jakes_correlation(doppler_hz: float, slot_duration_s: float, clamp_negative: bool = True) -> float:
    """Lag-one correlation of Clarke/Jakes fading, rho = J0(2 pi f_d T).

    Beyond f_d T = 0.3827 the Bessel function is negative, which would make a first-order
    Gauss-Markov process flip sign every slot; ``clamp_negative`` maps such values to 0 (independent
    slots), the closest process that stays physically sensible.

    Args:
        doppler_hz: maximum Doppler shift f_d (Hz).
        slot_duration_s: time between samples T (s).
        clamp_negative: clamp rho to [0, 1].

    Returns:
        rho (float).
    """
    x = torch.tensor(2.0 * math.pi * doppler_hz * slot_duration_s, dtype=torch.float64)
    rho = float(torch.special.bessel_j0(x))
    return max(rho, 0.0) if clamp_negative else rho


def gauss_markov_step(fading: torch.Tensor, rho: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of first-order Gauss-Markov fading, h[n] = rho h[n-1] + sqrt(1 - rho^2) e[n], e ~ CN(0, 1).

    Keeps E|h|^2 = 1 when the input has unit power; matches the Jakes correlation at lag one.

    Args:
        fading: [...] complex, h[n-1].
        rho: lag-one correlation in [0, 1].
        generator: torch generator for the innovation.

    Returns:
        [...] complex, h[n].
    """
    innovation = torch.randn(fading.shape, dtype=fading.dtype, device=fading.device, generator=generator)
    return rho * fading + math.sqrt(max(1.0 - rho * rho, 0.0)) * innovation
