"""MADDQN + DMADDPG: joint user association and channel resource scheduling on the HetNet twin.

Two layers act in every slot, both on decentralised per-UE inputs with parameters shared by all UEs (one network
per role, so a UE's decision depends on its observation, not on its index, and the policy runs on any N):

* Discrete layer (MADDQN). Q_i(o_i, a_i) over the (BS, block offset) pairs (see :mod:`agents.marl.common`).
  An aggregation network f turns the chosen local values into Q_tot = sum_i w_i(o) Q_i + V(s), with weights
  w = softmax over agents of a score of each o_i (non-negative, so each agent's greedy action is the greedy joint
  action of Q_tot) and V a value of the pooled observations. Double-Q target:
  y = r + gamma Q_tot^target(s', a') with a'_i = argmax Q_i^online(o'_i, .). Epsilon linear 0.9 -> 0.05 over
  80 % of the steps; the target copy is refreshed every ``target_update_every`` updates.
* Continuous layer (DMADDPG). An actor per UE (shared parameters) maps its local features, its discrete decision of
  the same slot and a scaled dot-product attention context over the users in range to a power split in [0, 1].
  Two centralised critics Q_k(s, a_1..a_N) (a permutation-invariant set network over every UE's features,
  discrete decision and split) are trained on the clipped double-Q target
  y_c = r_c + gamma min_k Q_k^target(s', a'), a' = (the discrete layer's greedy a'_disc, the target actor's split
  plus clipped Gaussian smoothing noise); the actor follows grad of Q_1, every ``policy_delay`` critic updates;
  all targets move by soft updates (tau). Exploration: Gaussian noise on the split.
* Rewards: eq. 10 (throughput, Jain penalty, handover penalty) for the discrete layer; eq. 10 plus the energy-
  efficiency and interference terms (``info['reward_continuous']``) for the continuous layer.

Ablations (config flags): ``double_q=False`` (target actions picked by the target network), ``twin_critic=False``
(one critic, no min), ``attention=False`` (no attention context), ``reward="throughput"`` (sum throughput / X_ref
for both layers).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep

from .common import (ReplayBuffer, UserAttention, check_observation, clipped_double_q_target, decode_discrete,
                     double_q_target, feature_size, linear_epsilon, local_features, mlp, soft_update, to_action)
from .config import HybridActionConfig, require
from .training import detach_metrics

__all__ = ["AgentQNetwork", "AggregationNetwork", "CentralCritic", "CompiledMADDQNDMADDPGPolicy", "MADDQNDMADDPG",
           "MADDQNDMADDPGConfig", "MADDQNDMADDPGPolicy", "PowerActor"]


@dataclass(frozen=True)
class MADDQNDMADDPGConfig(HybridActionConfig):
    """Hyper-parameters of MADDQN + DMADDPG (the shared ones: :class:`agents.marl.config.HybridActionConfig`)."""

    attention: bool = True
    """Scaled dot-product attention front end of the actor (False: the "without attention" ablation)."""
    attention_width: int = 32
    """d: width of the attention's queries, keys and values."""
    double_q: bool = True
    """Double-Q target of the discrete layer (False: the target network picks and values a')."""
    twin_critic: bool = True
    """Two critics and the clipped double-Q target (False: one critic)."""
    reward: str = "eq10"
    """``"eq10"`` (eq. 10 / eq. 10 + EE and interference terms) or ``"throughput"`` (sum throughput / X_ref)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "reward", self.reward in ("eq10", "throughput"), "'eq10' or 'throughput'")
        require(self, "attention_width", not self.attention or self.attention_width >= 1,
                "an integer >= 1 (with attention)")


class AgentQNetwork(nn.Module):
    """Q_i(o_i, .): [B, N, 3J + 3] local features -> [B, N, J O] Q-values (shared by all agents)."""

    def __init__(self, num_bs: int, num_actions: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp([feature_size(num_bs), hidden, hidden, num_actions])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class AggregationNetwork(nn.Module):
    """f: Q_tot = sum_i softmax_i(score(o_i)) Q_i + V(mean_i embed(o_i)).

    Args:
        num_bs: J.
        hidden: width.
    """

    def __init__(self, num_bs: int, hidden: int) -> None:
        super().__init__()
        self.score = mlp([feature_size(num_bs), hidden, 1])
        self.embed = mlp([feature_size(num_bs), hidden], last_activation=True)
        self.value = mlp([hidden, hidden, 1])

    def forward(self, chosen_q: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """[b, N] chosen local values, [b, N, 3J + 3] features -> [b] Q_tot."""
        weights = torch.softmax(self.score(features).squeeze(-1), dim=-1)
        return (weights * chosen_q).sum(-1) + self.value(self.embed(features).mean(1)).squeeze(-1)


def discrete_encoding(discrete: torch.Tensor, num_bs: int, num_offsets: int) -> torch.Tensor:
    """[B, N] discrete indices -> [B, N, J + O] one-hot BS then one-hot offset."""
    association, offset = decode_discrete(discrete, num_offsets)
    return torch.cat([nn.functional.one_hot(association, num_bs), nn.functional.one_hot(offset, num_offsets)],
                     dim=-1).float()


class PowerActor(nn.Module):
    """mu(o_i, a_i^disc, attention context) -> power split in [0, 1] (shared by all agents).

    Args:
        num_bs, num_offsets: J, O.
        hidden: width.
        attention_width: d, or 0 for no attention front end.
    """

    def __init__(self, num_bs: int, num_offsets: int, hidden: int, attention_width: int) -> None:
        super().__init__()
        self.num_bs, self.num_offsets = num_bs, num_offsets
        self.attention = UserAttention(num_bs, attention_width) if attention_width else None
        size = feature_size(num_bs) + num_bs + num_offsets + attention_width
        self.net = mlp([size, hidden, hidden, 1])

    def forward(self, observation: torch.Tensor, features: torch.Tensor, discrete: torch.Tensor) -> torch.Tensor:
        """[B, N, F] observations, [B, N, 3J + 3] features, [B, N] discrete indices -> [B, N] splits in [0, 1]."""
        parts = [features, discrete_encoding(discrete, self.num_bs, self.num_offsets)]
        if self.attention is not None:
            parts.append(self.attention(observation))
        return torch.sigmoid(self.net(torch.cat(parts, dim=-1)).squeeze(-1))


class CentralCritic(nn.Module):
    """Q(s, a_1..a_N) = mean_i g(e_i, mean_j e_j), e_i = h(o_i, a_i^disc, s_i): centralised and permutation-invariant.

    Args:
        num_bs, num_offsets: J, O.
        hidden: width.
    """

    def __init__(self, num_bs: int, num_offsets: int, hidden: int) -> None:
        super().__init__()
        self.num_bs, self.num_offsets = num_bs, num_offsets
        self.embed = mlp([feature_size(num_bs) + num_bs + num_offsets + 1, hidden, hidden], last_activation=True)
        self.head = mlp([2 * hidden, hidden, 1])

    def forward(self, features: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor) -> torch.Tensor:
        """[b, N, 3J + 3], [b, N] int64, [b, N] float -> [b] Q."""
        e = self.embed(torch.cat([features, discrete_encoding(discrete, self.num_bs, self.num_offsets),
                                  power_split.unsqueeze(-1)], dim=-1))
        pooled = e.mean(1, keepdim=True).expand_as(e)
        return self.head(torch.cat([e, pooled], dim=-1)).squeeze(-1).mean(-1)


class MADDQNDMADDPGPolicy(Policy):
    """The trained MADDQN-DMADDPG policy: greedy Q_i for the discrete decisions, the actor for the split.

    Args:
        num_bs: J = K + 1.
        num_blocks: M_b of the network it acts on (the networks do not depend on it).
        hidden, num_offsets, attention_width: as in :class:`MADDQNDMADDPGConfig` (attention_width 0: none).
    """

    name = "maddqn-dmaddpg"

    def __init__(self, num_bs: int, num_blocks: int, hidden: int = 64, num_offsets: int = 4,
                 attention_width: int = 32) -> None:
        if num_bs < 2 or num_blocks < 1:
            raise ValueError(f"num_bs must be >= 2 and num_blocks >= 1, got {num_bs}, {num_blocks}")
        self.num_bs, self.num_blocks = int(num_bs), int(num_blocks)
        self.hidden, self.num_offsets, self.attention_width = int(hidden), int(num_offsets), int(attention_width)
        self.q_network = AgentQNetwork(num_bs, num_bs * num_offsets, hidden)
        self.actor = PowerActor(num_bs, num_offsets, hidden, attention_width)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "hidden": self.hidden,
                "num_offsets": self.num_offsets, "attention_width": self.attention_width}

    def state_dict(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict(), "actor": self.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.actor.load_state_dict(state["actor"])

    def decide(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N, F] observations -> ([B, N] greedy discrete indices, [B, N] splits)."""
        with torch.no_grad():
            return _greedy(self.q_network, self.actor, observation.float(), self.num_bs, self.num_blocks)

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, 2(K+1)+3] observations -> :class:`twin.HetNetAction` ([B, N] tensors)."""
        discrete, split = self.decide(observation)
        return to_action(discrete, split, self.num_bs, self.num_offsets, self.num_blocks)

    def compiled(self) -> "CompiledMADDQNDMADDPGPolicy":
        """A deployment copy of the current weights whose whole decision is one ``torch.compile`` graph."""
        return CompiledMADDQNDMADDPGPolicy(**self.hyper_parameters(), state=self.state_dict())


def _greedy(q_network: AgentQNetwork, actor: PowerActor, observation: torch.Tensor, num_bs: int,
            num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, N, F] float observations -> ([B, N] greedy discrete indices, [B, N] splits)."""
    features = local_features(observation, num_bs, num_blocks)
    discrete = q_network(features).argmax(-1)
    return discrete, actor(observation, features, discrete)


