"""MAPPO baseline on the HetNet twin (Yu et al., 2022): shared stochastic actor, centralised value, clipped PPO.

Each UE's hybrid action is a categorical (BS, block offset) index and a Beta-distributed power split, both from
one shared actor on the UE's local features. The centralised value V(s) reads the mean and max of all UEs'
features. After every episode (B networks x T slots) the policy takes ``epochs`` passes of clipped-ratio updates
over the episode with GAE advantages of the team reward (eq. 10 plus the energy-efficiency and interference
terms), shared by every UE. Greedy action: the categorical's mode and the Beta's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributions import Beta, Categorical

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep

from .common import feature_size, local_features, mlp, to_action
from .config import MARLConfig, require
from .training import detach_metrics

__all__ = ["MAPPO", "MAPPOConfig", "MAPPOPolicy"]


@dataclass(frozen=True)
class MAPPOConfig(MARLConfig):
    """Hyper-parameters of MAPPO (the shared ones: :class:`agents.marl.config.MARLConfig`)."""

    num_offsets: int = 4
    """O: block offsets (as MADDQN)."""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation."""
    learning_rate: float = 3e-4
    """Adam learning rate of actor and value."""
    clip: float = 0.2
    """PPO ratio clip."""
    epochs: int = 4
    """Passes over each episode's data."""
    minibatches: int = 4
    """Minibatches per pass (split along the slots)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    grad_clip_norm: float = 0.5
    """Largest gradient norm per update."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_offsets", "epochs", "minibatches"):
            require(self, name, getattr(self, name) >= 1, "an integer >= 1")
        require(self, "gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "a number in [0, 1]")
        for name in ("learning_rate", "clip"):
            require(self, name, getattr(self, name) > 0, "a number > 0")
        for name in ("entropy_coef", "value_coef"):
            require(self, name, getattr(self, name) >= 0, "a number >= 0")


class _Actor(nn.Module):
    def __init__(self, num_bs: int, num_actions: int, hidden: int) -> None:
        super().__init__()
        self.body = mlp([feature_size(num_bs), hidden, hidden], nn.Tanh, last_activation=True)
        self.logits = nn.Linear(hidden, num_actions)
        self.beta = nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[.., D] -> logits [.., A], Beta concentrations alpha [..], beta [..] (both > 1: unimodal)."""
        h = self.body(features)
        concentration = 1.0 + nn.functional.softplus(self.beta(h))
        return self.logits(h), concentration[..., 0], concentration[..., 1]


class MAPPOPolicy(Policy):
    """Greedy MAPPO actor: mode of the (BS, offset) categorical, mean of the split's Beta.

    Args:
        num_bs, num_blocks: J and M_b.
        hidden, num_offsets: as :class:`MAPPOConfig`.
    """

    name = "mappo"

    def __init__(self, num_bs: int, num_blocks: int, hidden: int = 64, num_offsets: int = 4) -> None:
        self.num_bs, self.num_blocks, self.hidden, self.num_offsets = int(num_bs), int(num_blocks), int(hidden), int(num_offsets)
        self.actor = _Actor(num_bs, num_bs * num_offsets, hidden)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "hidden": self.hidden, "num_offsets": self.num_offsets}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, F] observations -> :class:`twin.HetNetAction`."""
        with torch.no_grad():
            logits, alpha, beta = self.actor(local_features(observation.float(), self.num_bs, self.num_blocks))
        return to_action(logits.argmax(-1), alpha / (alpha + beta), self.num_bs, self.num_offsets, self.num_blocks)


class MAPPO:
    """MAPPO learner (:class:`agents.marl.training.Learner`); updates at the end of every episode."""

    def __init__(self, env_config: HetNetConfig, config: MAPPOConfig | None = None, seed: int = 0) -> None:
        self.env_config, self.config = env_config, config or MAPPOConfig()
        c = self.config
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._policy = MAPPOPolicy(env_config.num_bs, env_config.num_blocks, c.hidden, c.num_offsets)
        self.actor = self._policy.actor
        size = feature_size(env_config.num_bs)
        self.value = mlp([2 * size, c.hidden, c.hidden, 1], nn.Tanh)
        self.optimizer = torch.optim.Adam([*self.actor.parameters(), *self.value.parameters()], lr=c.learning_rate)
        self._rollout: list[tuple[torch.Tensor, ...]] = []

    def _features(self, observation: torch.Tensor) -> torch.Tensor:
        return local_features(observation.float(), self.env_config.num_bs, self.env_config.num_blocks)

    def _state_value(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(torch.cat([features.mean(-2), features.amax(-2)], dim=-1)).squeeze(-1)

    def exploration_done(self, progress: float) -> bool:
        return True

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits, alpha, beta = self.actor(self._features(observation))
            probs = torch.softmax(logits, -1)
            discrete = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=self.generator).view(probs.shape[:-1])
            # Beta sampling has no generator argument: it draws from torch's global generator, seeded in __init__.
            # The clamp keeps log_prob finite at the support's edges.
            split = Beta(alpha, beta).sample().clamp(1e-4, 1 - 1e-4)
        return discrete, split

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        return to_action(discrete, power_split, self.env_config.num_bs, self.config.num_offsets, self.env_config.num_blocks)

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        self._rollout.append((observation.float(), discrete, power_split.float(),
                              outcome.info["reward_continuous"].float(), outcome.observation.float()))

    def learn(self, progress: float) -> dict[str, float]:
        return {}

    def policy(self) -> MAPPOPolicy:
        return self._policy

    def _log_prob(self, features: torch.Tensor, discrete: torch.Tensor, split: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, alpha, beta = self.actor(features)
        categorical, continuous = Categorical(logits=logits), Beta(alpha, beta)
        log_prob = categorical.log_prob(discrete) + continuous.log_prob(split)
        return log_prob, categorical.entropy() + continuous.entropy()

    def end_episode(self, progress: float) -> dict[str, float]:
        c = self.config
        observation, discrete, split, reward, next_observation = (torch.stack(x) for x in zip(*self._rollout))
        self._rollout = []
        features = self._features(observation)                                      # [T, B, N, D]
        with torch.no_grad():
            values = self._state_value(features)                                     # [T, B]
            last = self._state_value(self._features(next_observation[-1]))
            old_log_prob, _ = self._log_prob(features, discrete, split)
            advantage = torch.zeros_like(values)
            running = torch.zeros_like(last)
            for t in reversed(range(values.shape[0])):
                # The episode ends by a time limit: bootstrap from the last next state's value.
                next_value = last if t == values.shape[0] - 1 else values[t + 1]
                delta = reward[t] + c.discount * next_value - values[t]
                running = delta + c.discount * c.gae_lambda * running
                advantage[t] = running
            returns = advantage + values
            normalised = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        slots = observation.shape[0]
        metrics: dict[str, float] = {}
        for _ in range(c.epochs):
            order = torch.randperm(slots, generator=self.generator)
            for chunk in order.chunk(max(1, min(c.minibatches, slots))):
                log_prob, entropy = self._log_prob(features[chunk], discrete[chunk], split[chunk])
                ratio = torch.exp(log_prob - old_log_prob[chunk])
                adv = normalised[chunk].unsqueeze(-1)
                policy_loss = -torch.minimum(ratio * adv, ratio.clamp(1 - c.clip, 1 + c.clip) * adv).mean()
                value_loss = nn.functional.mse_loss(self._state_value(features[chunk]), returns[chunk])
                loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy.mean()
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*self.actor.parameters(), *self.value.parameters()], c.grad_clip_norm)
                self.optimizer.step()
                metrics = detach_metrics({"losses/policy": policy_loss, "losses/value": value_loss,
                                          "losses/entropy": entropy.mean()})
        return metrics
