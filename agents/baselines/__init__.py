"""Classical baselines with the common :class:`agents.policy.Policy` interface.

Link adaptation (DTN): :class:`RandomPolicy`, :class:`MaxPowerCQIPolicy` (MaxP-3GPP-CQI), :class:`OllaPolicy`
(outer-loop link adaptation over Sionna's PHY abstraction), :class:`ExhaustiveSearchPolicy` (ESA) and
:class:`ExhaustiveFPPolicy` (ESA-FP).
HetNet: :class:`RandomHetNetPolicy` and :class:`WMMSEPolicy` (WMMSE power + strongest-signal association).
"""

from .exhaustive import (ExhaustiveFPPolicy, ExhaustiveSearchPolicy, LinkDecision, fractional_programming_power,
                         fractional_programming_power_reference)
from .maxp_cqi import MaxPowerCQIPolicy, mcs_for_efficiency
from .olla import OllaPolicy, menu_from_thresholds, sionna_menu_thresholds_db
from .random_policy import RandomHetNetPolicy, RandomPolicy
from .wmmse import (WMMSEPolicy, round_robin_blocks, strongest_signal_association, wmmse_power,
                    wmmse_power_reference)

__all__ = [
    "ExhaustiveFPPolicy",
    "ExhaustiveSearchPolicy",
    "LinkDecision",
    "MaxPowerCQIPolicy",
    "OllaPolicy",
    "RandomHetNetPolicy",
    "RandomPolicy",
    "WMMSEPolicy",
    "fractional_programming_power",
    "fractional_programming_power_reference",
    "mcs_for_efficiency",
    "menu_from_thresholds",
    "round_robin_blocks",
    "sionna_menu_thresholds_db",
    "strongest_signal_association",
    "wmmse_power",
    "wmmse_power_reference",
]
