"""HetNet mode: joint user association, sub-channel blocks and power split (one macro BS + K small BSs).

Network. BS 0 is the macro BS (MBS) at the centre of a square area; BSs 1..K are small BSs (SBSs)
dropped uniformly in the area at least ``sbs_min_distance_m`` from the MBS, redrawn each episode.
N UEs: a fraction are static sensors (uniform in the area), the rest mobile UEs, half of which follow
a random walk (speed v, heading perturbed by a Gaussian each slot) and half group mobility (reference
point group model: group centres random-walk, members keep a fixed offset). Positions reflect at the
area edges.

Channel. Path loss of TR 36.814: MBS 128.1 + 37.6 log10(d_km), SBS 140.7 + 36.7 log10(d_km) (dB), with
log-normal shadowing (8 dB MBS, 10 dB SBS) drawn per UE-BS pair and episode, and Rayleigh fading that
evolves by a first-order Gauss-Markov step with rho = J0(2 pi f_d TS), f_d = v f_c / c.

Spectrum and power. The bandwidth W is split into M sub-channels grouped in blocks of
``subchannels_per_block``; M_b = M / block size blocks of bandwidth W_b = W / M_b. Every BS reuses every
block. BS j has total power P_j spread evenly over blocks, P_{j,blk} = P_j / M_b.

Actions per UE n (:class:`HetNetAction`): association a_n in 0..K (discrete), block c_n in 0..M_b-1
(discrete), power split s_n in [0, 1] (continuous). UE n's transmit power is p_n = s_n P_{a_n,blk}.

* OMA (default): UEs of one BS on one block share it in time, each for 1/count of the slot.
  The interference a BS causes on a block is its time-averaged power sum(p)/count.
* NOMA with SIC (``noma=True``): UEs of one BS on one block are superposed for the whole slot (their
  splits are scaled down together if they exceed 1). UE n decodes and cancels the signals of the
  UEs with weaker channels to the same BS and sees the stronger ones as interference:
  SINR_n = p_n g_n / (g_n sum_{m: g_m > g_n} p_m + I_n + N).

SINR_n = p_n g_{n,a_n} / (I_n + N) with I_n = sum_{i != a_n} g_{n,i} Pbar_{i,c_n} the co-channel power of
the other BSs on block c_n. Capacity C_n = (W_b / count) log2(1 + SINR_n) (count = 1 under NOMA).

Traffic. ``traffic="bitstream"`` (continuous, full buffer): throughput = capacity. ``"bursty"``: Poisson
packet arrivals fill a per-UE buffer; throughput = min(capacity, buffer / TS).

Metrics (``info``): sum throughput (Mbit/s), energy efficiency EE = sum throughput / consumed power
(Mbit/J) with the EARTH power model P_cons,j = P0_j + Delta_p_j P_out,j (P_out,j the BS's mean radiated
power, P0 and Delta_p per BS class), QoS non-compliance rate (share of UEs below their minimum rate),
Jain index J = (sum x)^2 / (N sum x^2), handovers (UEs whose association changed) and handover rate,
spectral efficiency (bit/s/Hz), resource utilisation (share of (BS, block) pairs in use).

Reward (eq. 10 as implemented): r = sum_n x_n / X_ref - lambda_J (1 - J) - lambda_H H / N with x_n the
throughput, X_ref ``throughput_scale_mbps`` and H the number of handovers. The continuous (power)
layer's reward adds the energy-efficiency and interference terms:
r_c = r + lambda_EE EE / EE_ref - lambda_I mean_n log10(1 + I_n / N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from . import runtime
from .channel import SPEED_OF_LIGHT, gauss_markov_step, jakes_correlation

__all__ = ["HetNetAction", "HetNetConfig", "HetNetState", "HetNetStep", "HetNetwork", "hetnet_rates", "jain_index"]


@dataclass(frozen=True)
class HetNetConfig:
    """Parameters of the HetNet mode (defaults inside the ranges of the user-association method)."""

    num_small_cells: int = 4
    """K: small BSs (3-15); BS 0 is the macro BS, so there are K + 1 BSs."""
    num_ues: int = 40
    """N: UEs (20-200)."""
    num_subchannels: int = 20
    """M: sub-channels (10-50)."""
    subchannels_per_block: int = 1
    """Sub-channels per block; the block is the unit a UE's discrete action picks. Must divide M."""
    bandwidth_hz: float = 20e6
    """Total system bandwidth W (10-20 MHz)."""
    area_side_m: float = 1000.0
    """Side of the square area; the MBS sits at its centre (m)."""
    sbs_min_distance_m: float = 100.0
    """Smallest MBS-SBS distance when dropping SBSs (m)."""
    mbs_power_dbm: float = 46.0
    """Total transmit power of the MBS (dBm)."""
    sbs_power_dbm: float = 30.0
    """Total transmit power of each SBS (dBm)."""
    mbs_min_distance_m: float = 35.0
    """Distances below this are evaluated at it for the MBS path loss (m)."""
    sbs_min_distance_ue_m: float = 10.0
    """Distances below this are evaluated at it for the SBS path loss (m)."""
    mbs_shadowing_db: float = 8.0
    """Log-normal shadowing standard deviation of MBS links (dB)."""
    sbs_shadowing_db: float = 10.0
    """Log-normal shadowing standard deviation of SBS links (dB)."""
    carrier_frequency_hz: float = 2.0e9
    """Carrier frequency (Hz), for the Doppler shift."""
    noise_psd_dbm_hz: float = -174.0
    """Thermal noise PSD (dBm/Hz)."""
    noise_figure_db: float = 9.0
    """UE noise figure (dB)."""
    slot_duration_s: float = 0.01
    """TS: duration of one step (s)."""
    slots_per_episode: int = 200
    """Steps per episode; ``info['truncated']`` turns true at the last one."""
    sensor_fraction: float = 0.5
    """Share of UEs that are static sensors; the rest are mobile UEs."""
    group_fraction: float = 0.5
    """Share of mobile UEs that move in groups (the rest random-walk)."""
    num_groups: int = 3
    """Mobility groups."""
    group_radius_m: float = 50.0
    """Largest offset of a group member from its group centre (m)."""
    ue_speed_mps: float = 1.5
    """Speed of mobile UEs and group centres (m/s)."""
    heading_std_rad: float = 0.3
    """Standard deviation of the per-slot heading change of the random walk (rad)."""
    fading: bool = True
    """Rayleigh fading with Gauss-Markov evolution (rho from the mobile speed's Doppler)."""
    min_rate_sensor_mbps: float = 0.2
    """Minimum rate (QoS) of a sensor (Mbit/s)."""
    min_rate_mobile_mbps: float = 2.0
    """Minimum rate (QoS) of a mobile UE (Mbit/s)."""
    traffic: str = "bitstream"
    """``"bitstream"`` (continuous, full buffer) or ``"bursty"`` (Poisson packet arrivals)."""
    bursty_load: float = 1.5
    """Mean offered load of a bursty UE as a multiple of its minimum rate."""
    bursty_packet_bits: int = 12000
    """Packet size of bursty traffic (bit)."""
    noma: bool = False
    """Superpose the UEs of one BS on one block (NOMA with SIC) instead of time-sharing it."""
    mbs_static_power_w: float = 130.0
    """EARTH model P0 of the MBS (W)."""
    mbs_power_slope: float = 4.7
    """EARTH model Delta_p of the MBS."""
    sbs_static_power_w: float = 6.8
    """EARTH model P0 of an SBS (W)."""
    sbs_power_slope: float = 4.0
    """EARTH model Delta_p of an SBS."""
    throughput_scale_mbps: float = 100.0
    """X_ref: throughput normalisation of the reward (Mbit/s)."""
    fairness_weight: float = 1.0
    """lambda_J: weight of the Jain-fairness penalty."""
    handover_weight: float = 0.5
    """lambda_H: weight of the handover penalty (per handover per UE)."""
    energy_efficiency_weight: float = 0.1
    """lambda_EE: weight of the energy-efficiency term of the continuous layer's reward."""
    energy_efficiency_scale: float = 0.1
    """EE_ref: energy-efficiency normalisation (Mbit/J)."""
    interference_weight: float = 0.01
    """lambda_I: weight of the interference term of the continuous layer's reward."""

    def __post_init__(self) -> None:
        if not 1 <= self.num_small_cells:
            raise ValueError(f"num_small_cells must be >= 1, got {self.num_small_cells}")
        if self.num_subchannels % self.subchannels_per_block:
            raise ValueError("subchannels_per_block must divide num_subchannels")
        if self.traffic not in ("bitstream", "bursty"):
            raise ValueError(f"traffic must be 'bitstream' or 'bursty', got {self.traffic!r}")

    @property
    def num_bs(self) -> int:
        """K + 1 BSs (index 0 is the MBS)."""
        return self.num_small_cells + 1

    @property
    def num_blocks(self) -> int:
        """M_b: blocks of sub-channels (the discrete channel action's size)."""
        return self.num_subchannels // self.subchannels_per_block

    @property
    def block_bandwidth_hz(self) -> float:
        """W_b: bandwidth of one block (Hz)."""
        return self.bandwidth_hz / self.num_blocks

    @property
    def noise_power_w(self) -> float:
        """Noise power in one block (W)."""
        dbm = self.noise_psd_dbm_hz + 10 * math.log10(self.block_bandwidth_hz) + self.noise_figure_db
        return 10 ** ((dbm - 30) / 10)

    @property
    def observation_size(self) -> int:
        """Per-UE observation length: 2 (K + 1) + 3."""
        return 2 * self.num_bs + 3

    def with_updates(self, **changes) -> "HetNetConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


