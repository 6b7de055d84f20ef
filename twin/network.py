"""The link-adaptation DTN environment, its analytic physical twin and the ``PhysicalNetwork`` contract.

Contract shared by :class:`LinkAdaptationNetwork` (the twin), :class:`AnalyticPhysical` and any
over-the-air runner (see :class:`PhysicalNetwork`):

* ``reset(seed) -> observation``: [B, N, 6] float, every link's local state (eq. 21).
* ``step(action) -> StepResult(observation, reward, rate, info)`` with ``action`` [B, N] int64 joint
  actions (see :mod:`twin.config`), ``observation`` [B, N, 6] the next states, ``reward`` [B] the shared
  reward = sum of the links' goodput in the slot (Mbit/s), ``rate`` [B, N] each link's goodput (Mbit/s).
* ``info`` holds [B, N] tensors ``sinr`` (linear), ``sinr_db``, ``per``, ``signal_w``, ``aci_w``,
  ``hwi_w``, ``noise_w`` (W), ``rrb`` (int64, -1 idle), ``scheduled`` (bool), ``next_scheduled`` (bool)
  and [B] bool ``truncated`` (the episode's last slot was played). Idle links report sinr 0,
  sinr_db -inf, per 1 and zero signal, ACI and HWI.

Unscheduled links. PF (Algorithm 1) decides which links transmit in a slot before the agents act; the
schedule of the coming slot is ``env.scheduled`` (and ``info['next_scheduled']``). A link that is not
scheduled transmits nothing, its action is ignored, its rate is 0, and its "last ..." state entries keep
the values of its most recent scheduled slot. ``info['scheduled']`` is the transition mask: a learner
stores (s, a, r, s') for link n of environment b only where it is true, so an idle link never yields a
fake transition.

Local state of link n (eq. 21), the six numbers in order (all unitless, roughly in [-3, 5]):

0. ``channel_quality``: SNR the link would get at P_max in the coming slot, 10 log10(P_max g / N) / 10.
1. ``last_sinr``: SINR of its last scheduled slot, dB / 10 (floored at -30 dB).
2. ``last_aci``: ACI rise over noise of that slot, 10 log10(1 + ACI / N) / 10.
3. ``last_hwi``: HWI distortion rise over noise, 10 log10(1 + HWI / N) / 10.
4. ``last_power``: its transmit power then, (P_dBm - P_min) / (P_max - P_min) in [0, 1].
5. ``last_rate``: its goodput then over the largest link rate (64QAM 5/6, no error), in [0, 1].
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch

from . import runtime
from .channel import (gauss_markov_step, jakes_correlation, umi_los_probability, umi_path_loss_db,
                      umi_shadow_fading_std_db)
from .config import DTNConfig, decode_action
from .geometry import ap_grid_positions, drop_devices, nearest_ap
from .link import (SinrTerms, gather_to_rrbs, link_rate_mbps, lookup, modulation_order_tensor, packet_error_rate,
                   rrb_occupant, scatter_to_links, slot_sinr_rrb)
from .scheduling import interleaved_rrb_owner, proportional_fair_schedule, update_average_throughput

__all__ = [
    "AnalyticPhysical",
    "LinkAdaptationNetwork",
    "NetworkState",
    "PhysicalNetwork",
    "SlotOutcome",
    "StepResult",
    "evaluate_slot",
]

_SINR_FLOOR_DB = -30.0


class StepResult(NamedTuple):
    """What ``step`` returns; unpacks as ``observation, reward, rate, info``."""

    observation: torch.Tensor
    """[B, N, 6] float, next local states."""
    reward: torch.Tensor
    """[B] float, shared reward: sum goodput of the slot (Mbit/s)."""
    rate: torch.Tensor
    """[B, N] float, goodput of each link (Mbit/s); 0 for idle links."""
    info: dict[str, torch.Tensor]
    """Per-link diagnostics, see the module docstring."""


class NetworkState(NamedTuple):
    """What a centralised controller knows about the coming slot (for oracle baselines such as ESA)."""

    gain: torch.Tensor
    """[B, N, K] float, channel power gain from every AP to every device in the coming slot (linear)."""
    serving_ap: torch.Tensor
    """[B, N] int64, serving AP (nearest-AP cluster)."""
    rrb: torch.Tensor
    """[B, N] int64, RRB scheduled for each link in the coming slot, -1 when idle."""
    rrb_owner: torch.Tensor
    """[R] int64, AP owning each RRB."""
    config: DTNConfig
    """Parameters of the network (kappa, ACIR, phi, power set, ...)."""


class SlotOutcome(NamedTuple):
    """Physics of one slot for given decisions."""

    terms: SinrTerms
    """SINR and its terms, [..., N]."""
    per: torch.Tensor
    """[..., N] float, packet error rate."""
    rate: torch.Tensor
    """[..., N] float, goodput (Mbit/s)."""


@runtime_checkable
class PhysicalNetwork(Protocol):
    """Anything a trainer can run episodes on: the twin, the analytic physical network, an OTA runner."""

    config: DTNConfig

    @property
    def batch_size(self) -> int: ...

    @property
    def num_links(self) -> int: ...

    @property
    def scheduled(self) -> torch.Tensor: ...

    def reset(self, seed: int | None = None) -> torch.Tensor: ...

    def step(self, action: torch.Tensor) -> StepResult: ...


def evaluate_slot(state: NetworkState, power_w: torch.Tensor, modulation_index: torch.Tensor,
                  code_rate_index: torch.Tensor) -> SlotOutcome:
    """SINR (eq. 14), PER (eq. 16-17) and goodput (eq. 15) of one slot for given decisions.

    The physics is evaluated per RRB (at most R links transmit), then scattered back to the links.

    Args:
        state: the slot's channel [B, N, K], clustering [B, N] and schedule [B, N] (to evaluate C candidate
            decisions at once, repeat the state C times along B).
        power_w: [B, N] float, transmit power (W).
        modulation_index: [B, N] int64 (0..3).
        code_rate_index: [B, N] int64 (0..2).

    Returns:
        :class:`SlotOutcome` with [B, N] tensors (0 for idle links).
    """
    cfg = state.config
    num_links = state.gain.shape[1]
    occupant = rrb_occupant(state.rrb, state.rrb_owner.numel())
    occupied = occupant < num_links
    terms = slot_sinr_rrb(gather_to_rrbs(power_w, occupant), gather_to_rrbs(state.gain, occupant), occupied,
                          state.rrb_owner, cfg.kappa_t, cfg.kappa_r, cfg.acir1_db, cfg.acir2_db, cfg.noise_power_w,
                          cfg.phi_aci, cfg.phi_hwi, cfg.interference == "colocated", cfg.max_snr_db)
    order = modulation_order_tensor(gather_to_rrbs(modulation_index, occupant))
    code_rate = gather_to_rrbs(code_rate_index, occupant)
    per = packet_error_rate(terms.sinr, order, code_rate, cfg.packet_bits, cfg.coding_gain_db, cfg.ser_model)
    rate = link_rate_mbps(per, order, code_rate, cfg.rrb_symbol_rate, occupied)
    stacked = torch.stack([terms.sinr, terms.signal_w, terms.aci_w, terms.hwi_w, per, rate], dim=-1)
    sinr, signal, aci, hwi, per, rate = scatter_to_links(stacked, occupant, num_links).unbind(-1)
    link_terms = SinrTerms(sinr=sinr, signal_w=signal, aci_w=aci, hwi_w=hwi, noise_w=torch.full_like(sinr, cfg.noise_power_w))
    return SlotOutcome(terms=link_terms, per=per, rate=rate)


class LinkAdaptationNetwork:
    """Batched DTN of the link-adaptation method: B independent networks of K APs and N links.

    Per episode (``reset``): APs on a grid, devices dropped in the coverage annuli, nearest-AP
    clustering, LoS state (TR 38.901 UMi P_LOS), UMi path loss and log-normal shadowing for every
    device-AP pair, CN(0, 1) fading. Per slot (``step``): the PF schedule computed at the end of the
    previous slot is played, every scheduled link transmits with its chosen power, modulation and code
    rate, SINR follows eq. 14, goodput eqs. 15-17, the PF averages are updated, the fading moves one
    Gauss-Markov step (rho = J0(2 pi f_d TS)) and the next slot is scheduled.

    Args:
        config: network parameters.
        batch_size: B, the number of independent networks stepped together.
        device: torch device (default :func:`twin.runtime.device`).
        dtype: real dtype (default :func:`twin.runtime.dtype`).
    """

    def __init__(self, config: DTNConfig | None = None, batch_size: int = 1,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        self.config = config or DTNConfig()
        self._batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else runtime.device()
        self.dtype = dtype or runtime.dtype()
        cfg = self.config
        self.ap_xy = ap_grid_positions(cfg.num_aps, cfg.ap_spacing_m, self.dtype, self.device)
        self.rrb_owner = interleaved_rrb_owner(cfg.num_rrbs, cfg.num_aps, self.device)
        self.fading_rho = jakes_correlation(cfg.doppler_hz, cfg.slot_duration_s) if cfg.fading else 1.0
        self._power_set_w_values = tuple(10.0 ** ((p - 30.0) / 10.0) for p in cfg.power_set_dbm)
        self.power_set_w = torch.tensor(self._power_set_w_values, dtype=self.dtype, device=self.device)
        self._generator: torch.Generator | None = None
        self._ready = False

    # --- properties -----------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """B."""
        return self._batch_size

    @property
    def num_links(self) -> int:
        """N."""
        return self.config.num_devices

    @property
    def num_actions(self) -> int:
        """Size of the joint action set (48 by default)."""
        return self.config.num_actions

    @property
    def observation_size(self) -> int:
        """Length of a link's local state (6)."""
        return self.config.observation_size

    @property
    def scheduled(self) -> torch.Tensor:
        """[B, N] bool: links PF scheduled for the coming slot (none before the first ``reset``)."""
        if not self._ready:
            return torch.zeros(self.batch_size, self.num_links, dtype=torch.bool, device=self.device)
        return self.rrb >= 0

    @property
    def gain(self) -> torch.Tensor:
        """[B, N, K] float: channel power gain of the coming slot (large-scale x |h|^2)."""
        self._require_reset()
        return self._gain

    def _refresh_gain(self) -> None:
        # Computed once per slot: the schedule, the SINR and the observation all read it.
        if self.config.fading:
            self._gain = self.large_scale_gain * (self.fading.real.square() + self.fading.imag.square())
        else:
            self._gain = self.large_scale_gain
        self._direct = torch.gather(self._gain, 2, self.cluster.unsqueeze(-1)).squeeze(-1)
        p_max_w = 10.0 ** ((self.config.p_max_dbm - 30.0) / 10.0)
        self._snr_pmax = p_max_w * self._direct / self.config.noise_power_w
        self._quality_db = 10.0 * torch.log10(self._snr_pmax)

    def network_state(self) -> NetworkState:
        """The coming slot's channel, clustering and schedule, as a centralised controller sees it."""
        self._require_reset()
        return NetworkState(gain=self.gain, serving_ap=self.cluster, rrb=self.rrb,
                            rrb_owner=self.rrb_owner, config=self.config)

    # --- episode --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new episode in every environment.

        Args:
            seed: seeds the environment's generator; ``None`` continues the current generator (or
                draws a fresh seed the first time).

        Returns:
            [B, N, 6] float, initial local states.
        """
        cfg = self.config
        if seed is not None or self._generator is None:
            self._generator = runtime.make_generator(seed, self.device)
        gen = self._generator
        shape = (self.batch_size, cfg.num_devices, cfg.num_aps)

        self.device_xy = drop_devices(self.batch_size, cfg.num_devices, self.ap_xy, cfg.coverage_radius_m,
                                      cfg.empty_radius_m, gen)
        self.cluster, self.distance_m = nearest_ap(self.device_xy, self.ap_xy)
        los_probability = umi_los_probability(self.distance_m)
        self.los = torch.rand(shape, dtype=self.dtype, device=self.device, generator=gen) < los_probability
        path_loss_db = umi_path_loss_db(self.distance_m, self.los, cfg.carrier_frequency_hz,
                                        cfg.bs_height_m, cfg.ut_height_m)
        if cfg.shadowing:
            sigma = umi_shadow_fading_std_db(self.los, self.dtype)
            path_loss_db = path_loss_db + sigma * torch.randn(shape, dtype=self.dtype, device=self.device,
                                                              generator=gen)
        self.large_scale_gain = 10.0 ** (-path_loss_db / 10.0)
        complex_dtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        self.fading = torch.randn(shape, dtype=complex_dtype, device=self.device, generator=gen)

        zeros = torch.zeros(self.batch_size, cfg.num_devices, dtype=self.dtype, device=self.device)
        self.average_throughput = zeros + cfg.pf_initial_throughput
        self.last_sinr_db = zeros.clone()
        self.last_aci_rise_db = zeros.clone()
        self.last_hwi_rise_db = zeros.clone()
        self.last_power_dbm = zeros + cfg.p_max_dbm
        self.last_rate_mbps = zeros.clone()
        self.slot = 0
        self._ready = True
        self._refresh_gain()
        # Until a link has transmitted, its "last SINR" is the SNR it would see at P_max.
        self.last_sinr_db = self._channel_quality_db().clamp(min=_SINR_FLOOR_DB)
        self.rrb = self._schedule()
        return self.observe()

    def step(self, action: torch.Tensor, power_dbm: torch.Tensor | None = None) -> StepResult:
        """Play one slot.

        Args:
            action: [B, N] int64 joint actions (power x modulation x code rate); ignored for idle links.
            power_dbm: optional [B, N] float transmit powers (dBm) overriding the power part of the
                action (for baselines with continuous power, e.g. ESA-FP).

        Returns:
            :class:`StepResult` (see the module docstring for the contract).
        """
        self._require_reset()
        cfg = self.config
        action = action.to(self.device)
        power_index, modulation_index, code_rate_index = decode_action(action, cfg.num_power_levels)
        if power_dbm is None:
            power_dbm_played = lookup(cfg.power_set_dbm, power_index, self.dtype)
            power_w = lookup(self._power_set_w_values, power_index, self.dtype)
        else:
            power_dbm_played = power_dbm.to(device=self.device, dtype=self.dtype)
            power_w = 10.0 ** ((power_dbm_played - 30.0) / 10.0)

        rrb = self.rrb
        active = rrb >= 0
        outcome = self._play_slot(power_w, modulation_index, code_rate_index)
        terms = outcome.terms
        rate = outcome.rate
        reward = rate.sum(dim=-1)

        # PF averages in bit per resource element so the metric's two factors share a unit.
        achieved = rate * 1e6 / cfg.rrb_symbol_rate
        self.average_throughput = update_average_throughput(self.average_throughput, achieved, cfg.pf_alpha)

        noise = cfg.noise_power_w
        sinr_db = 10.0 * torch.log10(terms.sinr.clamp(min=1e-30))
        self.last_sinr_db = torch.where(active, sinr_db.clamp(min=_SINR_FLOOR_DB), self.last_sinr_db)
        self.last_aci_rise_db = torch.where(active, 10.0 * torch.log10(1.0 + terms.aci_w / noise),
                                            self.last_aci_rise_db)
        self.last_hwi_rise_db = torch.where(active, 10.0 * torch.log10(1.0 + terms.hwi_w / noise),
                                            self.last_hwi_rise_db)
        self.last_power_dbm = torch.where(active, power_dbm_played, self.last_power_dbm)
        self.last_rate_mbps = torch.where(active, rate, self.last_rate_mbps)

        if cfg.fading:
            self.fading = gauss_markov_step(self.fading, self.fading_rho, self._generator)
        self._refresh_gain()
        self.slot += 1
        self.rrb = self._schedule()
        truncated = torch.full((self.batch_size,), self.slot >= cfg.slots_per_episode, dtype=torch.bool,
                               device=self.device)
        info = {
            "sinr": terms.sinr,
            "sinr_db": torch.where(active, sinr_db, torch.full_like(sinr_db, -math.inf)),
            "per": torch.where(active, outcome.per, torch.ones_like(outcome.per)),
            "signal_w": terms.signal_w,
            "aci_w": terms.aci_w,
            "hwi_w": terms.hwi_w,
            "noise_w": terms.noise_w,
            "rrb": rrb,
            "scheduled": active,
            "next_scheduled": self.rrb >= 0,
            "truncated": truncated,
        }
        return StepResult(self.observe(), reward, rate, info)

    def observe(self) -> torch.Tensor:
        """[B, N, 6] float local states (eq. 21) for the coming slot; see the module docstring."""
        self._require_reset()
        cfg = self.config
        power_span = max(cfg.p_max_dbm - cfg.p_min_dbm, 1e-9)
        return torch.stack([
            self._channel_quality_db() / 10.0,
            self.last_sinr_db / 10.0,
            self.last_aci_rise_db / 10.0,
            self.last_hwi_rise_db / 10.0,
            (self.last_power_dbm - cfg.p_min_dbm) / power_span,
            self.last_rate_mbps / cfg.max_link_rate_mbps,
        ], dim=-1)

    _STATE_FIELDS = ("device_xy", "cluster", "distance_m", "los", "large_scale_gain", "fading", "average_throughput",
                     "last_sinr_db", "last_aci_rise_db", "last_hwi_rise_db", "last_power_dbm", "last_rate_mbps", "rrb")

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
        self._refresh_gain()

    def synchronise_from(self, source: "LinkAdaptationNetwork", generator: torch.Generator | None = None) -> None:
        """Copy another network's context into this one (the twin's real-time synchronisation).

        Device positions, clustering, LoS states, fading state, PF averages and the coming schedule are
        copied; the large-scale gains are copied with a log-normal relative error of standard deviation
        ``config.sigma_rt`` (the twin's imperfect knowledge of the channel). Both networks must have
        the same B, N and K.
        """
        source._require_reset()
        if (source.batch_size, source.num_links, source.config.num_aps) != (
                self.batch_size, self.num_links, self.config.num_aps):
            raise ValueError("synchronise_from needs networks of the same batch size, N and K")
        if self._generator is None:
            self._generator = runtime.make_generator(None, self.device)
        gen = generator or self._generator
        self.device_xy = source.device_xy.clone()
        self.cluster = source.cluster.clone()
        self.distance_m = source.distance_m.clone()
        self.los = source.los.clone()
        error = self.config.sigma_rt * torch.randn(source.large_scale_gain.shape, dtype=self.dtype,
                                                   device=self.device, generator=gen)
        self.large_scale_gain = source.large_scale_gain.to(self.dtype) * torch.exp(error)
        self.fading = source.fading.clone()
        self.average_throughput = source.average_throughput.clone()
        for name in ("last_sinr_db", "last_aci_rise_db", "last_hwi_rise_db", "last_power_dbm", "last_rate_mbps"):
            setattr(self, name, getattr(source, name).clone())
        self.slot = source.slot
        self.rrb = source.rrb.clone()
        self._ready = True
        self._refresh_gain()

    # --- internals ------------------------------------------------------------------------------
    def _require_reset(self) -> None:
        if not self._ready:
            raise RuntimeError("call reset() before using the network")

    def _play_slot(self, power_w: torch.Tensor, modulation_index: torch.Tensor,
                   code_rate_index: torch.Tensor) -> SlotOutcome:
        """The physics of the coming slot for these decisions: the model here; an over-the-air runner measures it."""
        return evaluate_slot(self.network_state(), power_w, modulation_index, code_rate_index)

    def _channel_quality_db(self) -> torch.Tensor:
        return self._quality_db

    def _schedule(self) -> torch.Tensor:
        cfg = self.config
        # Instantaneous rate estimate: Shannon spectral efficiency at P_max with noise only (what a
        # CQI report without interference knowledge gives the AP).
        metric = torch.log2(1.0 + self._snr_pmax) / self.average_throughput.clamp(min=1e-9)
        return proportional_fair_schedule(metric, self.cluster, cfg.num_aps, cfg.rrbs_per_ap)


class AnalyticPhysical(LinkAdaptationNetwork):
    """The paper's physical network (eqs. 11-12): the twin's equations with ACI and HWI deviated by phi.

    ACI_phy = (1 + phi) ACI_model and HWI_phy = (1 + phi) HWI_model; everything else (geometry,
    channel, scheduling, link abstraction) is the twin's. Same ``reset``/``step`` interface, so it
    stands in for radios in experiments.

    Args:
        phi: hidden deviation (default ``config.phi`` = 0.4).
        config: base parameters; its phi_aci / phi_hwi are replaced by ``phi``.
        batch_size, device, dtype: as :class:`LinkAdaptationNetwork`.
    """

    def __init__(self, phi: float | None = None, config: DTNConfig | None = None, batch_size: int = 1,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        base = config or DTNConfig()
        phi = base.phi if phi is None else float(phi)
        super().__init__(base.with_updates(phi=phi, phi_aci=phi, phi_hwi=phi), batch_size, device, dtype)
        self.phi = phi

    def __repr__(self) -> str:
        return f"AnalyticPhysical(phi={self.phi}, batch_size={self.batch_size}, num_links={self.num_links})"
