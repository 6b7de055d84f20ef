"""DQN-DDDPG: the centralised single-agent counterpart of MADDQN-DMADDPG.

One controller sees the global state (every UE's features, concatenated, so the networks are built for one N)
and decides for every UE at once:

* a DQN with one output branch per UE (action branching: the joint (BS, offset) action of N UEs has
  (J O)^N values, so the network scores each UE's choice in its own head, all heads sharing the torso), trained on
  the double-Q target y = r + gamma mean_i Q_i^target(s', argmax_a Q_i^online(s', a)) that every branch regresses
  to; epsilon-greedy, linear 0.9 -> 0.05 over 80 % of the steps; reward eq. 10;
* a twin-critic DDPG ("DDDPG": double-critic deep deterministic policy gradient): a central actor maps the global
  state and the slot's discrete decisions to N power splits, two critics Q_k(s, a) on the concatenated state and
  actions, the clipped double-Q target, delayed actor updates, soft target updates; reward eq. 10 plus the
  energy-efficiency and interference terms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep

from .common import (ReplayBuffer, clipped_double_q_target, feature_size, linear_epsilon, local_features, mlp,
                     soft_update, to_action)
from .config import HybridActionConfig
from .maddqn_dmaddpg import discrete_encoding
from .training import detach_metrics

__all__ = ["DQNDDDPG", "DQNDDDPGConfig", "DQNDDDPGPolicy"]


@dataclass(frozen=True)
class DQNDDDPGConfig(HybridActionConfig):
    """Hyper-parameters of DQN-DDDPG (:class:`agents.marl.config.HybridActionConfig`, wider networks)."""

    hidden: int = 256
    """Width of the hidden layers (the inputs are N times wider than a per-UE network's)."""


class DQNDDDPGPolicy(Policy):
    """The greedy centralised controller for networks of exactly ``num_ues`` UEs.

    Args:
        num_bs, num_blocks, num_ues: J, M_b, N.
        hidden, num_offsets: as :class:`DQNDDDPGConfig`.
    """

    name = "dqn-dddpg"

    def __init__(self, num_bs: int, num_blocks: int, num_ues: int, hidden: int = 256, num_offsets: int = 4) -> None:
        self.num_bs, self.num_blocks, self.num_ues = int(num_bs), int(num_blocks), int(num_ues)
        self.hidden, self.num_offsets = int(hidden), int(num_offsets)
        self.num_actions = num_bs * num_offsets
        state_size = num_ues * feature_size(num_bs)
        self.q_network = mlp([state_size, hidden, hidden, num_ues * self.num_actions])
        self.actor = mlp([state_size + num_ues * (num_bs + num_offsets), hidden, hidden, num_ues])

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "num_ues": self.num_ues, "hidden": self.hidden,
                "num_offsets": self.num_offsets}

    def state_dict(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict(), "actor": self.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.actor.load_state_dict(state["actor"])

    def global_state(self, observation: torch.Tensor) -> torch.Tensor:
        """[B, N, F] observations -> [B, N (3J + 3)] global state."""
        if observation.shape[1] != self.num_ues:
            raise ValueError(f"{self.name} is built for N = {self.num_ues} UEs, got observations of "
                             f"{observation.shape[1]}")
        return local_features(observation.float(), self.num_bs, self.num_blocks).flatten(1)

    def q_values(self, state: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """[B, S] global state -> [B, N, J O] per-UE branch Q-values."""
        return (network or self.q_network)(state).view(state.shape[0], self.num_ues, self.num_actions)

    def splits(self, state: torch.Tensor, discrete: torch.Tensor, network: nn.Module | None = None) -> torch.Tensor:
        """[B, S] state, [B, N] discrete indices -> [B, N] splits in [0, 1]."""
        encoded = discrete_encoding(discrete, self.num_bs, self.num_offsets).flatten(1)
        return torch.sigmoid((network or self.actor)(torch.cat([state, encoded], dim=-1)))

    def decide(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N, F] -> ([B, N] greedy discrete indices, [B, N] splits)."""
        with torch.no_grad():
            state = self.global_state(observation)
            discrete = self.q_values(state).argmax(-1)
            return discrete, self.splits(state, discrete)

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, F] observations -> :class:`twin.HetNetAction`."""
        discrete, split = self.decide(observation)
        return to_action(discrete, split, self.num_bs, self.num_offsets, self.num_blocks)


class DQNDDDPG:
    """DQN-DDDPG learner (:class:`agents.marl.training.Learner`)."""

    def __init__(self, env_config: HetNetConfig, config: DQNDDDPGConfig | None = None, seed: int = 0) -> None:
        self.env_config, self.config = env_config, config or DQNDDDPGConfig()
        c = self.config
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        j, n = env_config.num_bs, env_config.num_ues
        self._policy = DQNDDDPGPolicy(j, env_config.num_blocks, n, c.hidden, c.num_offsets)
        self.q_network, self.actor = self._policy.q_network, self._policy.actor
        self.q_target, self.actor_target = copy.deepcopy(self.q_network), copy.deepcopy(self.actor)
        critic_input = n * feature_size(j) + n * (j + c.num_offsets) + n
        self.critics = nn.ModuleList([mlp([critic_input, c.hidden, c.hidden, 1]) for _ in range(2)])
        self.critic_targets = copy.deepcopy(self.critics)
        self.q_optimizer = torch.optim.Adam(self.q_network.parameters(), lr=c.q_learning_rate)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.actor_learning_rate)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=c.critic_learning_rate)
        self.replay = ReplayBuffer(c.replay_capacity, n, env_config.observation_size, seed)
        self.updates = 0

    def epsilon(self, progress: float) -> float:
        c = self.config
        return linear_epsilon(round(progress * 1_000_000), 1_000_000, c.epsilon_start, c.epsilon_end, c.epsilon_fraction)

    def exploration_done(self, progress: float) -> bool:
        return progress >= self.config.epsilon_fraction

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        discrete, _ = self._policy.decide(observation)
        random_action = torch.randint(0, self._policy.num_actions, discrete.shape, generator=self.generator)
        discrete = torch.where(torch.rand(discrete.shape, generator=self.generator) < self.epsilon(progress),
                               random_action, discrete)
        with torch.no_grad():
            split = self._policy.splits(self._policy.global_state(observation), discrete)
        noise = self.config.exploration_noise * torch.randn(split.shape, generator=self.generator)
        return discrete, (split + noise).clamp(0.0, 1.0)

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        return to_action(discrete, power_split, self.env_config.num_bs, self.config.num_offsets,
                         self.env_config.num_blocks)

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        self.replay.add(observation, discrete, power_split, outcome.reward, outcome.info["reward_continuous"],
                        outcome.observation)

    def end_episode(self, progress: float) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(progress)}

    def policy(self) -> DQNDDDPGPolicy:
        return self._policy

    def _critic_input(self, state: torch.Tensor, discrete: torch.Tensor, split: torch.Tensor) -> torch.Tensor:
        encoded = discrete_encoding(discrete, self.env_config.num_bs, self.config.num_offsets).flatten(1)
        return torch.cat([state, encoded, split], dim=-1)

    def learn(self, progress: float) -> dict[str, float]:
        c, p = self.config, self._policy
        if len(self.replay) < max(c.learning_starts, c.batch_size):
            return {}
        batch = self.replay.sample(c.batch_size)
        state, next_state = p.global_state(batch.observation), p.global_state(batch.next_observation)
        with torch.no_grad():
            next_online = p.q_values(next_state)
            chosen = next_online.argmax(-1, keepdim=True)
            next_value = torch.gather(p.q_values(next_state, self.q_target), -1, chosen).squeeze(-1).mean(-1)
            target = batch.reward + c.discount * next_value
        q = torch.gather(p.q_values(state), -1, batch.discrete.unsqueeze(-1)).squeeze(-1)       # [b, N]
        td_loss = nn.functional.smooth_l1_loss(q, target.unsqueeze(-1).expand_as(q))
        self.q_optimizer.zero_grad()
        td_loss.backward()
        nn.utils.clip_grad_norm_(self.q_network.parameters(), c.grad_clip_norm)
        self.q_optimizer.step()

        with torch.no_grad():
            next_discrete = chosen.squeeze(-1)
            next_split = p.splits(next_state, next_discrete, self.actor_target)
            smoothing = (c.target_noise * torch.randn(next_split.shape, generator=self.generator)).clamp(
                -c.target_noise_clip, c.target_noise_clip)
            next_input = self._critic_input(next_state, next_discrete, (next_split + smoothing).clamp(0.0, 1.0))
            q1, q2 = (critic(next_input).squeeze(-1) for critic in self.critic_targets)
            critic_target = clipped_double_q_target(batch.reward_continuous, c.discount, q1, q2)
        current = self._critic_input(state, batch.discrete, batch.power_split)
        critic_loss = sum(nn.functional.mse_loss(critic(current).squeeze(-1), critic_target) for critic in self.critics)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critics.parameters(), c.grad_clip_norm)
        self.critic_optimizer.step()
        metrics = {"losses/td": td_loss, "losses/critic": critic_loss}
        self.updates += 1
        if self.updates % c.policy_delay == 0:
            split = p.splits(state, batch.discrete)
            actor_loss = -self.critics[0](self._critic_input(state, batch.discrete, split)).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip_norm)
            self.actor_optimizer.step()
            soft_update(self.actor_target, self.actor, c.tau)
            soft_update(self.critic_targets, self.critics, c.tau)
            metrics["losses/actor"] = actor_loss
        if self.updates % c.target_update_every == 0:
            self.q_target.load_state_dict(self.q_network.state_dict())
        return detach_metrics(metrics)
