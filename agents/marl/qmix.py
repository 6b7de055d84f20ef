"""QMIX baseline on the HetNet twin: per-UE Q_i with a monotonic mixing network (Rashid et al., 2018).

Each UE's discrete action is (BS, block offset, power level): the power split is one of ``power_levels`` values,
since QMIX has no continuous actions. Q_i(o_i, .) is shared by all UEs. The mixer is monotonic in every Q_i:
hidden = ELU(sum_i |W1(o_i, s)| Q_i + b1(s)), Q_tot = |w2(s)| . hidden + b2(s), where the hypernetworks read the
state s (mean and max of all UEs' features) and, for W1, the UE's own features, so that it takes any number of
UEs. Standard QMIX target: y = r + gamma Q_tot^target(s', argmax_a Q_i^target(o'_i, a)) (no double-Q);
epsilon-greedy exploration with the same linear schedule as MADDQN; reward eq. 10.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep

from .common import ReplayBuffer, feature_size, linear_epsilon, local_features, mlp, to_action
from .config import EpsilonGreedyConfig, require
from .training import detach_metrics

__all__ = ["MonotonicMixer", "QMIX", "QMIXConfig", "QMIXPolicy"]


@dataclass(frozen=True)
class QMIXConfig(EpsilonGreedyConfig):
    """Hyper-parameters of QMIX (the shared ones: :class:`agents.marl.config.EpsilonGreedyConfig`)."""

    mixing_width: int = 32
    """Width of the mixer's hidden layer."""
    power_levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    """Power splits a UE may choose."""
    learning_rate: float = 1e-3
    """Adam learning rate of the agent network and the mixer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "mixing_width", self.mixing_width >= 1, "an integer >= 1")
        require(self, "power_levels", len(self.power_levels) >= 1 and all(0 <= p <= 1 for p in self.power_levels),
                "one or more power splits in [0, 1]")
        require(self, "learning_rate", self.learning_rate > 0, "a number > 0")


def _state(features: torch.Tensor) -> torch.Tensor:
    """[b, N, D] -> [b, 2D] global state: mean and max of every UE's features."""
    return torch.cat([features.mean(1), features.amax(1)], dim=-1)


class MonotonicMixer(nn.Module):
    """Q_tot(Q_1..Q_N, s), non-decreasing in every Q_i (module docstring).

    Args:
        num_bs: J.
        width: hidden width of the mixer.
    """

    def __init__(self, num_bs: int, width: int) -> None:
        super().__init__()
        size = feature_size(num_bs)
        self.hyper_w1 = mlp([2 * size + size, width, width])
        self.hyper_b1 = mlp([2 * size, width])
        self.hyper_w2 = mlp([2 * size, width, width])
        self.hyper_b2 = mlp([2 * size, width, 1])

    def forward(self, chosen_q: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """[b, N] chosen local values, [b, N, D] features -> [b] Q_tot."""
        state = _state(features)
        per_agent = torch.cat([features, state.unsqueeze(1).expand(-1, features.shape[1], -1)], dim=-1)
        # Mean over agents keeps the scale independent of N; |.| keeps every weight non-negative.
        w1 = self.hyper_w1(per_agent).abs()                                           # [b, N, width]
        hidden = nn.functional.elu((w1 * chosen_q.unsqueeze(-1)).mean(1) + self.hyper_b1(state))
        return (self.hyper_w2(state).abs() * hidden).sum(-1) + self.hyper_b2(state).squeeze(-1)


class QMIXPolicy(Policy):
    """Greedy QMIX agents: argmax_a Q_i(o_i, a) over (BS, offset, power level).

    Args:
        num_bs, num_blocks: J and M_b.
        hidden, num_offsets: as :class:`QMIXConfig`.
        power_levels: the splits of the power actions.
    """

    name = "qmix"

    def __init__(self, num_bs: int, num_blocks: int, hidden: int = 64, num_offsets: int = 4,
                 power_levels: tuple[float, ...] | list[float] = (0.25, 0.5, 0.75, 1.0)) -> None:
        self.num_bs, self.num_blocks, self.hidden, self.num_offsets = int(num_bs), int(num_blocks), int(hidden), int(num_offsets)
        self.power_levels = [float(p) for p in power_levels]
        if not self.power_levels or min(self.power_levels) < 0 or max(self.power_levels) > 1:
            raise ValueError(f"power_levels must be a non-empty list of values in [0, 1], got {self.power_levels}")
        self.q_network = mlp([feature_size(num_bs), hidden, hidden, num_bs * num_offsets * len(self.power_levels)])

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "hidden": self.hidden,
                "num_offsets": self.num_offsets, "power_levels": self.power_levels}

    def state_dict(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])

    def split(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] action index -> ([B, N] discrete (BS, offset) index, [B, N] power split)."""
        levels = len(self.power_levels)
        split = torch.tensor(self.power_levels)[torch.remainder(index, levels)]
        return torch.div(index, levels, rounding_mode="floor"), split

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, F] observations -> :class:`twin.HetNetAction`."""
        with torch.no_grad():
            index = self.q_network(local_features(observation.float(), self.num_bs, self.num_blocks)).argmax(-1)
        discrete, split = self.split(index)
        return to_action(discrete, split, self.num_bs, self.num_offsets, self.num_blocks)


