"""MaxP-3GPP-CQI: maximum power, then the MCS the 36.213 CQI table reports for the measured SINR."""

from __future__ import annotations

import math
from typing import Any

import torch

from twin import CODE_RATES, MODULATION_ORDERS, encode_action
from twin.link import CQI_EFFICIENCY, CQI_SINR_THRESHOLD_DB, cqi_from_sinr_db

from ..policy import Policy

__all__ = ["MaxPowerCQIPolicy", "mcs_for_efficiency"]

def _mcs_levels() -> tuple[list[float], list[tuple[int, int]]]:
    # Distinct spectral efficiencies of the action set and, for each, the (modulation, code rate)
    # pair with the lowest modulation order (it needs less SINR for the same efficiency).
    best: dict[float, tuple[int, int]] = {}
    for m, order in enumerate(MODULATION_ORDERS):
        for c, rate in enumerate(CODE_RATES):
            best.setdefault(round(math.log2(order) * rate, 9), (m, c))
    levels = sorted(best)
    return levels, [best[e] for e in levels]


def mcs_for_efficiency(efficiency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The action set's MCS with the largest spectral efficiency not above ``efficiency``.

    Ties (16QAM 3/4 and 64QAM 1/2, both 3 bit/symbol) go to the lower modulation order. Efficiencies
    below the smallest MCS (BPSK 1/2, 0.5 bit/symbol) get that MCS.

    Args:
        efficiency: [...] float, target spectral efficiency (bit per resource element).

    Returns:
        (modulation index [...] int64, code-rate index [...] int64).
    """
    levels, pairs = _mcs_levels()
    table = torch.tensor(levels, dtype=efficiency.dtype, device=efficiency.device)
    pick = (torch.bucketize(efficiency, table, right=True) - 1).clamp(min=0)
    modulation = torch.tensor([m for m, _ in pairs], device=efficiency.device)[pick]
    code_rate = torch.tensor([c for _, c in pairs], device=efficiency.device)[pick]
    return modulation, code_rate


class MaxPowerCQIPolicy(Policy):
    """Each link transmits at P_max with the MCS matching its CQI.

    The CQI is the largest index whose SINR threshold (default: the customary 10 % BLER table of
    :data:`twin.link.CQI_SINR_THRESHOLD_DB`) the link's last measured SINR (observation feature 1,
    dB / 10) reaches; the MCS is the action set's largest spectral efficiency not above that CQI's
    efficiency in TS 36.213 Table 7.2.3-1. CQI 0 gets the most robust MCS (BPSK 1/2).

    Args:
        num_power_levels: size of the power set (P_max is the last level).
        thresholds_db: 15 SINR thresholds for CQI 1..15 (dB).
    """

    name = "maxp-3gpp-cqi"

    def __init__(self, num_power_levels: int = 4, thresholds_db: tuple[float, ...] = CQI_SINR_THRESHOLD_DB) -> None:
        if len(thresholds_db) != 15:
            raise ValueError(f"thresholds_db needs 15 values (CQI 1..15), got {len(thresholds_db)}")
        self.num_power_levels = int(num_power_levels)
        self.thresholds_db = tuple(float(t) for t in thresholds_db)

    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        """[B, N, 6] observations -> [B, N] int64 joint actions."""
        sinr_db = observation[..., 1] * 10.0
        cqi = cqi_from_sinr_db(sinr_db, self.thresholds_db)
        efficiency_table = torch.tensor((0.0,) + CQI_EFFICIENCY, dtype=observation.dtype, device=observation.device)
        modulation, code_rate = mcs_for_efficiency(efficiency_table[cqi])
        power = torch.full_like(modulation, self.num_power_levels - 1)
        return encode_action(power, modulation, code_rate)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_power_levels": self.num_power_levels, "thresholds_db": self.thresholds_db}
