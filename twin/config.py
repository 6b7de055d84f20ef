"""Configuration of the link-adaptation digital twin network (DTN) and its joint action set.

The defaults reproduce the simulation setting of the DTN continual-DRL link-adaptation method:
K = 4 access points (APs) 600 m apart, each covering 300 m with a 30 m empty radius, N = 20 IoT
devices, P_max = 30 dBm, P_min = 5 dBm, -174 dBm/Hz noise, a 20 ms slot, 1000-bit packets,
PF averaging factor alpha_r = 0.1, twin-to-reality deviation phi = 0.4, 3GPP TR 38.901 UMi at
6.5 GHz with 10 m / 1.5 m antenna heights and gamma = 0.9.

Joint action (48 values). Each link picks a transmit power level, a modulation and a code rate::

    action = power_index * 12 + modulation_index * 3 + code_rate_index
    power_index      in 0..3  -> config.power_levels_dbm (eq. 25)
    modulation_index in 0..3  -> BPSK, QPSK, 16QAM, 64QAM   (orders 2, 4, 16, 64)
    code_rate_index  in 0..2  -> 1/2, 3/4, 5/6
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

__all__ = [
    "CODE_RATES",
    "MODULATION_NAMES",
    "MODULATION_ORDERS",
    "NUM_CODE_RATES",
    "NUM_MODULATIONS",
    "OBSERVATION_FEATURES",
    "DTNConfig",
    "decode_action",
    "encode_action",
    "geometric_power_levels_dbm",
]

MODULATION_NAMES: tuple[str, ...] = ("BPSK", "QPSK", "16QAM", "64QAM")
"""Modulations of the action set, in modulation-index order."""
MODULATION_ORDERS: tuple[int, ...] = (2, 4, 16, 64)
"""Constellation size M of each modulation index."""
CODE_RATES: tuple[float, ...] = (1 / 2, 3 / 4, 5 / 6)
"""Channel code rates of the action set, in code-rate-index order."""
NUM_MODULATIONS = len(MODULATION_ORDERS)
NUM_CODE_RATES = len(CODE_RATES)

INTERFERENCE_MODELS: tuple[str, ...] = ("geometric", "colocated")
"""Allowed values of :attr:`DTNConfig.interference`."""
OBSERVATION_FEATURES: tuple[str, ...] = (
    "channel_quality",
    "last_sinr",
    "last_aci",
    "last_hwi",
    "last_power",
    "last_rate",
)
"""Names of the 6 numbers of a link's local state (eq. 21), in order; see :mod:`twin.network`."""


