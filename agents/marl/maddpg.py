"""MADDPG baseline on the HetNet twin (Lowe et al., 2017) with greedy (strongest-signal) association.

Association is not learned: every UE joins the BS with the strongest per-block signal (the largest SNR column
of its observation) and takes the offset-0 block of its BS, i.e. round-robin blocks within each BS, as the
WMMSE baseline does. The power split is learned by an actor per UE (shared parameters, no attention) and one
centralised critic Q(s, a_1..a_N) (the set critic of :mod:`agents.marl.maddqn_dmaddpg`), with the plain DDPG
target y = r_c + gamma Q'(s', mu'(o')), soft target updates and Gaussian exploration noise; reward: eq. 10 plus
the energy-efficiency and interference terms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep

from .common import ReplayBuffer, encode_discrete, local_features, soft_update, to_action
from .config import OffPolicyConfig, require
from .maddqn_dmaddpg import CentralCritic, PowerActor
from .training import detach_metrics

__all__ = ["MADDPG", "MADDPGConfig", "MADDPGPolicy", "greedy_discrete"]


@dataclass(frozen=True)
class MADDPGConfig(OffPolicyConfig):
    """Hyper-parameters of MADDPG (the shared ones: :class:`agents.marl.config.OffPolicyConfig`)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the critic."""
    tau: float = 0.01
    """Soft target update rate."""
    exploration_noise: float = 0.1
    """Standard deviation of the Gaussian noise on the split while training."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("actor_learning_rate", "critic_learning_rate"):
            require(self, name, getattr(self, name) > 0, "a number > 0")
        require(self, "tau", 0 < self.tau <= 1, "a number in (0, 1]")
        require(self, "exploration_noise", self.exploration_noise >= 0, "a number >= 0")


NUM_OFFSETS = 1
"""MADDPG's UEs all use offset 0 (round-robin blocks within each BS)."""


def greedy_discrete(observation: torch.Tensor, num_bs: int) -> torch.Tensor:
    """[B, N, F] observations -> [B, N] discrete indices: the strongest BS (largest SNR column), offset 0."""
    association = observation[..., :num_bs].argmax(-1)
    return encode_discrete(association, torch.zeros_like(association), NUM_OFFSETS)


class MADDPGPolicy(Policy):
    """Strongest-signal association, round-robin blocks, learned power split.

    Args:
        num_bs, num_blocks: J and M_b.
        hidden: actor width.
    """

    name = "maddpg"

    def __init__(self, num_bs: int, num_blocks: int, hidden: int = 64) -> None:
        self.num_bs, self.num_blocks, self.hidden = int(num_bs), int(num_blocks), int(hidden)
        self.actor = PowerActor(num_bs, NUM_OFFSETS, hidden, 0)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "hidden": self.hidden}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])

    def decide(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N, F] -> ([B, N] discrete indices, [B, N] splits)."""
        observation = observation.float()
        discrete = greedy_discrete(observation, self.num_bs)
        with torch.no_grad():
            return discrete, self.actor(observation, local_features(observation, self.num_bs, self.num_blocks), discrete)

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, F] observations -> :class:`twin.HetNetAction`."""
        discrete, split = self.decide(observation)
        return to_action(discrete, split, self.num_bs, NUM_OFFSETS, self.num_blocks)


class MADDPG:
    """MADDPG learner (:class:`agents.marl.training.Learner`)."""

    def __init__(self, env_config: HetNetConfig, config: MADDPGConfig | None = None, seed: int = 0) -> None:
        self.env_config, self.config = env_config, config or MADDPGConfig()
        c = self.config
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._policy = MADDPGPolicy(env_config.num_bs, env_config.num_blocks, c.hidden)
        self.actor = self._policy.actor
        self.critic = CentralCritic(env_config.num_bs, NUM_OFFSETS, c.hidden)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.actor_learning_rate)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.critic_learning_rate)
        self.replay = ReplayBuffer(c.replay_capacity, env_config.num_ues, env_config.observation_size, seed)

    def exploration_done(self, progress: float) -> bool:
        return True

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        discrete, split = self._policy.decide(observation)
        noise = self.config.exploration_noise * torch.randn(split.shape, generator=self.generator)
        return discrete, (split + noise).clamp(0.0, 1.0)

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        return to_action(discrete, power_split, self.env_config.num_bs, NUM_OFFSETS, self.env_config.num_blocks)

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        self.replay.add(observation, discrete, power_split, outcome.reward, outcome.info["reward_continuous"],
                        outcome.observation)

    def end_episode(self, progress: float) -> dict[str, float]:
        return {}

    def policy(self) -> MADDPGPolicy:
        return self._policy

    def learn(self, progress: float) -> dict[str, float]:
        c = self.config
        if len(self.replay) < max(c.learning_starts, c.batch_size):
            return {}
        batch = self.replay.sample(c.batch_size)
        j, m_b = self.env_config.num_bs, self.env_config.num_blocks
        features, next_features = local_features(batch.observation, j, m_b), local_features(batch.next_observation, j, m_b)
        with torch.no_grad():
            next_discrete = greedy_discrete(batch.next_observation, j)
            next_split = self.actor_target(batch.next_observation, next_features, next_discrete)
            target = batch.reward_continuous + c.discount * self.critic_target(next_features, next_discrete, next_split)
        q = self.critic(features, batch.discrete, batch.power_split)
        critic_loss = nn.functional.mse_loss(q, target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip_norm)
        self.critic_optimizer.step()
        actor_loss = -self.critic(features, batch.discrete, self.actor(batch.observation, features, batch.discrete)).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip_norm)
        self.actor_optimizer.step()
        soft_update(self.actor_target, self.actor, c.tau)
        soft_update(self.critic_target, self.critic, c.tau)
        return detach_metrics({"losses/critic": critic_loss, "losses/actor": actor_loss})
