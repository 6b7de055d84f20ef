"""Proportional-fair RRB scheduling (Algorithm 1), batched over environments and APs."""

from __future__ import annotations

import torch

__all__ = ["interleaved_rrb_owner", "proportional_fair_schedule", "update_average_throughput"]


def interleaved_rrb_owner(num_rrbs: int, num_aps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[R] int64: RRB r belongs to AP r mod K, so the j-th RRB of AP k is r = k + K j."""
    return torch.arange(num_rrbs, device=device) % num_aps


def proportional_fair_schedule(metric: torch.Tensor, cluster: torch.Tensor, num_aps: int,
                               rrbs_per_ap: int) -> torch.Tensor:
    """Assign each AP's RRBs to its devices by proportional-fair metric (Algorithm 1).

    For each AP k and each of its RRBs j = 0, 1, ... in order, the not-yet-served device of k's
    cluster with the largest metric R_hat_n / T_n gets RRB r = k + K j (ties: lowest device index).
    A device gets at most one RRB per slot; devices left over are idle in the slot.

    Args:
        metric: [B, N] float, PF metric of each device (instantaneous rate estimate / average throughput).
        cluster: [B, N] int64, serving AP of each device.
        num_aps: K.
        rrbs_per_ap: RRBs owned by each AP.

    Returns:
        [B, N] int64, RRB of each device in the slot, -1 when unscheduled.
    """
    batch, num_devices = metric.shape
    # Order devices by descending metric (stable: lowest index first among ties), then stably by AP:
    # each AP's members end up contiguous, best first. Two [B, N] sorts instead of one per AP.
    by_metric = torch.sort(metric, dim=-1, descending=True, stable=True).indices
    cluster_by_metric = torch.gather(cluster, 1, by_metric)
    by_ap = torch.sort(cluster_by_metric, dim=-1, stable=True)
    order = torch.gather(by_metric, 1, by_ap.indices)                                      # device at each position
    ap_sorted = by_ap.values
    members = torch.zeros(batch, num_aps, dtype=torch.int64, device=metric.device)
    members.scatter_add_(1, cluster, torch.ones_like(cluster))
    first = members.cumsum(1) - members                                                    # first position of each AP
    rank = torch.arange(num_devices, device=metric.device) - torch.gather(first, 1, ap_sorted)
    rrb_sorted = torch.where(rank < rrbs_per_ap, ap_sorted + num_aps * rank, torch.full_like(rank, -1))
    return torch.empty_like(rrb_sorted).scatter_(1, order, rrb_sorted)


def update_average_throughput(average: torch.Tensor, achieved: torch.Tensor, alpha: float) -> torch.Tensor:
    """PF averaging T_n(t+1) = (1 - alpha_r) T_n(t) + alpha_r R_n(t) (idle links have R_n = 0).

    Args:
        average: [B, N] float, T_n(t).
        achieved: [B, N] float, R_n(t) in the same unit.
        alpha: alpha_r.
    """
    return (1.0 - alpha) * average + alpha * achieved