def geometric_power_levels_dbm(p_min_dbm: float, p_max_dbm: float, num_levels: int) -> tuple[float, ...]:
    """Power set of eq. 25: ``num_levels`` levels from P_min to P_max, equally spaced in dB.

    P_i = P_min * (P_max / P_min) ** (i / (L - 1)), i = 0..L-1 (geometric in watts, i.e. uniform in dBm).
    With the defaults (5 dBm, 30 dBm, 4 levels): 5, 13.33, 21.67, 30 dBm.
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    step = (p_max_dbm - p_min_dbm) / (num_levels - 1)
    return tuple(p_min_dbm + i * step for i in range(num_levels))


@dataclass(frozen=True)
class DTNConfig:
    """Parameters of the link-adaptation DTN (and of the analytic physical network built from it)."""

    # --- topology --------------------------------------------------------------------------
    num_aps: int = 4
    """K: number of access points. They sit on a square-ish grid (ceil(sqrt(K)) columns)."""
    num_devices: int = 20
    """N: number of IoT devices (= links; each device is served by one AP)."""
    ap_spacing_m: float = 600.0
    """Distance between neighbouring APs on the grid (m)."""
    coverage_radius_m: float = 300.0
    """Radius of each AP's coverage disc; devices are dropped uniformly (by area) inside it (m)."""
    empty_radius_m: float = 30.0
    """Radius around each AP where no device is dropped (m)."""
    bs_height_m: float = 10.0
    """AP antenna height h_BS (m); TR 38.901 UMi uses 10 m."""
    ut_height_m: float = 1.5
    """Device antenna height h_UT (m)."""

    # --- spectrum and time -----------------------------------------------------------------
    carrier_frequency_hz: float = 6.5e9
    """Carrier frequency f_c (Hz); converted to GHz inside the path-loss log terms."""
    num_rrbs: int = 8
    """R: radio resource blocks (RRBs) in the band. RRB r belongs to AP (r mod K): the APs' RRBs
    interleave in frequency, so the first and second adjacent RRBs of a link belong to other APs
    (other radios / numerologies) and leak into it. Must be a multiple of K."""
    rrb_bandwidth_hz: float = 180e3
    """Bandwidth of one RRB (Hz): one LTE / NR 15 kHz resource block (12 subcarriers x 15 kHz)."""
    rrb_symbol_rate: float = 168e3
    """Resource elements carried by one RRB per second: 12 subcarriers x 14 OFDM symbols per ms."""
    noise_psd_dbm_hz: float = -174.0
    """Thermal noise power spectral density (dBm/Hz)."""
    noise_figure_db: float = 0.0
    """Receiver noise figure added to the thermal noise (dB)."""
    slot_duration_s: float = 20e-3
    """TS: duration of one time slot, i.e. one environment step (s)."""
    slots_per_episode: int = 100
    """Slots in an episode; ``info['truncated']`` turns true at the last one."""

    # --- transmitter / link abstraction -------------------------------------------------------
    p_max_dbm: float = 30.0
    """P_max: largest transmit power per link (per RRB) (dBm)."""
    p_min_dbm: float = 5.0
    """P_min: smallest transmit power per link (dBm)."""
    num_power_levels: int = 4
    """Number of power levels of the action set (eq. 25)."""
    power_levels_dbm: tuple[float, ...] | None = None
    """Explicit power set in dBm; ``None`` builds eq. 25 from P_min, P_max and num_power_levels."""
    packet_bits: int = 1000
    """N_p: information bits per packet; the packet error rate compounds the bit error rate over them."""
    coding_gain_db: tuple[float, ...] = (6.99, 3.98, 3.01)
    """Effective SINR gain of the channel decoder per code rate (1/2, 3/4, 5/6) (dB), applied to the
    per-symbol SINR before the SER formula. Defaults: hard-decision asymptotic gain of the K = 7
    (133, 171) convolutional code and its punctured rates per channel symbol, 10 log10(d_free / 2)
    with d_free = 10, 5, 4."""
    ser_model: str = "exact"
    """Symbol-error formula: ``"exact"`` (square-QAM SER in Es/N0) or ``"printed"`` (eq. 17 as printed,
    which treats the per-symbol SINR as Eb/N0 and under-estimates the SER by orders of magnitude)."""

    # --- channel ----------------------------------------------------------------------------
    doppler_hz: float = 10.0
    """Maximum Doppler shift f_d of the small-scale fading (Hz); rho = J0(2 pi f_d TS)."""
    shadowing: bool = True
    """Draw log-normal shadowing (sigma 4 dB LoS, 7.82 dB NLoS) per device-AP pair and episode."""
    fading: bool = True
    """Apply Rayleigh small-scale fading with first-order Gauss-Markov (Jakes rho) evolution."""

    # --- hardware impairments and adjacent-channel interference ---------------------------------
    kappa_t: float = 0.05
    """Transmitter EVM kappa_t (ratio, not %): the TX distortion power is kappa_t^2 times the signal power."""
    kappa_r: float = 0.05
    """Receiver EVM kappa_r (ratio)."""
    acir1_db: float = 30.0
    """ACIR of the first adjacent RRB (r +- 1) (dB)."""
    acir2_db: float = 45.0
    """ACIR of the second adjacent RRB (r +- 2) (dB)."""
    interference: str = "geometric"
    """How a device hears the other links. ``"geometric"`` (eq. 14): device n hears AP k's neighbouring RRBs through
    its own channel g_{n,k}, and its hardware distortion is kappa^2 times its AP's mean power per RRB through
    g_{n,k(n)}. ``"colocated"``: every device sits at one receiver, as when the over-the-air runner renders all
    devices on one device radio: a link's neighbouring RB groups leak at their own received level whichever AP sends
    them, and its distortion is kappa^2 times its own received level."""
    max_snr_db: float | None = None
    """Highest SNR a link is received with (dB); ``None``: unbounded. Over the air it is what an AP radio delivers
    to the device radio at full power: a link whose P g / N exceeds it is received at it (in the ``"colocated"`` view
    its leakage and distortion follow the capped level too; the geometric view caps the link's own signal only)."""
    phi_aci: float = 0.0
    """Relative deviation applied to the model's ACI power: ACI = ACI_model (1 + phi_aci). 0 for an
    uncalibrated twin; :func:`twin.from_calibration` sets it from a measurement."""
    phi_hwi: float = 0.0
    """Relative deviation applied to the model's HWI distortion power: HWI = HWI_model (1 + phi_hwi)."""
    phi: float = 0.4
    """phi: hidden deviation of the physical network's ACI and HWI from the model (eqs. 11-12);
    :class:`twin.AnalyticPhysical` uses it when no phi is passed."""

    # --- scheduling and learning ------------------------------------------------------------
    pf_alpha: float = 0.1
    """alpha_r: exponential averaging factor of the PF average throughput,
    T_n(t+1) = (1 - alpha_r) T_n(t) + alpha_r R_n(t)."""
    pf_initial_throughput: float = 1e-3
    """Starting PF average throughput (bit per resource element) so the first metric is finite."""
    discount: float = 0.9
    """gamma: discount factor of the Markov game (used by learners; the env only reports it)."""
    sigma_rt: float = 0.05
    """sigma_rt: standard deviation of the relative error of the real-time context (channel gains)
    the twin receives from the physical network when synchronising; 0 means a perfect copy."""

    def __post_init__(self) -> None:
        if self.num_aps < 1 or self.num_devices < 1:
            raise ValueError(f"num_aps and num_devices must be >= 1, got {self.num_aps}, {self.num_devices}")
        if self.num_rrbs % self.num_aps != 0:
            raise ValueError(f"num_rrbs ({self.num_rrbs}) must be a multiple of num_aps ({self.num_aps})")
        if self.interference not in INTERFERENCE_MODELS:
            raise ValueError(f"interference={self.interference!r}; allowed: {', '.join(INTERFERENCE_MODELS)}")
        if self.ser_model not in ("exact", "printed"):
            raise ValueError(f"ser_model must be 'exact' or 'printed', got {self.ser_model!r}")
        if len(self.coding_gain_db) != NUM_CODE_RATES:
            raise ValueError(f"coding_gain_db needs {NUM_CODE_RATES} values, got {len(self.coding_gain_db)}")
        if not 0.0 <= self.kappa_t < 1.0 or not 0.0 <= self.kappa_r < 1.0:
            raise ValueError(f"kappa_t and kappa_r must be in [0, 1), got {self.kappa_t}, {self.kappa_r}")
        for name in ("phi_aci", "phi_hwi", "phi"):
            if getattr(self, name) <= -1.0:
                raise ValueError(f"{name} must be > -1, got {getattr(self, name)}")
        if self.p_min_dbm > self.p_max_dbm:
            raise ValueError(f"p_min_dbm ({self.p_min_dbm}) must not exceed p_max_dbm ({self.p_max_dbm})")
        if len(self.power_set_dbm) != self.num_power_levels:
            raise ValueError("power_levels_dbm must have num_power_levels entries")

    # --- derived quantities -----------------------------------------------------------------
    @property
    def power_set_dbm(self) -> tuple[float, ...]:
        """The transmit power levels of the action set (dBm), eq. 25."""
        if self.power_levels_dbm is not None:
            return tuple(float(p) for p in self.power_levels_dbm)
        return geometric_power_levels_dbm(self.p_min_dbm, self.p_max_dbm, self.num_power_levels)

    @property
    def num_actions(self) -> int:
        """Size of the joint action set: power levels x modulations x code rates (48 by default)."""
        return self.num_power_levels * NUM_MODULATIONS * NUM_CODE_RATES

    @property
    def rrbs_per_ap(self) -> int:
        """RRBs owned by each AP (R / K)."""
        return self.num_rrbs // self.num_aps

    @property
    def noise_power_w(self) -> float:
        """Noise power in one RRB (W): N0 * W_RRB * NF."""
        dbm = self.noise_psd_dbm_hz + 10.0 * math.log10(self.rrb_bandwidth_hz) + self.noise_figure_db
        return 10.0 ** ((dbm - 30.0) / 10.0)

    @property
    def max_link_rate_mbps(self) -> float:
        """Largest rate one link can reach: 64QAM, rate 5/6, no packet error (Mbit/s)."""
        return self.rrb_symbol_rate * math.log2(MODULATION_ORDERS[-1]) * CODE_RATES[-1] / 1e6

    @property
    def observation_size(self) -> int:
        """Length of a link's local state (eq. 21): 6."""
        return len(OBSERVATION_FEATURES)

    def with_updates(self, **changes) -> "DTNConfig":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)