class HetNetAction(NamedTuple):
    """Decisions of every UE for one slot."""

    association: torch.Tensor
    """[B, N] int64, serving BS (0 = MBS, 1..K = SBS)."""
    block: torch.Tensor
    """[B, N] int64, sub-channel block (0..M_b-1)."""
    power_split: torch.Tensor
    """[B, N] float in [0, 1], share of the BS's per-block power given to the UE."""


class HetNetState(NamedTuple):
    """What a centralised controller knows about the coming slot."""

    gain: torch.Tensor
    """[B, N, K+1] float, channel power gain from every BS to every UE (linear)."""
    block_power_w: torch.Tensor
    """[K+1] float, per-block power budget P_{j,blk} of each BS (W)."""
    noise_w: float
    """Noise power per block (W)."""
    config: HetNetConfig


class HetNetStep(NamedTuple):
    """What ``HetNetwork.step`` returns."""

    observation: torch.Tensor
    """[B, N, 2(K+1)+3] float, next per-UE observations."""
    reward: torch.Tensor
    """[B] float, discrete layer's reward (eq. 10)."""
    throughput: torch.Tensor
    """[B, N] float, per-UE throughput (Mbit/s)."""
    info: dict[str, torch.Tensor]
    """Metrics, [B] unless noted; see the module docstring."""


