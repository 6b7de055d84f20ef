"""Centralised oracle baselines for small networks: exhaustive search (ESA) and ESA with
fractional-programming power (ESA-FP). Both read the coming slot's global CSI (``env.network_state()``).

ESA maximises the slot's expected sum goodput exactly. The SINR of a link depends on every link's power
but not on anyone's modulation or code rate, and a link's goodput depends only on its own MCS and SINR;
so the joint optimum over the 48^L joint actions of the L scheduled links is found by enumerating the
4^R power assignments of the R RRBs and, for each, taking every link's best MCS. All candidates are
evaluated in one batched pass (in chunks to bound memory), never one at a time.

ESA-FP enumerates the 12^R joint (modulation, code rate) assignments of the RRBs. For each it computes
continuous powers in [P_min, P_max] with fractional programming (the quadratic transform of Shen & Yu,
2018) for the weighted sum rate sum_n w_n log2(1 + SINR_n), w_n = log2(M_n) c_n the spectral efficiency of
link n's MCS, then scores the combination by its expected goodput; the best combination wins.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from twin import CODE_RATES, MODULATION_ORDERS, NetworkState, encode_action
from twin.link import link_rate_mbps, packet_error_rate, sinr_coupling, slot_sinr
from twin.mcs import NUM_MCS, choose_mcs, mcs_menu

from ..policy import Policy

__all__ = [
    "ExhaustiveFPPolicy",
    "ExhaustiveSearchPolicy",
    "LinkDecision",
    "fractional_programming_power",
    "fractional_programming_power_reference",
]


class LinkDecision(NamedTuple):
    """A decision with continuous power: play it as ``env.step(action, power_dbm=power_dbm)``."""

    action: torch.Tensor
    """[B, N] int64 joint actions (power index = the power-set level nearest ``power_dbm`` in dB)."""
    power_dbm: torch.Tensor
    """[B, N] float transmit powers (dBm)."""


def _repeat_state(state: NetworkState, times: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (state.gain.repeat_interleave(times, 0), state.serving_ap.repeat_interleave(times, 0),
            state.rrb.repeat_interleave(times, 0))


class ExhaustiveSearchPolicy(Policy):
    """ESA: the slot-optimal joint power / modulation / code-rate choice (see the module docstring).

    Args:
        max_candidates: refuse networks with more than this many power assignments (L^R).
        chunk_elements: candidates are evaluated in chunks of about this many (candidate x link x MCS)
            values to bound memory.
    """

    name = "esa"
    needs_state = True

    def __init__(self, max_candidates: int = 4 ** 8, chunk_elements: int = 8_000_000) -> None:
        self.max_candidates = int(max_candidates)
        self.chunk_elements = int(chunk_elements)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"max_candidates": self.max_candidates, "chunk_elements": self.chunk_elements}

    def act(self, observation: torch.Tensor, state: NetworkState | None = None) -> torch.Tensor:
        """[B, N, 6] observations (unused) + the network state -> [B, N] int64 optimal joint actions."""
        return self.search(state)[0]

    def search(self, state: NetworkState | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimal joint actions [B, N] int64 and the optimal expected sum goodput [B] (Mbit/s)."""
        if state is None:
            raise ValueError("ESA is centralised: pass env.network_state() as state")
        cfg = state.config
        levels = torch.tensor(cfg.power_set_dbm, dtype=state.gain.dtype, device=state.gain.device)
        levels_w = 10.0 ** ((levels - 30.0) / 10.0)
        num_levels, num_rrbs = levels.numel(), cfg.num_rrbs
        num_candidates = num_levels ** num_rrbs
        if num_candidates > self.max_candidates:
            raise ValueError(f"ESA would enumerate {num_candidates} power assignments (> max_candidates="
                             f"{self.max_candidates}); use a smaller network")
        batch, num_links, _ = state.gain.shape
        device = state.gain.device
        active = state.rrb >= 0
        rrb_index = state.rrb.clamp(min=0)
        chunk = max(1, self.chunk_elements // max(1, batch * num_links * NUM_MCS))
        best_value = torch.full((batch,), -1.0, dtype=state.gain.dtype, device=device)
        best_power = torch.zeros(batch, num_links, dtype=torch.int64, device=device)
        best_mcs = torch.zeros(batch, num_links, dtype=torch.int64, device=device)
        for start in range(0, num_candidates, chunk):
            # Chunks of candidates bound memory; each chunk is one batched evaluation.
            ids = torch.arange(start, min(start + chunk, num_candidates), device=device)
            digits = (ids.unsqueeze(-1) // (num_levels ** torch.arange(num_rrbs, device=device))) % num_levels  # [C, R]
            count = ids.numel()
            power_index = torch.gather(digits.unsqueeze(0).expand(batch, -1, -1), 2,
                                       rrb_index.unsqueeze(1).expand(-1, count, -1))          # [B, C, N]
            power_w = levels_w[power_index].reshape(batch * count, num_links)
            gain, serving, rrb = _repeat_state(state, count)
            terms = slot_sinr(power_w, gain, serving, rrb, state.rrb_owner, cfg.kappa_t, cfg.kappa_r, cfg.acir1_db,
                              cfg.acir2_db, cfg.noise_power_w, cfg.phi_aci, cfg.phi_hwi,
                              cfg.interference == "colocated", cfg.max_snr_db)
            # Every link's best MCS at its SINR: [B*C, N] expected goodput (Mbit/s) and menu index.
            link_mod, link_rate, link_best = choose_mcs(terms.sinr, cfg, cfg.rrb_symbol_rate, rrb >= 0)
            link_mcs = link_mod * len(CODE_RATES) + link_rate
            total = link_best.sum(-1).view(batch, count)
            value, which = total.max(-1)
            better = value > best_value
            best_value = torch.where(better, value, best_value)
            pick = which.view(batch, 1, 1)
            chosen_power = torch.gather(power_index, 1, pick.expand(-1, 1, num_links)).squeeze(1)
            chosen_mcs = torch.gather(link_mcs.view(batch, count, num_links), 1, pick.expand(-1, 1, num_links)).squeeze(1)
            best_power = torch.where(better.unsqueeze(-1), chosen_power, best_power)
            best_mcs = torch.where(better.unsqueeze(-1), chosen_mcs, best_mcs)
        best_power = torch.where(active, best_power, torch.full_like(best_power, num_levels - 1))
        mod = torch.div(best_mcs, len(CODE_RATES), rounding_mode="floor")
        action = encode_action(best_power, mod, best_mcs - mod * len(CODE_RATES))
        return action, best_value


def fractional_programming_power(direct: torch.Tensor, coupling: torch.Tensor, noise_w: float, weight: torch.Tensor,
                                 p_min_w: float, p_max_w: float, iterations: int = 100) -> torch.Tensor:
    """Weighted sum-rate power control by fractional programming (quadratic transform), batched.

    Maximises sum_n w_n log(1 + SINR_n) with SINR_n = a_n p_n / (sum_m C_nm p_m + N) over
    p_n in [P_min, P_max]. Each iteration: gamma_n = SINR_n, y_n = sqrt(w_n (1 + gamma_n) a_n p_n) /
    (a_n p_n + I_n), p_m = clip(y_m^2 w_m (1 + gamma_m) a_m / (y_m^2 a_m + sum_n y_n^2 C_nm)^2, P_min, P_max).
    Links with a_n = 0 (idle) get power 0 and are ignored.

    Args:
        direct: [B, N] float, a_n (linear).
        coupling: [B, N, N] float, C_nm (linear).
        noise_w: N (W).
        weight: [B, N] float, w_n >= 0.
        p_min_w, p_max_w: power bounds (W).
        iterations: number of alternating updates (starting from P_max).

    Returns:
        [B, N] float, powers (W).
    """
    active = direct > 0
    power = torch.where(active, torch.full_like(direct, p_max_w), torch.zeros_like(direct))
    for _ in range(iterations):
        # Fixed iteration count: each pass is one batched update of every link in every environment.
        interference = torch.einsum("bnm,bm->bn", coupling, power) + noise_w
        signal = direct * power
        gamma = signal / interference
        y = torch.sqrt(weight * (1.0 + gamma) * signal) / (signal + interference)
        y2 = y * y
        denominator = y2 * direct + torch.einsum("bnm,bn->bm", coupling, y2)
        update = y2 * weight * (1.0 + gamma) * direct / denominator.square().clamp(min=1e-300)
        power = torch.where(active, update.clamp(p_min_w, p_max_w), torch.zeros_like(power))
    return power


def fractional_programming_power_reference(direct: np.ndarray, coupling: np.ndarray, noise_w: float,
                                           weight: np.ndarray, p_min_w: float, p_max_w: float,
                                           iterations: int = 100) -> np.ndarray:
    """Scalar (one network, explicit loops) version of :func:`fractional_programming_power`.

    Args:
        direct: [N] float; coupling: [N, N] float; weight: [N] float; others as the batched version.

    Returns:
        [N] float powers (W).
    """
    n_links = len(direct)
    power = [p_max_w if direct[n] > 0 else 0.0 for n in range(n_links)]
    for _ in range(iterations):
        gamma, y = [0.0] * n_links, [0.0] * n_links
        for n in range(n_links):
            if direct[n] <= 0:
                continue
            interference = noise_w + sum(coupling[n][m] * power[m] for m in range(n_links))
            signal = direct[n] * power[n]
            gamma[n] = signal / interference
            y[n] = math.sqrt(weight[n] * (1.0 + gamma[n]) * signal) / (signal + interference)
        new = [0.0] * n_links
        for m in range(n_links):
            if direct[m] <= 0:
                continue
            denominator = y[m] ** 2 * direct[m] + sum(y[n] ** 2 * coupling[n][m] for n in range(n_links))
            value = y[m] ** 2 * weight[m] * (1.0 + gamma[m]) * direct[m] / max(denominator ** 2, 1e-300)
            new[m] = min(max(value, p_min_w), p_max_w)
        power = new
    return np.array(power)


class ExhaustiveFPPolicy(Policy):
    """ESA-FP: exhaustive over every RRB's (modulation, code rate), FP power per combination.

    All combinations are solved at once, so memory grows as B x 12^R x N^2 values: meant for small
    networks (R <= 4).

    Args:
        max_candidates: refuse networks with more than this many MCS combinations (12^R).
        iterations: FP iterations per combination.
    """

    name = "esa-fp"
    needs_state = True

    def __init__(self, max_candidates: int = 12 ** 4, iterations: int = 60) -> None:
        self.max_candidates = int(max_candidates)
        self.iterations = int(iterations)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"max_candidates": self.max_candidates, "iterations": self.iterations}

    def act(self, observation: torch.Tensor, state: NetworkState | None = None) -> torch.Tensor:
        """[B, N] int64 joint actions with the power quantised to the nearest level (see :meth:`decide`)."""
        return self.decide(observation, state).action

    def decide(self, observation: torch.Tensor, state: NetworkState | None = None) -> LinkDecision:
        """Best MCS combination with its continuous FP powers, and the expected sum goodput it reaches."""
        return self.search(state)[0]

    def search(self, state: NetworkState | None) -> tuple[LinkDecision, torch.Tensor]:
        """(decision, expected sum goodput [B] Mbit/s) of the best combination."""
        if state is None:
            raise ValueError("ESA-FP is centralised: pass env.network_state() as state")
        cfg = state.config
        if cfg.interference != "geometric" or cfg.max_snr_db is not None:
            raise ValueError(f"ESA-FP's coupling matrix is eq. 14's; interference={cfg.interference!r}, max_snr_db="
                             f"{cfg.max_snr_db!r} are not supported (allowed: 'geometric', None); use ESA")
        num_rrbs = cfg.num_rrbs
        num_candidates = NUM_MCS ** num_rrbs
        if num_candidates > self.max_candidates:
            raise ValueError(f"ESA-FP would enumerate {num_candidates} MCS combinations (> max_candidates="
                             f"{self.max_candidates}); use a smaller network")
        batch, num_links, _ = state.gain.shape
        device, dtype = state.gain.device, state.gain.dtype
        active = state.rrb >= 0
        rrb_index = state.rrb.clamp(min=0)
        ids = torch.arange(num_candidates, device=device)
        digits = (ids.unsqueeze(-1) // (NUM_MCS ** torch.arange(num_rrbs, device=device))) % NUM_MCS   # [C, R]
        mcs = torch.gather(digits.unsqueeze(0).expand(batch, -1, -1), 2,
                           rrb_index.unsqueeze(1).expand(-1, num_candidates, -1)).reshape(-1, num_links)  # [B*C, N]
        mod_all, rate_all = mcs_menu(device)
        modulation, code_rate = mod_all[mcs], rate_all[mcs]
        order = torch.tensor(MODULATION_ORDERS, device=device)[modulation]
        efficiency = torch.log2(order.to(dtype)) * torch.tensor(CODE_RATES, dtype=dtype, device=device)[code_rate]

        gain, serving, rrb = _repeat_state(state, num_candidates)
        direct, coupling = sinr_coupling(gain, serving, rrb, state.rrb_owner, cfg.kappa_t, cfg.kappa_r,
                                         cfg.acir1_db, cfg.acir2_db, cfg.phi_aci, cfg.phi_hwi)
        p_min_w, p_max_w = 10.0 ** ((cfg.p_min_dbm - 30.0) / 10.0), 10.0 ** ((cfg.p_max_dbm - 30.0) / 10.0)
        power_w = fractional_programming_power(direct, coupling, cfg.noise_power_w, efficiency * (rrb >= 0),
                                               p_min_w, p_max_w, self.iterations)
        terms = slot_sinr(power_w, gain, serving, rrb, state.rrb_owner, cfg.kappa_t, cfg.kappa_r, cfg.acir1_db,
                          cfg.acir2_db, cfg.noise_power_w, cfg.phi_aci, cfg.phi_hwi)
        per = packet_error_rate(terms.sinr, order, code_rate, cfg.packet_bits, cfg.coding_gain_db, cfg.ser_model)
        goodput = link_rate_mbps(per, order, code_rate, cfg.rrb_symbol_rate, rrb >= 0)
        total = goodput.sum(-1).view(batch, num_candidates)
        value, which = total.max(-1)
        flat = torch.arange(batch, device=device) * num_candidates + which
        best_power_w = power_w[flat]
        best_mod, best_rate = modulation[flat], code_rate[flat]
        power_dbm = 10.0 * torch.log10(best_power_w.clamp(min=1e-30)) + 30.0
        power_dbm = torch.where(active, power_dbm, torch.full_like(power_dbm, cfg.p_max_dbm))
        levels = torch.tensor(cfg.power_set_dbm, dtype=dtype, device=device)
        level = (power_dbm.unsqueeze(-1) - levels).abs().argmin(-1)
        return LinkDecision(encode_action(level, best_mod, best_rate), power_dbm), value
