"""Multi-agent learners for joint user association and channel resource scheduling on the HetNet twin.

* :mod:`.maddqn_dmaddpg`: MADDQN (per-UE double DQN + aggregation network) for association and block offsets,
  DMADDPG (attention actor, centralised twin critics) for the power split; policy name ``maddqn-dmaddpg``.
* :mod:`.dqn_dddpg`: the centralised single-agent variant (branching DQN + twin-critic DDPG).
* :mod:`.qmix`, :mod:`.maddpg`, :mod:`.mappo`: the learned baselines.
* :mod:`.common`: features, the block-offset action code, attention, replay, target formulas.
* :mod:`.config`: the hyper-parameters the learners share and :func:`config_from_mapping`.
* :mod:`.training`: the episode loop and the greedy evaluation.

Written here in plain PyTorch because no maintained library combines hybrid discrete-continuous actions,
mixing networks and centralised twin critics over a variable number of agents.
"""

from .config import MARLConfig, config_from_mapping
from .dqn_dddpg import DQNDDDPG, DQNDDDPGConfig, DQNDDDPGPolicy
from .maddpg import MADDPG, MADDPGConfig, MADDPGPolicy
from .maddqn_dmaddpg import (CompiledMADDQNDMADDPGPolicy, MADDQNDMADDPG, MADDQNDMADDPGConfig,
                             MADDQNDMADDPGPolicy)
from .mappo import MAPPO, MAPPOConfig, MAPPOPolicy
from .qmix import QMIX, QMIXConfig, QMIXPolicy
from .training import EvaluationResult, TrainingHistory, evaluate, train

__all__ = ["CompiledMADDQNDMADDPGPolicy", "DQNDDDPG", "DQNDDDPGConfig", "DQNDDDPGPolicy", "EvaluationResult", "MADDPG",
           "MADDPGConfig", "MADDPGPolicy", "MADDQNDMADDPG", "MADDQNDMADDPGConfig", "MADDQNDMADDPGPolicy", "MAPPO",
           "MAPPOConfig", "MAPPOPolicy", "MARLConfig", "QMIX", "QMIXConfig", "QMIXPolicy", "TrainingHistory",
           "config_from_mapping", "evaluate", "train"]
