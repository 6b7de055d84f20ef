"""Link-level physics of the DTN: SINR of eq. 14, symbol/packet error rates and rate (eqs. 15-17).

Conventions: powers in W, gains linear (power ratios), SINR linear per resource element (Es/(N0 + I)),
rates in Mbit/s. Everything is batched over leading dimensions and never loops over links.

SINR (eq. 14), link n served by AP k on RRB r with transmit power P_n and channel gain g_{n,k}::

    SINR_n = P_n g_{n,k} / ( HWI_n + ACI_n + N )
    HWI_n  = (1 + phi_hwi) (kappa_t^2 + kappa_r^2) Pbar_k g_{n,k}
    ACI_n  = (1 + phi_aci) [ sum_{r' = r +- 1} P_{r'} g_{n,k(r')} / ACIR1 + sum_{r' = r +- 2} P_{r'} g_{n,k(r')} / ACIR2 ]

Pbar_k = P_total,k / R_k is the total power AP k transmits in the slot averaged over its R_k RRBs:
TX/RX distortion spreads over the AP's whole occupied band, so kappa stays the per-resource-element
EVM that the calibration measures (with equal powers on every RRB, Pbar_k = P_n and the expression is
Bjornson's single-link (kappa_t^2 + kappa_r^2) P g). ACI counts only RRBs r' that are occupied in the
slot and belong to another AP than the victim's: RRBs of one AP share an OFDM numerology and stay
orthogonal.

Error and rate model of a link with modulation order M and code rate c:

    gamma_eff = SINR * G_c                           (G_c: decoder gain of code rate c)
    SER       = SER_M(gamma_eff)                     (eq. 17; exact square-QAM form or the printed one)
    BER       = SER / log2 M                         (Gray mapping, one bit error per symbol error)
    PER       = 1 - (1 - BER)^N_p                    (eq. 16, N_p-bit packets)
    rate      = S_RRB log2(M) c (1 - PER)            (eq. 15; S_RRB resource elements per second)
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from .config import CODE_RATES, MODULATION_ORDERS

__all__ = [
    "CQI_EFFICIENCY",
    "CQI_SINR_THRESHOLD_DB",
    "SinrTerms",
    "bit_error_rate",
    "colocated_interference",
    "cqi_from_sinr_db",
    "link_rate_mbps",
    "lookup",
    "modulation_order_tensor",
    "packet_error_rate",
    "q_function",
    "ser_exact",
    "gather_to_rrbs",
    "rrb_occupant",
    "scatter_to_links",
    "ser_printed_eq17",
    "sinr_coupling",
    "slot_sinr",
    "slot_sinr_rrb",
]

# 36.213 Table 7.2.3-1 (= 38.214 CQI table 1): spectral efficiency (bit per resource element) per CQI 1..15.
CQI_EFFICIENCY: tuple[float, ...] = (0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
                                     2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547)
"""Spectral efficiency of CQI 1..15 (bit/RE), TS 36.213 Table 7.2.3-1."""
# The customary "10 % BLER" SINR thresholds (AWGN link-level curves) for CQI 1..15 (dB).
CQI_SINR_THRESHOLD_DB: tuple[float, ...] = (-6.7, -4.7, -2.3, 0.2, 2.4, 4.3, 5.9, 8.1, 10.3, 11.7, 14.1,
                                            16.3, 18.7, 21.0, 22.7)
"""SINR (dB) from which each CQI 1..15 is reported (10 % BLER table); below CQI 1's threshold CQI = 0."""


