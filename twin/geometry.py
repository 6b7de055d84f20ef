"""Topology of the DTN: AP grid, device drops in the coverage annuli and nearest-AP clustering."""

from __future__ import annotations

import math

import torch

__all__ = ["ap_grid_positions", "drop_devices", "nearest_ap"]


def ap_grid_positions(num_aps: int, spacing_m: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """AP coordinates on a grid with ceil(sqrt(K)) columns and ``spacing_m`` between neighbours.

    Returns:
        [K, 2] float, (x, y) in metres; K = 4 gives the corners of a 600 m square.
    """
    columns = math.ceil(math.sqrt(num_aps))
    index = torch.arange(num_aps, device=device)
    x = (index % columns).to(dtype) * spacing_m
    y = torch.div(index, columns, rounding_mode="floor").to(dtype) * spacing_m
    return torch.stack([x, y], dim=-1)


def drop_devices(batch_size: int, num_devices: int, ap_xy: torch.Tensor, coverage_radius_m: float,
                 empty_radius_m: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop devices uniformly by area in the union of the APs' coverage annuli.

    Each device picks an AP uniformly, then a point uniform in the annulus
    empty_radius <= r <= coverage_radius around it (r = sqrt(U (R^2 - r0^2) + r0^2)).

    Args:
        batch_size: B.
        num_devices: N.
        ap_xy: [K, 2] float, AP positions (m).
        coverage_radius_m, empty_radius_m: annulus radii (m).
        generator: torch generator.

    Returns:
        [B, N, 2] float, device positions (m).
    """
    num_aps = ap_xy.shape[0]
    shape = (batch_size, num_devices)
    kw = dict(device=ap_xy.device, generator=generator)
    home = torch.randint(0, num_aps, shape, **kw)
    u = torch.rand(shape, dtype=ap_xy.dtype, **kw)
    radius = torch.sqrt(u * (coverage_radius_m ** 2 - empty_radius_m ** 2) + empty_radius_m ** 2)
    angle = 2.0 * math.pi * torch.rand(shape, dtype=ap_xy.dtype, **kw)
    offset = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    return ap_xy[home] + offset


def nearest_ap(device_xy: torch.Tensor, ap_xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster devices to their nearest AP.

    Args:
        device_xy: [B, N, 2] float (m).
        ap_xy: [K, 2] float (m).

    Returns:
        (cluster [B, N] int64 index of the nearest AP, distance [B, N, K] float horizontal distance to every AP (m)).
    """
    distance = torch.linalg.vector_norm(device_xy.unsqueeze(-2) - ap_xy, dim=-1)
    return distance.argmin(dim=-1), distance
