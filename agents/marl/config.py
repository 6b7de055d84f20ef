"""The hyper-parameters the HetNet multi-agent learners share, and a validated constructor from a mapping.

Each learner's config (e.g. :class:`agents.marl.maddqn_dmaddpg.MADDQNDMADDPGConfig`) extends one of these frozen
dataclasses with its own fields; a subclass that needs another default re-declares the field:

* :class:`MARLConfig`: every learner (network width, discount, gradient clipping);
* :class:`OffPolicyConfig`: learners with a replay memory (QMIX, MADDPG, MADDQN-DMADDPG, DQN-DDDPG);
* :class:`EpsilonGreedyConfig`: those whose discrete decisions explore epsilon-greedily over block offsets and keep
  a target copy (QMIX, MADDQN-DMADDPG, DQN-DDDPG);
* :class:`HybridActionConfig`: a DQN for the discrete decisions plus a TD3-style actor and twin critics for the
  power split (MADDQN-DMADDPG, DQN-DDDPG).

Every config checks its values when built (ValueError naming the field, the value and what is allowed);
:func:`config_from_mapping` builds one from a mapping such as a parsed TOML table, refusing unknown keys and
values of the wrong type.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

__all__ = ["EpsilonGreedyConfig", "HybridActionConfig", "MARLConfig", "OffPolicyConfig", "config_from_mapping",
           "require"]


def require(config: Any, name: str, ok: bool, allowed: str) -> None:
    """ValueError ``"<name> must be <allowed>, got <value>"`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {getattr(config, name)!r}")


@dataclass(frozen=True)
class MARLConfig:
    """Hyper-parameters every HetNet multi-agent learner has."""

    hidden: int = 64
    """Width of the hidden layers of the learner's networks."""
    discount: float = 0.9
    """gamma, the discount factor."""
    grad_clip_norm: float = 10.0
    """Largest gradient norm per update."""

    def __post_init__(self) -> None:
        require(self, "hidden", self.hidden >= 1, "an integer >= 1")
        require(self, "discount", 0.0 <= self.discount <= 1.0, "a number in [0, 1]")
        require(self, "grad_clip_norm", self.grad_clip_norm > 0, "a number > 0")


@dataclass(frozen=True)
class OffPolicyConfig(MARLConfig):
    """A learner that trains on slots sampled from a replay memory."""

    batch_size: int = 32
    """Slots per gradient update (each slot holds all N agents)."""
    replay_capacity: int = 20000
    """Slots held by the replay memory."""
    learning_starts: int = 200
    """Slots in memory before the first update."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "batch_size", self.batch_size >= 1, "an integer >= 1")
        require(self, "replay_capacity", self.replay_capacity >= 1, "an integer >= 1")
        require(self, "learning_starts", self.learning_starts >= 0, "an integer >= 0")


@dataclass(frozen=True)
class EpsilonGreedyConfig(OffPolicyConfig):
    """An off-policy learner whose discrete (BS, block offset) decisions explore epsilon-greedily."""

    num_offsets: int = 4
    """O: block offsets a UE chooses from (its discrete action has (K + 1) O values)."""
    target_update_every: int = 200
    """Updates between copies of the discrete layer's target networks."""
    epsilon_start: float = 0.9
    """Initial exploration probability."""
    epsilon_end: float = 0.05
    """Final exploration probability."""
    epsilon_fraction: float = 0.8
    """Share of the training steps over which epsilon falls linearly."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "num_offsets", self.num_offsets >= 1, "an integer >= 1")
        require(self, "target_update_every", self.target_update_every >= 1, "an integer >= 1")
        for name in ("epsilon_start", "epsilon_end", "epsilon_fraction"):
            require(self, name, 0.0 <= getattr(self, name) <= 1.0, "a number in [0, 1]")


@dataclass(frozen=True)
class HybridActionConfig(EpsilonGreedyConfig):
    """A DQN for the discrete decisions and a TD3-style actor with twin critics for the power split."""

    q_learning_rate: float = 1e-3
    """Adam learning rate of the discrete layer's Q-network(s)."""
    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the critics."""
    tau: float = 0.005
    """Soft target update rate of the actor and critics."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    exploration_noise: float = 0.1
    """Standard deviation of the Gaussian noise added to the split while training."""
    target_noise: float = 0.2
    """Standard deviation of the smoothing noise on the target actor's split."""
    target_noise_clip: float = 0.5
    """Bound of that smoothing noise."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("q_learning_rate", "actor_learning_rate", "critic_learning_rate"):
            require(self, name, getattr(self, name) > 0, "a number > 0")
        require(self, "tau", 0 < self.tau <= 1, "a number in (0, 1]")
        require(self, "policy_delay", self.policy_delay >= 1, "an integer >= 1")
        for name in ("exploration_noise", "target_noise", "target_noise_clip"):
            require(self, name, getattr(self, name) >= 0, "a number >= 0")


ConfigT = TypeVar("ConfigT", bound=MARLConfig)


def config_from_mapping(config_class: type[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """A ``config_class`` (any :class:`MARLConfig`) from a mapping of field values, e.g. a parsed TOML table.

    Fields not in the mapping keep the class's defaults. A list is accepted for a tuple field.

    Raises:
        ValueError: an unknown key (naming it and the allowed ones), a value of the wrong type (naming the key, the
            value and the type allowed) or out of range (the config's own check).
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} settings {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(config_class)
    checked = {name: _typed(name, value, hints[name]) for name, value in values.items()}
    return config_class(**checked)


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it is of type ``hint`` (bool, int, float, str, or tuple[float, ...]), else ValueError."""
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif typing.get_origin(hint) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                                     for v in value)
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        allowed = ("a list of numbers" if typing.get_origin(hint) is tuple else
                   {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint])
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value