def jain_index(x: torch.Tensor) -> torch.Tensor:
    """Jain fairness index along the last dimension, (sum x)^2 / (n sum x^2); 1 when every x is 0.

    Args:
        x: [..., n] float, non-negative.

    Returns:
        [...] float in [1/n, 1].
    """
    n = x.shape[-1]
    total = x.sum(-1)
    square = x.square().sum(-1)
    return torch.where(square > 0, total.square() / (n * square.clamp(min=1e-300)), torch.ones_like(total))


def hetnet_rates(gain: torch.Tensor, association: torch.Tensor, block: torch.Tensor, power_w: torch.Tensor,
                 num_bs: int, num_blocks: int, block_bandwidth_hz: float, noise_w: float,
                 noma: bool = False) -> dict[str, torch.Tensor]:
    """Capacity of every UE for given association, blocks and transmit powers (see the module docstring).

    Args:
        gain: [B, N, J] float, channel power gains (J = K + 1 BSs).
        association: [B, N] int64.
        block: [B, N] int64.
        power_w: [B, N] float, transmit power for each UE (W); under NOMA already scaled to the budget.
        num_bs: J.
        num_blocks: M_b.
        block_bandwidth_hz: W_b (Hz).
        noise_w: noise per block (W).
        noma: superposition with SIC instead of time sharing.

    Returns:
        dict of ``capacity_mbps`` [B, N], ``sinr`` [B, N], ``interference_w`` [B, N] (other BSs),
        ``share`` [B, N] (time share), ``bs_block_power_w`` [B, J, M_b] (time-averaged radiated power),
        ``bs_block_users`` [B, J, M_b] (UEs per BS and block).
    """
    batch, num_ues, _ = gain.shape
    cell = association * num_blocks + block                                               # [B, N]
    users = torch.zeros(batch, num_bs * num_blocks, dtype=gain.dtype, device=gain.device)
    users.scatter_add_(1, cell, torch.ones_like(power_w))
    summed = torch.zeros_like(users).scatter_add_(1, cell, power_w)
    count = torch.gather(users, 1, cell)                                                   # [B, N] >= 1
    radiated = summed if noma else summed / users.clamp(min=1.0)                         # time-averaged
    radiated = radiated.view(batch, num_bs, num_blocks)
    on_block = torch.gather(radiated.transpose(1, 2), 1,
                            block.unsqueeze(-1).expand(batch, num_ues, num_bs))          # [B, N, J]
    own_gain = torch.gather(gain, 2, association.unsqueeze(-1)).squeeze(-1)
    own_radiated = torch.gather(on_block, 2, association.unsqueeze(-1)).squeeze(-1)
    interference = (gain * on_block).sum(-1) - own_gain * own_radiated
    interference = interference.clamp(min=0.0)
    signal = power_w * own_gain
    if noma:
        same = (cell.unsqueeze(2) == cell.unsqueeze(1))                                    # [B, n, m]
        stronger = (own_gain.unsqueeze(1) > own_gain.unsqueeze(2)) | (
            (own_gain.unsqueeze(1) == own_gain.unsqueeze(2))
            & (torch.arange(num_ues, device=gain.device).view(1, 1, -1)
               < torch.arange(num_ues, device=gain.device).view(1, -1, 1)))
        intra = ((same & stronger).to(gain.dtype) * power_w.unsqueeze(1)).sum(-1) * own_gain
        sinr = signal / (intra + interference + noise_w)
        share = torch.ones_like(signal)
    else:
        sinr = signal / (interference + noise_w)
        share = 1.0 / count
    capacity = share * block_bandwidth_hz * torch.log2(1.0 + sinr) / 1e6
    return {"capacity_mbps": capacity, "sinr": sinr, "interference_w": interference, "share": share,
            "bs_block_power_w": radiated, "bs_block_users": users.view(batch, num_bs, num_blocks)}


