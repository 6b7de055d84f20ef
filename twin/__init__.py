"""The digital twin network (batched torch). Imports nothing else of the project at run time.

Main entry points:

* :class:`DTNConfig` and :class:`LinkAdaptationNetwork`: the link-adaptation DTN (K APs, N links,
  PF scheduling, ACI, HWI, SINR eq. 14, PER/rate eqs. 15-17).
* :class:`AnalyticPhysical`: the same equations with a hidden deviation phi (the paper's physical network).
* :class:`PhysicalNetwork`: the reset/step contract both satisfy (and an over-the-air runner can).
* :func:`from_calibration`: twin parameters from a calibration record; :func:`fit_coding_gain` /
  :func:`fit_link_abstraction`: decoder gains fitted to measured code blocks.
* :class:`HetNetConfig` and :class:`HetNetwork`: the macro + small-cell user-association mode.
* :mod:`twin.pettingzoo_env`: a PettingZoo ``ParallelEnv`` over one network (needs ``pettingzoo``).
* :mod:`twin.runtime`: the global device / dtype / seeding defaults.
"""

from .calibration_record import fit_coding_gain, fit_link_abstraction, from_calibration
from .config import (CODE_RATES, MODULATION_NAMES, MODULATION_ORDERS, OBSERVATION_FEATURES, DTNConfig,
                     decode_action, encode_action)
from .hetnet import HetNetAction, HetNetConfig, HetNetState, HetNetStep, HetNetwork, jain_index
from .network import (AnalyticPhysical, LinkAdaptationNetwork, NetworkState, PhysicalNetwork, SlotOutcome,
                      StepResult, evaluate_slot)

__all__ = [
    "CODE_RATES",
    "MODULATION_NAMES",
    "MODULATION_ORDERS",
    "OBSERVATION_FEATURES",
    "AnalyticPhysical",
    "DTNConfig",
    "HetNetAction",
    "HetNetConfig",
    "HetNetState",
    "HetNetStep",
    "HetNetwork",
    "LinkAdaptationNetwork",
    "NetworkState",
    "PhysicalNetwork",
    "SlotOutcome",
    "StepResult",
    "decode_action",
    "encode_action",
    "evaluate_slot",
    "fit_coding_gain",
    "fit_link_abstraction",
    "from_calibration",
    "jain_index",
]