def decode_action(action: torch.Tensor, num_power_levels: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split joint actions into (power index, modulation index, code-rate index).

    Args:
        action: [...] int64, joint action in ``0 .. num_power_levels * 12 - 1``.
        num_power_levels: size of the power set.

    Returns:
        Three [...] int64 tensors: power index (0..L-1), modulation index (0..3), code-rate index (0..2).
    """
    per_power = NUM_MODULATIONS * NUM_CODE_RATES
    if action.numel() and (int(action.min()) < 0 or int(action.max()) >= num_power_levels * per_power):
        raise ValueError(f"actions must lie in [0, {num_power_levels * per_power}), got "
                         f"[{int(action.min())}, {int(action.max())}]")
    power_index = torch.div(action, per_power, rounding_mode="floor")
    rest = action - power_index * per_power
    modulation_index = torch.div(rest, NUM_CODE_RATES, rounding_mode="floor")
    code_rate_index = rest - modulation_index * NUM_CODE_RATES
    return power_index, modulation_index, code_rate_index


def encode_action(power_index: torch.Tensor, modulation_index: torch.Tensor,
                  code_rate_index: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decode_action`: [...] int64 joint action."""
    return (power_index * NUM_MODULATIONS + modulation_index) * NUM_CODE_RATES + code_rate_index