class _Decision(nn.Module):
    """The greedy decision of a :class:`MADDQNDMADDPGPolicy`, observation to action, as one module."""

    def __init__(self, policy: MADDQNDMADDPGPolicy) -> None:
        super().__init__()
        self.q_network, self.actor = policy.q_network, policy.actor
        self.num_bs, self.num_offsets, self.num_blocks = policy.num_bs, policy.num_offsets, policy.num_blocks

    def forward(self, observation: torch.Tensor) -> HetNetAction:
        discrete, split = _greedy(self.q_network, self.actor, observation, self.num_bs, self.num_blocks)
        return to_action(discrete, split, self.num_bs, self.num_offsets, self.num_blocks)


class CompiledMADDQNDMADDPGPolicy(Policy):
    """:class:`MADDQNDMADDPGPolicy`'s decisions from one ``torch.compile`` graph (N kept symbolic).

    At these network sizes most of an eager decision's time is the Python and dispatch cost of its ~45 small tensor
    operations; the compiled graph fuses them. The same actions as the eager policy up to float rounding of the
    power split. The first decision compiles (seconds; needs the C++ compiler torch's inductor uses). A snapshot:
    build a new one after further training; ``state_dict`` and ``save`` keep the eager weights.

    Args:
        num_bs, num_blocks, hidden, num_offsets, attention_width: as :class:`MADDQNDMADDPGPolicy`.
        state: :meth:`MADDQNDMADDPGPolicy.state_dict` of the weights (default: a fresh initialisation).
    """

    name = "maddqn-dmaddpg"

    def __init__(self, num_bs: int, num_blocks: int, hidden: int = 64, num_offsets: int = 4,
                 attention_width: int = 32, state: dict[str, Any] | None = None) -> None:
        self._eager = MADDQNDMADDPGPolicy(num_bs, num_blocks, hidden, num_offsets, attention_width)
        if state is not None:
            self._eager.load_state_dict(state)
        self._graph = torch.compile(_Decision(self._eager).eval(), dynamic=True)

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, 2(K+1)+3] observations -> :class:`twin.HetNetAction` ([B, N] tensors)."""
        check_observation(observation, self._eager.num_bs)
        with torch.no_grad():
            return self._graph(observation.float())

    def hyper_parameters(self) -> dict[str, Any]:
        return self._eager.hyper_parameters()

    def state_dict(self) -> dict[str, Any]:
        return self._eager.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._eager.load_state_dict(state)


class MADDQNDMADDPG:
    """The learner (see the module docstring); implements :class:`agents.marl.training.Learner`.

    Args:
        env_config: the HetNet it trains on.
        config: hyper-parameters.
        seed: seeds the networks' initialisation, exploration and replay sampling.
    """

    def __init__(self, env_config: HetNetConfig, config: MADDQNDMADDPGConfig | None = None, seed: int = 0) -> None:
        self.env_config = env_config
        self.config = config = config or MADDQNDMADDPGConfig()
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        j, o = env_config.num_bs, config.num_offsets
        self.num_actions = j * o
        self._policy = MADDQNDMADDPGPolicy(j, env_config.num_blocks, config.hidden, o,
                                           config.attention_width if config.attention else 0)
        self.q_network = self._policy.q_network
        self.actor = self._policy.actor
        self.aggregation = AggregationNetwork(j, config.hidden)
        self.q_target = copy.deepcopy(self.q_network)
        self.aggregation_target = copy.deepcopy(self.aggregation)
        self.q_optimizer = torch.optim.Adam([*self.q_network.parameters(), *self.aggregation.parameters()],
                                            lr=config.q_learning_rate)
        self.critics = nn.ModuleList([CentralCritic(j, o, config.hidden) for _ in range(2 if config.twin_critic else 1)])
        self.critic_targets = copy.deepcopy(self.critics)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=config.critic_learning_rate)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_learning_rate)
        self.replay = ReplayBuffer(config.replay_capacity, env_config.num_ues, env_config.observation_size, seed)
        self.updates = 0

    _MODULES = ("q_network", "actor", "aggregation", "q_target", "aggregation_target", "critics", "critic_targets",
                "actor_target", "q_optimizer", "critic_optimizer", "actor_optimizer", "replay")

    def state_dict(self) -> dict[str, Any]:
        """Everything training continues from: networks, targets, optimisers, replay memory, update count and the
        exploration generator's state (a run resumed from it continues bit-identically on CPU)."""
        state: dict[str, Any] = {name: getattr(self, name).state_dict() for name in self._MODULES}
        state.update(updates=self.updates, generator=self.generator.get_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same network and hyper-parameters)."""
        for name in self._MODULES:
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])

    # --- acting -------------------------------------------------------------------------------------
    def epsilon(self, progress: float) -> float:
        """Exploration probability at training progress ``progress`` in [0, 1]."""
        c = self.config
        return linear_epsilon(round(progress * 1_000_000), 1_000_000, c.epsilon_start, c.epsilon_end,
                              c.epsilon_fraction)

    def exploration_done(self, progress: float) -> bool:
        return progress >= self.config.epsilon_fraction

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        discrete, split = self._policy.decide(observation)
        random_action = torch.randint(0, self.num_actions, discrete.shape, generator=self.generator)
        explore = torch.rand(discrete.shape, generator=self.generator) < self.epsilon(progress)
        discrete = torch.where(explore, random_action, discrete)
        with torch.no_grad():
            features = local_features(observation.float(), self.env_config.num_bs, self.env_config.num_blocks)
            split = self.actor(observation.float(), features, discrete)
        noise = self.config.exploration_noise * torch.randn(split.shape, generator=self.generator)
        return discrete, (split + noise).clamp(0.0, 1.0)

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        return to_action(discrete, power_split, self.env_config.num_bs, self.config.num_offsets,
                         self.env_config.num_blocks)

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        if self.config.reward == "throughput":
            reward = outcome.info["sum_throughput_mbps"] / self.env_config.throughput_scale_mbps
            reward_continuous = reward
        else:
            reward, reward_continuous = outcome.reward, outcome.info["reward_continuous"]
        self.replay.add(observation, discrete, power_split, reward, reward_continuous, outcome.observation)

    def policy(self) -> MADDQNDMADDPGPolicy:
        return self._policy

    def end_episode(self, progress: float) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(progress)}

    # --- learning -----------------------------------------------------------------------------------
    def learn(self, progress: float) -> dict[str, float]:
        c = self.config
        if len(self.replay) < max(c.learning_starts, c.batch_size):
            return {}
        batch = self.replay.sample(c.batch_size)
        j, m_b = self.env_config.num_bs, self.env_config.num_blocks
        features = local_features(batch.observation, j, m_b)
        next_features = local_features(batch.next_observation, j, m_b)
        metrics = self._update_discrete(batch, features, next_features)
        metrics.update(self._update_continuous(batch, features, next_features))
        self.updates += 1
        if self.updates % c.target_update_every == 0:
            self.q_target.load_state_dict(self.q_network.state_dict())
            self.aggregation_target.load_state_dict(self.aggregation.state_dict())
        return metrics

    def _update_discrete(self, batch, features: torch.Tensor, next_features: torch.Tensor) -> dict[str, float]:
        c = self.config
        with torch.no_grad():
            target_next_q = self.q_target(next_features)
            online_next_q = self.q_network(next_features) if c.double_q else target_next_q
            target = double_q_target(batch.reward, c.discount, online_next_q, target_next_q,
                                     lambda chosen: self.aggregation_target(chosen, next_features))
        q = self.q_network(features)
        chosen = torch.gather(q, -1, batch.discrete.unsqueeze(-1)).squeeze(-1)
        q_total = self.aggregation(chosen, features)
        loss = nn.functional.smooth_l1_loss(q_total, target)
        self.q_optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([*self.q_network.parameters(), *self.aggregation.parameters()], c.grad_clip_norm)
        self.q_optimizer.step()
        return detach_metrics({"losses/td": loss, "losses/q_total": q_total.mean()})

    def _update_continuous(self, batch, features: torch.Tensor, next_features: torch.Tensor) -> dict[str, float]:
        c = self.config
        with torch.no_grad():
            next_discrete = self.q_network(next_features).argmax(-1)
            next_split = self.actor_target(batch.next_observation, next_features, next_discrete)
            smoothing = (c.target_noise * torch.randn(next_split.shape, generator=self.generator)).clamp(
                -c.target_noise_clip, c.target_noise_clip)
            next_split = (next_split + smoothing).clamp(0.0, 1.0)
            values = [critic(next_features, next_discrete, next_split) for critic in self.critic_targets]
            if len(values) == 2:
                target = clipped_double_q_target(batch.reward_continuous, c.discount, values[0], values[1])
            else:
                target = batch.reward_continuous + c.discount * values[0]
        estimates = [critic(features, batch.discrete, batch.power_split) for critic in self.critics]
        critic_loss = sum(nn.functional.mse_loss(q, target) for q in estimates)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critics.parameters(), c.grad_clip_norm)
        self.critic_optimizer.step()
        metrics = {"losses/critic": critic_loss, "losses/q_continuous": estimates[0].mean()}
        if self.updates % c.policy_delay == 0:
            split = self.actor(batch.observation, features, batch.discrete)
            actor_loss = -self.critics[0](features, batch.discrete, split).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip_norm)
            self.actor_optimizer.step()
            soft_update(self.actor_target, self.actor, c.tau)
            soft_update(self.critic_targets, self.critics, c.tau)
            metrics["losses/actor"] = actor_loss
        return detach_metrics(metrics)