@functools.lru_cache(maxsize=64)
def _table(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Small constant look-up tables, built once per (values, dtype, device) instead of every slot.
    return torch.tensor(values, dtype=dtype, device=device)


def lookup(values: tuple[float, ...] | tuple[int, ...], index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``values[index]`` as a tensor of ``dtype`` on ``index``'s device (index_select: fast on CPU).

    Args:
        values: constant table.
        index: [...] int64.
        dtype: result dtype.

    Returns:
        [...] tensor.
    """
    table = _table(tuple(values), dtype, index.device)
    return table.index_select(0, index.reshape(-1)).view(index.shape)


class SinrTerms(NamedTuple):
    """The terms of eq. 14 for every link of a slot; all [..., N] float, W or linear."""

    sinr: torch.Tensor
    """Signal-to-interference-plus-noise-and-distortion ratio (linear); 0 for idle links."""
    signal_w: torch.Tensor
    """Received signal power P_n g_{n,k} (W)."""
    aci_w: torch.Tensor
    """Adjacent-channel interference power after (1 + phi_aci) (W)."""
    hwi_w: torch.Tensor
    """Hardware-impairment distortion power after (1 + phi_hwi) (W)."""
    noise_w: torch.Tensor
    """Noise power (W), broadcast to the link shape."""


def q_function(x: torch.Tensor) -> torch.Tensor:
    """Gaussian tail probability Q(x) = 0.5 erfc(x / sqrt 2)."""
    return 0.5 * torch.special.erfc(x / math.sqrt(2.0))


def ser_exact(esn0: torch.Tensor, modulation_order: torch.Tensor | int) -> torch.Tensor:
    """Exact AWGN symbol error rate of BPSK and Gray square M-QAM as a function of Es/N0.

    BPSK: Q(sqrt(2 gamma)). Square M-QAM: P = 2 (1 - 1/sqrt M) Q(sqrt(3 gamma / (M - 1))),
    SER = 2P - P^2 (exact for M = 4 too).

    Args:
        esn0: [...] float, per-symbol SNR gamma_s (linear).
        modulation_order: [...] int or int, M in {2, 4, 16, 64, 256, ...}.

    Returns:
        [...] float, symbol error probability.
    """
    m = torch.as_tensor(modulation_order, device=esn0.device).to(esn0.dtype)
    esn0 = esn0.clamp(min=0.0)
    per_axis = 2.0 * (1.0 - 1.0 / torch.sqrt(m)) * q_function(torch.sqrt(3.0 * esn0 / (m - 1.0)))
    qam = 2.0 * per_axis - per_axis * per_axis
    bpsk = q_function(torch.sqrt(2.0 * esn0))
    return torch.where(m == 2.0, bpsk, qam)


def ser_printed_eq17(esn0: torch.Tensor, modulation_order: torch.Tensor | int) -> torch.Tensor:
    """Eq. 17 as printed: 2 (1 - 1/sqrt M) Q(sqrt(3 log2(M) SINR / (M - 1))).

    This is the per-dimension error of sqrt(M)-PAM written in Eb/N0; fed with a per-symbol SINR it
    inflates the SNR by log2 M and omits the factor ~2 of the two quadratures, so it under-estimates
    the SER by orders of magnitude. Offered only to reproduce the paper's numbers.

    Args:
        esn0: [...] float, SINR (linear) as the paper feeds it.
        modulation_order: [...] int or int, M.

    Returns:
        [...] float.
    """
    m = torch.as_tensor(modulation_order, device=esn0.device).to(esn0.dtype)
    esn0 = esn0.clamp(min=0.0)
    return 2.0 * (1.0 - 1.0 / torch.sqrt(m)) * q_function(torch.sqrt(3.0 * torch.log2(m) * esn0 / (m - 1.0)))


def bit_error_rate(sinr: torch.Tensor, modulation_order: torch.Tensor, code_rate_index: torch.Tensor,
                   coding_gain_db: tuple[float, ...], ser_model: str = "exact") -> torch.Tensor:
    """Post-decoding bit error rate: SER_M(SINR * G_c) / log2 M.

    Args:
        sinr: [...] float, per-symbol SINR (linear).
        modulation_order: [...] int64, M.
        code_rate_index: [...] int64, index into :data:`twin.config.CODE_RATES`.
        coding_gain_db: per code-rate decoder gain G_c (dB).
        ser_model: ``"exact"`` or ``"printed"`` (eq. 17 as printed).

    Returns:
        [...] float in [0, 0.5].
    """
    gains = tuple(10.0 ** (g / 10.0) for g in coding_gain_db)
    effective = sinr * lookup(gains, code_rate_index, sinr.dtype)
    ser_fn = ser_exact if ser_model == "exact" else ser_printed_eq17
    ser = ser_fn(effective, modulation_order)
    return (ser / torch.log2(modulation_order.to(sinr.dtype))).clamp(0.0, 0.5)


def packet_error_rate(sinr: torch.Tensor, modulation_order: torch.Tensor, code_rate_index: torch.Tensor,
                      packet_bits: int, coding_gain_db: tuple[float, ...], ser_model: str = "exact") -> torch.Tensor:
    """Packet error rate (eq. 16): 1 - (1 - BER)^N_p, computed as -expm1(N_p log1p(-BER)) for accuracy.

    Args: as :func:`bit_error_rate`, plus ``packet_bits`` N_p.

    Returns:
        [...] float in [0, 1].
    """
    ber = bit_error_rate(sinr, modulation_order, code_rate_index, coding_gain_db, ser_model)
    return -torch.expm1(packet_bits * torch.log1p(-ber))


def link_rate_mbps(per: torch.Tensor, modulation_order: torch.Tensor, code_rate_index: torch.Tensor,
                   symbol_rate: float, active: torch.Tensor) -> torch.Tensor:
    """Goodput of each link (eq. 15): S_RRB log2(M) c (1 - PER), 0 for idle links (Mbit/s).

    Args:
        per: [...] float, packet error rate.
        modulation_order: [...] int64, M.
        code_rate_index: [...] int64.
        symbol_rate: resource elements per second of one RRB.
        active: [...] bool, link transmits in this slot.
    """
    bits = torch.log2(modulation_order.to(per.dtype)) * lookup(CODE_RATES, code_rate_index, per.dtype)
    return torch.where(active, symbol_rate * bits * (1.0 - per) / 1e6, torch.zeros_like(per))


def rrb_occupant(rrb: torch.Tensor, num_rrbs: int) -> torch.Tensor:
    """Which link sits on each RRB.

    Args:
        rrb: [B, N] int64, RRB of each link, -1 when idle (at most one link per RRB).
        num_rrbs: R.

    Returns:
        [B, R] int64, index of the link on each RRB, N when the RRB is empty.
    """
    batch, num_links = rrb.shape
    slot = torch.where(rrb >= 0, rrb, torch.full_like(rrb, num_rrbs))                   # idle -> spill column R
    occupant = torch.full((batch, num_rrbs + 1), num_links, dtype=torch.int64, device=rrb.device)
    occupant.scatter_(1, slot, torch.arange(num_links, device=rrb.device).expand(batch, -1))
    return occupant[:, :num_rrbs]


@functools.lru_cache(maxsize=64)
def _neighbours(owner: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Static neighbour structure of the band: for offsets (-2, -1, +1, +2), the neighbour RRB index
    # (clamped), its owner, and whether it exists and belongs to another AP (only then it leaks).
    num_rrbs = len(owner)
    r = torch.arange(num_rrbs)
    offsets = torch.tensor([-2, -1, 1, 2])
    neighbour = r.unsqueeze(-1) + offsets                                                # [R, 4]
    inside = (neighbour >= 0) & (neighbour < num_rrbs)
    neighbour = neighbour.clamp(0, num_rrbs - 1)
    owners = torch.tensor(owner)
    leaks = inside & (owners[neighbour] != owners.unsqueeze(-1))
    return neighbour.to(device), owners[neighbour].to(device), leaks.to(device)


def colocated_interference(level_w: torch.Tensor, occupied: torch.Tensor, kappa2: float, acir1_db: float,
                           acir2_db: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ACI and hardware distortion of each RRB's link when every link is heard by one receiver.

    Neighbouring RB groups leak at their own received level (ACIR1 for r +- 1, ACIR2 for r +- 2, whichever AP sends
    them); a link's distortion is kappa^2 times its own received level.

    Args:
        level_w: [B, R] float, received power of each RRB's link at the receiver (W).
        occupied: [B, R] bool, RRB carries a link.
        kappa2: kappa_t^2 + kappa_r^2.
        acir1_db, acir2_db: RB-group ACIR of the first / second neighbour (dB).

    Returns:
        (aci [B, R], hwi [B, R]) in W, 0 on empty RRBs.
    """
    level = torch.where(occupied, level_w, torch.zeros_like(level_w))
    padded = torch.nn.functional.pad(level, (2, 2))
    num_rrbs = level.shape[-1]
    first = padded[..., 1:1 + num_rrbs] + padded[..., 3:3 + num_rrbs]
    second = padded[..., 0:num_rrbs] + padded[..., 4:4 + num_rrbs]
    aci = 10.0 ** (-acir1_db / 10.0) * first + 10.0 ** (-acir2_db / 10.0) * second
    zero = torch.zeros_like(level)
    return torch.where(occupied, aci, zero), kappa2 * level


def slot_sinr_rrb(power_w: torch.Tensor, occupant_gain: torch.Tensor, occupied: torch.Tensor,
                  rrb_owner: torch.Tensor, kappa_t: float, kappa_r: float, acir1_db: float, acir2_db: float,
                  noise_w: float, phi_aci: float = 0.0, phi_hwi: float = 0.0, colocated: bool = False,
                  max_snr_db: float | None = None) -> SinrTerms:
    """Eq. 14 evaluated per RRB (the link on RRB r is served by r's owner, as PF guarantees).

    Work is O(B R K) whatever the number of links, which is why the environment uses this form.

    Args:
        power_w: [B, R] float, power transmitted on each RRB (W); ignored where not occupied.
        occupant_gain: [B, R, K] float, gain from every AP to the device occupying each RRB (linear).
        occupied: [B, R] bool, RRB carries a link in the slot.
        rrb_owner: [R] int64, AP owning each RRB.
        colocated: every device at one receiver (see :attr:`twin.DTNConfig.interference`).
        max_snr_db: highest received SNR of a link (dB, see :attr:`twin.DTNConfig.max_snr_db`); None: unbounded.
        Others as :func:`slot_sinr`.

    Returns:
        :class:`SinrTerms` of [B, R] tensors (0 on empty RRBs).
    """
    batch, num_rrbs, num_aps = occupant_gain.shape
    zero = torch.zeros((), dtype=power_w.dtype, device=power_w.device)
    power = torch.where(occupied, power_w, zero)
    own_gain = torch.gather(occupant_gain, 2, rrb_owner.view(1, -1, 1).expand(batch, -1, 1)).squeeze(-1)
    signal = power * own_gain
    if max_snr_db is not None:
        signal = signal.clamp(max=noise_w * 10.0 ** (max_snr_db / 10.0))
    if colocated:
        aci, hwi = colocated_interference(signal, occupied, kappa_t ** 2 + kappa_r ** 2, acir1_db, acir2_db)
        aci, hwi = (1.0 + phi_aci) * aci, (1.0 + phi_hwi) * hwi
        noise = torch.full_like(signal, noise_w)
        sinr = torch.where(occupied, signal / (hwi + aci + noise), zero)
        return SinrTerms(sinr=sinr, signal_w=signal, aci_w=aci, hwi_w=hwi, noise_w=noise)
    # HWI: the owning AP's total power averaged over the RRBs it owns.
    ap_power = torch.zeros(batch, num_aps, dtype=power.dtype, device=power.device).index_add_(1, rrb_owner, power)
    rrbs_per_ap = torch.bincount(rrb_owner, minlength=num_aps).clamp(min=1).to(power.dtype)
    mean_ap_power = (ap_power / rrbs_per_ap).index_select(1, rrb_owner)                # [B, R]
    hwi = (1.0 + phi_hwi) * (kappa_t ** 2 + kappa_r ** 2) * mean_ap_power * own_gain
    # ACI: power on r +- 1, r +- 2 of other APs through the victim's channel from that AP.
    neighbour, neighbour_owner, leaks = _neighbours(tuple(rrb_owner.tolist()), rrb_owner.device)
    neighbour_power = power.index_select(1, neighbour.reshape(-1)).view(batch, num_rrbs, 4)
    neighbour_gain = torch.gather(occupant_gain, 2, neighbour_owner.unsqueeze(0).expand(batch, -1, -1))
    acir1, acir2 = 10.0 ** (-acir1_db / 10.0), 10.0 ** (-acir2_db / 10.0)
    weight = _table((acir2, acir1, acir1, acir2), power.dtype, power.device) * leaks       # [R, 4]
    aci = (1.0 + phi_aci) * (neighbour_power * neighbour_gain * weight).sum(-1)
    aci = torch.where(occupied, aci, zero)
    hwi = torch.where(occupied, hwi, zero)
    noise = torch.full_like(signal, noise_w)
    sinr = torch.where(occupied, signal / (hwi + aci + noise), zero)
    return SinrTerms(sinr=sinr, signal_w=signal, aci_w=aci, hwi_w=hwi, noise_w=noise)


def gather_to_rrbs(values: torch.Tensor, occupant: torch.Tensor) -> torch.Tensor:
    """[B, N, ...] per-link values -> [B, R, ...] values of each RRB's occupant (occupant N reads link 0)."""
    num_links = values.shape[1]
    index = occupant.clamp(max=num_links - 1)
    if values.dim() == 2:
        return torch.gather(values, 1, index)
    shape = index.shape + values.shape[2:]
    return torch.gather(values, 1, index.view(index.shape + (1,) * (values.dim() - 2)).expand(shape))


def scatter_to_links(values: torch.Tensor, occupant: torch.Tensor, num_links: int) -> torch.Tensor:
    """[B, R, ...] per-RRB values -> [B, N, ...] per-link values (0 for idle links)."""
    batch = values.shape[0]
    out = torch.zeros((batch, num_links + 1) + values.shape[2:], dtype=values.dtype, device=values.device)
    if values.dim() == 2:
        out.scatter_(1, occupant, values)
    else:
        out.scatter_(1, occupant.view(occupant.shape + (1,) * (values.dim() - 2)).expand(values.shape), values)
    return out[:, :num_links]


def slot_sinr(power_w: torch.Tensor, gain: torch.Tensor, serving_ap: torch.Tensor, rrb: torch.Tensor,
              rrb_owner: torch.Tensor, kappa_t: float, kappa_r: float, acir1_db: float, acir2_db: float,
              noise_w: float, phi_aci: float = 0.0, phi_hwi: float = 0.0, colocated: bool = False,
              max_snr_db: float | None = None) -> SinrTerms:
    """SINR of every link in one slot (eq. 14, see the module docstring).

    Args:
        power_w: [B, N] float, transmit power of each link (W); ignored for idle links.
        gain: [B, N, K] float, channel power gain from every AP to every device (linear, incl. fading).
        serving_ap: [B, N] int64, AP serving each device; a scheduled link's RRB must belong to it.
        rrb: [B, N] int64, RRB of each link in this slot, -1 if the link is idle (not scheduled).
            At most one link per RRB.
        rrb_owner: [R] int64, AP owning each RRB.
        kappa_t, kappa_r: TX / RX EVM (ratio).
        acir1_db, acir2_db: ACIR of the first / second adjacent RRB (dB).
        noise_w: noise power per RRB (W).
        phi_aci, phi_hwi: relative deviations scaling the ACI and HWI terms.
        colocated: every device at one receiver (see :attr:`twin.DTNConfig.interference`).
        max_snr_db: highest received SNR of a link (dB, see :attr:`twin.DTNConfig.max_snr_db`); None: unbounded.

    Returns:
        :class:`SinrTerms` of [B, N] tensors (0 for idle links, noise everywhere).
    """
    num_links = gain.shape[1]
    occupant = rrb_occupant(rrb, rrb_owner.numel())
    occupied = occupant < num_links
    terms = slot_sinr_rrb(gather_to_rrbs(power_w, occupant), gather_to_rrbs(gain, occupant), occupied, rrb_owner,
                          kappa_t, kappa_r, acir1_db, acir2_db, noise_w, phi_aci, phi_hwi, colocated, max_snr_db)
    stacked = torch.stack([terms.sinr, terms.signal_w, terms.aci_w, terms.hwi_w], dim=-1)
    sinr, signal, aci, hwi = scatter_to_links(stacked, occupant, num_links).unbind(-1)
    return SinrTerms(sinr=sinr, signal_w=signal, aci_w=aci, hwi_w=hwi, noise_w=torch.full_like(sinr, noise_w))


def cqi_from_sinr_db(sinr_db: torch.Tensor,
                     thresholds_db: tuple[float, ...] = CQI_SINR_THRESHOLD_DB) -> torch.Tensor:
    """CQI (0..15) a UE reports for a measured SINR: the largest k with SINR >= threshold_k.

    Args:
        sinr_db: [...] float, SINR (dB).
        thresholds_db: 15 increasing thresholds for CQI 1..15 (dB).

    Returns:
        [...] int64 CQI, 0 = out of range.
    """
    thresholds = _table(tuple(thresholds_db), sinr_db.dtype, sinr_db.device)
    return torch.bucketize(sinr_db, thresholds, right=True)


def modulation_order_tensor(modulation_index: torch.Tensor) -> torch.Tensor:
    """[...] int64 modulation order M for modulation indices (0..3 -> 2, 4, 16, 64)."""
    return lookup(MODULATION_ORDERS, modulation_index, torch.int64)


def sinr_coupling(gain: torch.Tensor, serving_ap: torch.Tensor, rrb: torch.Tensor, rrb_owner: torch.Tensor,
                  kappa_t: float, kappa_r: float, acir1_db: float, acir2_db: float, phi_aci: float = 0.0,
                  phi_hwi: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 14 in matrix form, for power optimisers: SINR_n = a_n P_n / (sum_m C_nm P_m + N).

    a_n = g_{n,k(n)}; C_nm collects how much of link m's power reaches link n as distortion or ACI:
    (1 + phi_hwi)(kappa_t^2 + kappa_r^2) g_{n,k(n)} / R_k for every m served by the same AP (m = n
    included), plus (1 + phi_aci) g_{n,k(m)} / ACIR1 (or / ACIR2) when m sits on RRB r_n +- 1 (or +- 2)
    of another AP. Rows and columns of idle links are zero.

    Args: as :func:`slot_sinr` (without powers and noise).

    Returns:
        (a [B, N] float direct gains, C [B, N, N] float coupling matrix).
    """
    batch, num_links, num_aps = gain.shape
    active = rrb >= 0
    both = active.unsqueeze(2) & active.unsqueeze(1)
    direct = torch.gather(gain, 2, serving_ap.unsqueeze(-1)).squeeze(-1)
    rrbs_per_ap = torch.bincount(rrb_owner, minlength=num_aps).clamp(min=1).to(gain.dtype)
    same_ap = serving_ap.unsqueeze(2) == serving_ap.unsqueeze(1)
    hwi = (1.0 + phi_hwi) * (kappa_t ** 2 + kappa_r ** 2) * direct / rrbs_per_ap[serving_ap]
    coupling = torch.where(same_ap & both, hwi.unsqueeze(-1), torch.zeros((), dtype=gain.dtype, device=gain.device))
    cross_gain = torch.gather(gain, 2, serving_ap.unsqueeze(1).expand(batch, num_links, num_links))  # g_{n, k(m)}
    distance = (rrb.unsqueeze(2) - rrb.unsqueeze(1)).abs()
    acir = _table((0.0, 10.0 ** (-acir1_db / 10.0), 10.0 ** (-acir2_db / 10.0)), gain.dtype, gain.device)
    neighbour = torch.where(distance <= 2, distance, torch.zeros_like(distance))   # 0: not adjacent
    weight = acir.index_select(0, neighbour.reshape(-1)).view(distance.shape)
    aci = (1.0 + phi_aci) * cross_gain * weight * (both & ~same_ap)
    return direct * active, coupling + aci
