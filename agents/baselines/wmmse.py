"""HetNet baseline: strongest-signal association, round-robin blocks and WMMSE power.

Association: every UE joins the BS whose per-block signal P_{j,blk} g_{n,j} is strongest. Blocks: the
UEs of a BS take blocks 0, 1, 2, ... in index order (wrapping after M_b, where they time-share).
Power: WMMSE for the single-antenna interference channel (Shi, Razaviyayn, Luo, He, 2011) on the links
that result. Link m disturbs link n when both use the same block from different BSs, with effective
gain G_nm = g_{n,a_m} / count_m (count_m UEs time-share m's (BS, block), so m radiates 1/count_m of the
slot); G_nn = g_{n,a_n}. Rate weights alpha_n are the time shares. Iteration, with v_n = sqrt(p_n):

    u_n = sqrt(G_nn) v_n / (sum_m G_nm v_m^2 + N)
    w_n = 1 / (1 - u_n sqrt(G_nn) v_n)
    v_n = clip(alpha_n w_n u_n sqrt(G_nn) / sum_m alpha_m w_m u_m^2 G_mn, 0, sqrt(P_{a_n,blk}))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from twin import HetNetAction
from twin.hetnet import HetNetState

from ..policy import Policy

__all__ = ["WMMSEPolicy", "round_robin_blocks", "strongest_signal_association", "wmmse_power",
           "wmmse_power_reference"]


def strongest_signal_association(gain: torch.Tensor, block_power_w: torch.Tensor) -> torch.Tensor:
    """[B, N, J] gains, [J] per-block powers (W) -> [B, N] int64 BS with the strongest received signal."""
    return (gain * block_power_w).argmax(-1)


def round_robin_blocks(association: torch.Tensor, num_bs: int, num_blocks: int) -> torch.Tensor:
    """[B, N] association -> [B, N] int64 blocks: each BS's UEs take blocks 0, 1, ... in index order, mod M_b."""
    one_hot = torch.nn.functional.one_hot(association, num_bs)
    rank = torch.gather(one_hot.cumsum(1), 2, association.unsqueeze(-1)).squeeze(-1) - 1
    return rank % num_blocks


def _effective_channel(gain: torch.Tensor, association: torch.Tensor, block: torch.Tensor, num_bs: int,
                       num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """G [B, N, N] (see the module docstring) and the time shares alpha [B, N]."""
    batch, num_ues, _ = gain.shape
    cell = association * num_blocks + block
    users = torch.zeros(batch, num_bs * num_blocks, dtype=gain.dtype, device=gain.device)
    users.scatter_add_(1, cell, torch.ones_like(gain[..., 0]))
    count = torch.gather(users, 1, cell)
    cross = torch.gather(gain, 2, association.unsqueeze(1).expand(batch, num_ues, num_ues))   # g_{n, a_m}
    interferes = (block.unsqueeze(2) == block.unsqueeze(1)) & (association.unsqueeze(2) != association.unsqueeze(1))
    effective = torch.where(interferes, cross / count.unsqueeze(1), torch.zeros_like(cross))
    direct = torch.gather(gain, 2, association.unsqueeze(-1)).squeeze(-1)
    effective = effective + torch.diag_embed(direct)
    return effective, 1.0 / count


def wmmse_power(channel: torch.Tensor, noise_w: float, p_max_w: torch.Tensor, weight: torch.Tensor,
                iterations: int = 100) -> torch.Tensor:
    """Batched single-antenna WMMSE power control (see the module docstring).

    Args:
        channel: [B, N, N] float, power gains G_nm (row n: receiver of link n, column m: transmitter of link m).
        noise_w: noise power N (W).
        p_max_w: [B, N] float, power limit of each link (W).
        weight: [B, N] float, rate weights alpha_n.
        iterations: number of updates (starting from full power).

    Returns:
        [B, N] float powers (W).
    """
    # Gains relative to the noise (SNR units) and w = 1 + SINR written from the interference: the textbook
    # 1 / (1 - u h v) loses every digit to cancellation at high SINR, and raw gains of 1e-12 with 1e-300 floors
    # underflow, which in float32 turned into NaN. The iteration is otherwise unchanged (u scales by sqrt(N)).
    snr_gain = channel / noise_w
    cross = snr_gain * (1.0 - torch.eye(channel.shape[-1], dtype=channel.dtype, device=channel.device))
    direct = torch.sqrt(torch.diagonal(snr_gain, dim1=-2, dim2=-1))
    tiny = torch.finfo(channel.dtype).tiny
    v = torch.sqrt(p_max_w)
    for _ in range(iterations):
        # Fixed iteration count; each pass updates every link of every network at once.
        interference = torch.einsum("bnm,bm->bn", cross, v * v) + 1.0
        received = interference + (direct * v) ** 2
        u = direct * v / received
        w = received / interference
        numerator = weight * w * u * direct
        denominator = torch.einsum("bnm,bn->bm", snr_gain, weight * w * u * u)
        v = torch.minimum((numerator / denominator.clamp(min=tiny)).clamp(min=0.0), torch.sqrt(p_max_w))
    return v * v


def wmmse_power_reference(channel: np.ndarray, noise_w: float, p_max_w: np.ndarray, weight: np.ndarray,
                          iterations: int = 100) -> np.ndarray:
    """Scalar (one network, explicit loops) WMMSE, the reference for :func:`wmmse_power`.

    Args:
        channel: [N, N]; p_max_w: [N]; weight: [N]; as the batched version.

    Returns:
        [N] powers (W).
    """
    n_links = len(p_max_w)
    h = [[float(np.sqrt(channel[n][m])) for m in range(n_links)] for n in range(n_links)]
    v = [float(np.sqrt(p)) for p in p_max_w]
    for _ in range(iterations):
        u, w = [0.0] * n_links, [0.0] * n_links
        for n in range(n_links):
            received = sum(h[n][m] ** 2 * v[m] ** 2 for m in range(n_links)) + noise_w
            u[n] = h[n][n] * v[n] / received
            w[n] = 1.0 / (1.0 - u[n] * h[n][n] * v[n])
        for m in range(n_links):
            denominator = sum(weight[n] * w[n] * u[n] ** 2 * h[n][m] ** 2 for n in range(n_links))
            value = weight[m] * w[m] * u[m] * h[m][m] / max(denominator, 1e-300)
            v[m] = min(max(value, 0.0), float(np.sqrt(p_max_w[m])))
    return np.array(v) ** 2


class WMMSEPolicy(Policy):
    """Strongest-signal association + round-robin blocks + WMMSE power split (HetNet).

    Args:
        iterations: WMMSE iterations.
    """

    name = "wmmse-ssa"
    needs_state = True

    def __init__(self, iterations: int = 100) -> None:
        self.iterations = int(iterations)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"iterations": self.iterations}

    def act(self, observation: torch.Tensor, state: HetNetState | None = None) -> HetNetAction:
        """Observations (unused) + ``env.network_state()`` -> :class:`twin.HetNetAction`."""
        if state is None:
            raise ValueError("the WMMSE baseline is centralised: pass env.network_state() as state")
        cfg = state.config
        association = strongest_signal_association(state.gain, state.block_power_w)
        block = round_robin_blocks(association, cfg.num_bs, cfg.num_blocks)
        channel, share = _effective_channel(state.gain, association, block, cfg.num_bs, cfg.num_blocks)
        budget = state.block_power_w[association]
        power = wmmse_power(channel, state.noise_w, budget, share, self.iterations)
        return HetNetAction(association=association, block=block, power_split=(power / budget).clamp(0.0, 1.0))