class HetNetwork:
    """Batched HetNet environment (B networks, N UEs, K + 1 BSs, M_b blocks).

    Args:
        config: parameters.
        batch_size: B.
        device, dtype: default :mod:`twin.runtime`'s.

    ``reset(seed) -> observation`` [B, N, F] and ``step(HetNetAction) -> HetNetStep``. Observation of UE n
    (F = 2(K+1) + 3): per-block SNR from every BS at full split, 10 log10(P_{j,blk} g_{n,j} / N) / 10
    (K+1 numbers); one-hot of its current association (K+1); last throughput over its minimum rate
    (clipped to 10); 1 if mobile; buffered bits over one slot of its minimum rate (0 under bitstream).
    """

    def __init__(self, config: HetNetConfig | None = None, batch_size: int = 1,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        self.config = config or HetNetConfig()
        self.batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else runtime.device()
        self.dtype = dtype or runtime.dtype()
        cfg = self.config
        doppler = cfg.ue_speed_mps * cfg.carrier_frequency_hz / SPEED_OF_LIGHT
        self.fading_rho = jakes_correlation(doppler, cfg.slot_duration_s)
        budgets_dbm = [cfg.mbs_power_dbm] + [cfg.sbs_power_dbm] * cfg.num_small_cells
        self.bs_power_w = torch.tensor([10 ** ((p - 30) / 10) for p in budgets_dbm], dtype=self.dtype,
                                       device=self.device)
        self.block_power_w = self.bs_power_w / cfg.num_blocks
        self._generator: torch.Generator | None = None
        self._ready = False

    @property
    def num_ues(self) -> int:
        """N."""
        return self.config.num_ues

    def network_state(self) -> HetNetState:
        """The coming slot's channel and budgets."""
        self._require_reset()
        return HetNetState(gain=self.gain, block_power_w=self.block_power_w, noise_w=self.config.noise_power_w,
                           config=self.config)

    @property
    def gain(self) -> torch.Tensor:
        """[B, N, K+1] float, channel power gains of the coming slot."""
        large = self._large_scale_gain()
        return large * self.fading.abs().square() if self.config.fading else large

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start an episode; returns [B, N, F] observations."""
        cfg = self.config
        if seed is not None or self._generator is None:
            self._generator = runtime.make_generator(seed, self.device)
        gen = self._generator
        b, n, j = self.batch_size, cfg.num_ues, cfg.num_bs
        kw = dict(dtype=self.dtype, device=self.device, generator=gen)
        side = cfg.area_side_m
        centre = torch.full((b, 1, 2), side / 2, dtype=self.dtype, device=self.device)
        # SBS drop: rejection-free, radius uniform by area between the minimum distance and the area.
        radius = torch.sqrt(torch.rand(b, cfg.num_small_cells, **kw) * ((side / 2) ** 2 - cfg.sbs_min_distance_m ** 2)
                            + cfg.sbs_min_distance_m ** 2)
        angle = 2 * math.pi * torch.rand(b, cfg.num_small_cells, **kw)
        sbs = centre + torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
        self.bs_xy = torch.cat([centre, sbs.clamp(0.0, side)], dim=1)                     # [B, J, 2]

        index = torch.arange(n, device=self.device)
        num_sensors = int(round(cfg.sensor_fraction * n))
        num_group = int(round(cfg.group_fraction * (n - num_sensors)))
        self.is_mobile = (index >= num_sensors).expand(b, n)
        self.in_group = ((index >= num_sensors) & (index < num_sensors + num_group)).expand(b, n)
        self.group_of = (index % max(cfg.num_groups, 1)).expand(b, n)
        self.ue_xy = torch.rand(b, n, 2, **kw) * side
        self.heading = 2 * math.pi * torch.rand(b, n, **kw)
        self.group_xy = torch.rand(b, max(cfg.num_groups, 1), 2, **kw) * side
        self.group_heading = 2 * math.pi * torch.rand(b, max(cfg.num_groups, 1), **kw)
        off_r = cfg.group_radius_m * torch.sqrt(torch.rand(b, n, **kw))
        off_a = 2 * math.pi * torch.rand(b, n, **kw)
        self.group_offset = torch.stack([off_r * torch.cos(off_a), off_r * torch.sin(off_a)], -1)
        self._place_groups()

        sigma = torch.tensor([cfg.mbs_shadowing_db] + [cfg.sbs_shadowing_db] * cfg.num_small_cells,
                             dtype=self.dtype, device=self.device)
        self.shadowing_db = sigma * torch.randn(b, n, j, **kw)
        complex_dtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        self.fading = torch.randn(b, n, j, dtype=complex_dtype, device=self.device, generator=gen)
        self.min_rate = torch.where(self.is_mobile, cfg.min_rate_mobile_mbps, cfg.min_rate_sensor_mbps).to(self.dtype)
        # Initial attach: strongest received power per block.
        self.association = (self.block_power_w * self.gain).argmax(-1)
        self.buffer_bits = torch.zeros(b, n, dtype=self.dtype, device=self.device)
        self.last_throughput = torch.zeros(b, n, dtype=self.dtype, device=self.device)
        self.slot = 0
        self._ready = True
        return self.observe()

    def step(self, action: HetNetAction) -> HetNetStep:
        """Play one slot with the UEs' association, block and power-split decisions."""
        self._require_reset()
        cfg = self.config
        association = action.association.to(self.device).long()
        block = action.block.to(self.device).long()
        split = action.power_split.to(device=self.device, dtype=self.dtype).clamp(0.0, 1.0)
        if association.numel() and (int(association.min()) < 0 or int(association.max()) >= cfg.num_bs):
            raise ValueError(f"association must lie in [0, {cfg.num_bs})")
        if block.numel() and (int(block.min()) < 0 or int(block.max()) >= cfg.num_blocks):
            raise ValueError(f"block must lie in [0, {cfg.num_blocks})")
        b = self.batch_size
        gain = self.gain
        if cfg.noma:
            # Splits of the UEs superposed on one (BS, block) may not exceed the block budget together.
            cell = association * cfg.num_blocks + block
            total = torch.zeros(b, cfg.num_bs * cfg.num_blocks, dtype=self.dtype, device=self.device)
            total.scatter_add_(1, cell, split)
            split = split / torch.gather(total, 1, cell).clamp(min=1.0)
        power_w = split * self.block_power_w[association]
        out = hetnet_rates(gain, association, block, power_w, cfg.num_bs, cfg.num_blocks,
                           cfg.block_bandwidth_hz, cfg.noise_power_w, cfg.noma)
        capacity = out["capacity_mbps"]
        if cfg.traffic == "bursty":
            mean_packets = cfg.bursty_load * self.min_rate * 1e6 * cfg.slot_duration_s / cfg.bursty_packet_bits
            arrivals = torch.poisson(mean_packets, generator=self._generator) * cfg.bursty_packet_bits
            self.buffer_bits = self.buffer_bits + arrivals
            sent_bits = torch.minimum(capacity * 1e6 * cfg.slot_duration_s, self.buffer_bits)
            self.buffer_bits = self.buffer_bits - sent_bits
            throughput = sent_bits / cfg.slot_duration_s / 1e6
        else:
            throughput = capacity

        handovers = (association != self.association).sum(-1).to(self.dtype)
        self.association = association
        reward, info = self.score(throughput, handovers, out)
        self.last_throughput = throughput
        self._move()
        if cfg.fading:
            self.fading = gauss_markov_step(self.fading, self.fading_rho, self._generator)
        self.slot += 1
        info["capacity_mbps"] = capacity
        info["truncated"] = torch.full((b,), self.slot >= cfg.slots_per_episode, dtype=torch.bool, device=self.device)
        return HetNetStep(self.observe(), reward, throughput, info)

    def score(self, throughput: torch.Tensor, handovers: torch.Tensor,
              rates: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The slot's rewards and metrics for per-UE throughputs delivered under the decisions ``rates`` describes.

        Args:
            throughput: [B, N] float, per-UE throughput (Mbit/s): the twin's own, or one measured over the air.
            handovers: [B] float, UEs whose association changed in this slot.
            rates: what :func:`hetnet_rates` returned for the slot's decisions (radiated powers, users per block,
                interference).

        Returns:
            ([B] eq. 10 reward, ``info`` dict of [B] metrics and ``sinr``/``interference_w`` [B, N]; see the module
            docstring).
        """
        cfg = self.config
        total = throughput.sum(-1)
        radiated = rates["bs_block_power_w"].sum(-1)                                      # [B, J]
        static = torch.tensor([cfg.mbs_static_power_w] + [cfg.sbs_static_power_w] * cfg.num_small_cells,
                              dtype=self.dtype, device=self.device)
        slope = torch.tensor([cfg.mbs_power_slope] + [cfg.sbs_power_slope] * cfg.num_small_cells,
                             dtype=self.dtype, device=self.device)
        consumed = (static + slope * radiated).sum(-1)
        energy_efficiency = total / consumed
        jain = jain_index(throughput)
        n = cfg.num_ues
        non_compliance = (throughput < self.min_rate).to(self.dtype).mean(-1)
        utilisation = (rates["bs_block_users"] > 0).to(self.dtype).mean((-1, -2))
        reward = (total / cfg.throughput_scale_mbps - cfg.fairness_weight * (1 - jain)
                  - cfg.handover_weight * handovers / n)
        interference_rise = torch.log10(1 + rates["interference_w"] / cfg.noise_power_w).mean(-1)
        reward_continuous = (reward + cfg.energy_efficiency_weight * energy_efficiency / cfg.energy_efficiency_scale
                             - cfg.interference_weight * interference_rise)
        info = {
            "sum_throughput_mbps": total,
            "energy_efficiency_mbit_per_j": energy_efficiency,
            "consumed_power_w": consumed,
            "qos_non_compliance": non_compliance,
            "jain_index": jain,
            "handovers": handovers,
            "handover_rate": handovers / n,
            "spectral_efficiency": total * 1e6 / cfg.bandwidth_hz,
            "resource_utilisation": utilisation,
            "reward_continuous": reward_continuous,
            "sinr": rates["sinr"],
            "interference_w": rates["interference_w"],
        }
        return reward, info

    def observe(self) -> torch.Tensor:
        """[B, N, 2(K+1)+3] float observations (see the class docstring)."""
        self._require_reset()
        cfg = self.config
        snr_db = 10 * torch.log10(self.block_power_w * self.gain / cfg.noise_power_w)
        one_hot = torch.nn.functional.one_hot(self.association, cfg.num_bs).to(self.dtype)
        rate_ratio = (self.last_throughput / self.min_rate).clamp(max=10.0)
        per_slot = self.min_rate * 1e6 * cfg.slot_duration_s
        return torch.cat([snr_db / 10, one_hot, rate_ratio.unsqueeze(-1), self.is_mobile.to(self.dtype).unsqueeze(-1),
                          (self.buffer_bits / per_slot).unsqueeze(-1)], dim=-1)

    _STATE_FIELDS = ("bs_xy", "is_mobile", "in_group", "group_of", "ue_xy", "heading", "group_xy", "group_heading",
                     "group_offset", "shadowing_db", "fading", "min_rate", "association", "buffer_bits",
                     "last_throughput")

    def state_dict(self) -> dict:
        """Everything needed to resume the episode bit-identically: state tensors, slot and generator state."""
        self._require_reset()
        state = {name: getattr(self, name).clone() for name in self._STATE_FIELDS}
        state["slot"] = self.slot
        state["generator"] = self._generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (same config, batch size and device)."""
        for name in self._STATE_FIELDS:
            setattr(self, name, state[name].to(self.device).clone())
        self.slot = int(state["slot"])
        if self._generator is None:
            self._generator = runtime.make_generator(0, self.device)
        self._generator.set_state(state["generator"])
        self._ready = True

    # --- internals ------------------------------------------------------------------------------
    def _require_reset(self) -> None:
        if not self._ready:
            raise RuntimeError("call reset() before using the network")

    def _large_scale_gain(self) -> torch.Tensor:
        cfg = self.config
        distance = torch.linalg.vector_norm(self.ue_xy.unsqueeze(2) - self.bs_xy.unsqueeze(1), dim=-1)
        d_mbs = distance[..., :1].clamp(min=cfg.mbs_min_distance_m) / 1e3
        d_sbs = distance[..., 1:].clamp(min=cfg.sbs_min_distance_ue_m) / 1e3
        loss = torch.cat([128.1 + 37.6 * torch.log10(d_mbs), 140.7 + 36.7 * torch.log10(d_sbs)], dim=-1)
        return 10 ** (-(loss + self.shadowing_db) / 10)

    def _place_groups(self) -> None:
        members = torch.gather(self.group_xy, 1, self.group_of.unsqueeze(-1).expand(-1, -1, 2)) + self.group_offset
        self.ue_xy = torch.where(self.in_group.unsqueeze(-1), self._reflect(members), self.ue_xy)

    def _reflect(self, xy: torch.Tensor) -> torch.Tensor:
        side = self.config.area_side_m
        xy = torch.remainder(xy, 2 * side)
        return torch.where(xy > side, 2 * side - xy, xy)

    def _move(self) -> None:
        cfg = self.config
        step = cfg.ue_speed_mps * cfg.slot_duration_s
        gen = self._generator
        self.heading = self.heading + cfg.heading_std_rad * torch.randn(self.heading.shape, dtype=self.dtype,
                                                                        device=self.device, generator=gen)
        walk = self.ue_xy + step * torch.stack([torch.cos(self.heading), torch.sin(self.heading)], -1)
        walker = self.is_mobile & ~self.in_group
        self.ue_xy = torch.where(walker.unsqueeze(-1), self._reflect(walk), self.ue_xy)
        self.group_heading = self.group_heading + cfg.heading_std_rad * torch.randn(
            self.group_heading.shape, dtype=self.dtype, device=self.device, generator=gen)
        self.group_xy = self._reflect(self.group_xy + step * torch.stack(
            [torch.cos(self.group_heading), torch.sin(self.group_heading)], -1))
        self._place_groups()