class QMIX:
    """QMIX learner (:class:`agents.marl.training.Learner`); the replay's discrete column holds the full index."""

    def __init__(self, env_config: HetNetConfig, config: QMIXConfig | None = None, seed: int = 0) -> None:
        self.env_config, self.config = env_config, config or QMIXConfig()
        c = self.config
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._policy = QMIXPolicy(env_config.num_bs, env_config.num_blocks, c.hidden, c.num_offsets, c.power_levels)
        self.q_network = self._policy.q_network
        self.mixer = MonotonicMixer(env_config.num_bs, c.mixing_width)
        self.q_target, self.mixer_target = copy.deepcopy(self.q_network), copy.deepcopy(self.mixer)
        self.optimizer = torch.optim.Adam([*self.q_network.parameters(), *self.mixer.parameters()], lr=c.learning_rate)
        self.replay = ReplayBuffer(c.replay_capacity, env_config.num_ues, env_config.observation_size, seed)
        self.num_actions = env_config.num_bs * c.num_offsets * len(c.power_levels)
        self.updates = 0

    def epsilon(self, progress: float) -> float:
        c = self.config
        return linear_epsilon(round(progress * 1_000_000), 1_000_000, c.epsilon_start, c.epsilon_end, c.epsilon_fraction)

    def exploration_done(self, progress: float) -> bool:
        return progress >= self.config.epsilon_fraction

    def _features(self, observation: torch.Tensor) -> torch.Tensor:
        return local_features(observation.float(), self.env_config.num_bs, self.env_config.num_blocks)

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            index = self.q_network(self._features(observation)).argmax(-1)
        random_index = torch.randint(0, self.num_actions, index.shape, generator=self.generator)
        index = torch.where(torch.rand(index.shape, generator=self.generator) < self.epsilon(progress), random_index, index)
        return index, self._policy.split(index)[1]

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        return to_action(self._policy.split(discrete)[0], power_split, self.env_config.num_bs, self.config.num_offsets,
                         self.env_config.num_blocks)

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        self.replay.add(observation, discrete, power_split, outcome.reward, outcome.info["reward_continuous"],
                        outcome.observation)

    def end_episode(self, progress: float) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(progress)}

    def policy(self) -> QMIXPolicy:
        return self._policy

    def learn(self, progress: float) -> dict[str, float]:
        c = self.config
        if len(self.replay) < max(c.learning_starts, c.batch_size):
            return {}
        batch = self.replay.sample(c.batch_size)
        features, next_features = self._features(batch.observation), self._features(batch.next_observation)
        with torch.no_grad():
            next_value = self.q_target(next_features).amax(-1)
            target = batch.reward + c.discount * self.mixer_target(next_value, next_features)
        chosen = torch.gather(self.q_network(features), -1, batch.discrete.unsqueeze(-1)).squeeze(-1)
        q_total = self.mixer(chosen, features)
        loss = nn.functional.smooth_l1_loss(q_total, target)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([*self.q_network.parameters(), *self.mixer.parameters()], c.grad_clip_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % c.target_update_every == 0:
            self.q_target.load_state_dict(self.q_network.state_dict())
            self.mixer_target.load_state_dict(self.mixer.state_dict())
        return detach_metrics({"losses/td": loss, "losses/q_total": q_total.mean()})
