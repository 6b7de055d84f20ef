"""Parts shared by the HetNet multi-agent learners: features, action coding, attention, replay, targets.

Agents are the UEs. Each UE's discrete decision is a pair (serving BS j, block offset o) coded as one index
``j * num_offsets + o``; its continuous decision is the power split s in [0, 1] of :class:`twin.HetNetAction`.

Block offsets. A UE does not name a block directly: a BS numbers the UEs that chose the same offset in UE index
order (rank r = 0, 1, ...) and UE n with offset o gets block (r + o M_b / O) mod M_b. UEs of one BS with one
offset therefore never share a block until there are more of them than blocks, whatever the policy, while the
offset still places each UE in the band (e.g. macro users low, small-cell users high, so that the two tiers do
not interfere). A decentralised policy that named blocks directly would map identical observations to one block
and pile every user onto it. The offset code keeps the networks' sizes independent of N and M, so one trained
policy runs on every network size and every number of sub-channels.

Per-UE features (``local_features``): the environment's observation (F = 2(K+1) + 3: SNR per BS, one-hot of the
current association, last rate over minimum rate, mobility, buffer) followed by the load of every BS, UEs per
block (K+1 numbers, broadcast by the BSs). Attention keys and values use each UE's CSI and past-rate features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from twin import HetNetAction

__all__ = ["ReplayBuffer", "SlotBatch", "UserAttention", "block_from_offset", "check_observation",
           "clipped_double_q_target", "decode_discrete", "double_q_target", "encode_discrete", "feature_size",
           "linear_epsilon", "local_features", "mlp", "soft_update", "user_features", "user_feature_size",
           "in_range_mask"]


def feature_size(num_bs: int) -> int:
    """Length of :func:`local_features`' last dimension: the observation (2J + 3) plus J loads."""
    return 3 * num_bs + 3


def user_feature_size(num_bs: int) -> int:
    """Length of :func:`user_features`' last dimension: J SNRs, rate ratio, mobility."""
    return num_bs + 2


def check_observation(observation: torch.Tensor, num_bs: int) -> None:
    """ValueError unless ``observation`` is [..., B, N, 2J + 3] (J = ``num_bs``), naming the shape it has."""
    if observation.dim() < 3 or observation.shape[-1] != 2 * num_bs + 3:
        raise ValueError(f"observation must be [..., B, N, {2 * num_bs + 3}] for {num_bs} BSs, "
                         f"got {list(observation.shape)}")


def current_association(observation: torch.Tensor, num_bs: int) -> torch.Tensor:
    """[B, N, F] observations -> [B, N] int64 BS each UE is attached to (from the one-hot columns)."""
    return observation[..., num_bs:2 * num_bs].argmax(-1)


def local_features(observation: torch.Tensor, num_bs: int, num_blocks: int) -> torch.Tensor:
    """Per-UE input of the agents' networks.

    Args:
        observation: [..., B, N, 2J + 3] float, :meth:`twin.HetNetwork.observe`'s output (leading dimensions
            allowed, e.g. [T, B, N, F] for a rollout).
        num_bs: J = K + 1.
        num_blocks: M_b, to express each BS's load in UEs per block.

    Returns:
        [..., B, N, 3J + 3] float: the observation, then the UEs per block of every BS (clipped to 10).
    """
    check_observation(observation, num_bs)
    counts = observation[..., num_bs:2 * num_bs].sum(-2, keepdim=True)                     # [..., B, 1, J]
    load = (counts / num_blocks).clamp(max=10.0).expand(*observation.shape[:-1], num_bs)
    return torch.cat([observation, load], dim=-1)


def user_features(observation: torch.Tensor, num_bs: int) -> torch.Tensor:
    """[B, N, 2J + 3] observations -> [B, N, J + 2] CSI (SNR per BS) and past-rate features (rate ratio, mobility)."""
    return torch.cat([observation[..., :num_bs], observation[..., 2 * num_bs:2 * num_bs + 2]], dim=-1)


def in_range_mask(observation: torch.Tensor, num_bs: int) -> torch.Tensor:
    """[B, N, N] bool, True where UE m (column) is in range of UE n (row): both attached to the same BS.

    The diagonal is always True, so every row has at least one user to attend to.
    """
    association = current_association(observation, num_bs)
    return association.unsqueeze(2) == association.unsqueeze(1)


def encode_discrete(association: torch.Tensor, offset: torch.Tensor, num_offsets: int) -> torch.Tensor:
    """[B, N] BS and [B, N] offset -> [B, N] int64 discrete action index j * O + o."""
    return association * num_offsets + offset


def decode_discrete(index: torch.Tensor, num_offsets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, N] discrete action index -> ([B, N] BS, [B, N] offset)."""
    return torch.div(index, num_offsets, rounding_mode="floor"), torch.remainder(index, num_offsets)


def block_from_offset(association: torch.Tensor, offset: torch.Tensor, num_bs: int, num_offsets: int,
                      num_blocks: int) -> torch.Tensor:
    """Blocks of the offset code (module docstring).

    Args:
        association: [B, N] int64 in [0, J).
        offset: [B, N] int64 in [0, O).
        num_bs, num_offsets, num_blocks: J, O, M_b.

    Returns:
        [B, N] int64 blocks in [0, M_b): (rank of the UE among those with the same BS and offset + o M_b / O)
        mod M_b.
    """
    group = association * num_offsets + offset
    one_hot = torch.nn.functional.one_hot(group, num_bs * num_offsets)
    rank = torch.gather(one_hot.cumsum(1), 2, group.unsqueeze(-1)).squeeze(-1) - 1
    start = torch.div(offset * num_blocks, num_offsets, rounding_mode="floor")
    return torch.remainder(rank + start, num_blocks)


def to_action(discrete: torch.Tensor, power_split: torch.Tensor, num_bs: int, num_offsets: int,
              num_blocks: int) -> HetNetAction:
    """[B, N] discrete indices and [B, N] splits -> :class:`twin.HetNetAction`."""
    association, offset = decode_discrete(discrete, num_offsets)
    block = block_from_offset(association, offset, num_bs, num_offsets, num_blocks)
    return HetNetAction(association=association, block=block, power_split=power_split.clamp(0.0, 1.0))


def mlp(sizes: Iterable[int], activation: type[nn.Module] = nn.ReLU, last_activation: bool = False) -> nn.Sequential:
    """Fully connected layers of the given widths (input first), ``activation`` between them."""
    sizes = list(sizes)
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2 or last_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


class UserAttention(nn.Module):
    """Scaled dot-product attention over the users in range (same serving BS).

    Query: the UE's own user features; keys and values: the user features (CSI, past rate) of the users in range.

    Args:
        num_bs: J.
        width: d, size of queries, keys, values and of the output.
    """

    def __init__(self, num_bs: int, width: int = 32) -> None:
        super().__init__()
        self.num_bs = int(num_bs)
        self.width = int(width)
        size = user_feature_size(num_bs)
        # One projection for query, key and value: a single matrix product per call.
        self.projection = nn.Linear(size, 3 * width)

    def forward(self, observation: torch.Tensor, return_weights: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """[B, N, 2J + 3] observations -> [B, N, d] context (and [B, N, N] weights, rows sum to 1, 0 out of range)."""
        query, key, value = self.projection(user_features(observation, self.num_bs)).chunk(3, dim=-1)
        mask = in_range_mask(observation, self.num_bs)
        if not return_weights:
            # One fused multiply-add of the scores onto an additive mask, then softmax and the values: the same
            # numbers as scaled_dot_product_attention with the boolean mask to float rounding, and faster on one CPU
            # thread at these sizes (bench/bench_marl.py, attention_n200).
            shape = query.shape
            bias = torch.where(mask, 0.0, float("-inf")).to(query.dtype).reshape(-1, shape[-2], shape[-2])
            scores = torch.baddbmm(bias, query.reshape(-1, shape[-2], shape[-1]),
                                   key.reshape(-1, shape[-2], shape[-1]).transpose(-2, -1),
                                   alpha=1.0 / math.sqrt(self.width))
            return (torch.softmax(scores, dim=-1) @ value.reshape(-1, shape[-2], shape[-1])).reshape(shape)
        scores = query @ key.transpose(-2, -1) / math.sqrt(self.width)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return weights @ value, weights


def linear_epsilon(step: int, total_steps: int, start: float = 0.9, end: float = 0.05,
                   fraction: float = 0.8) -> float:
    """Exploration probability at ``step``: linear from ``start`` to ``end`` over ``fraction`` of ``total_steps``,
    then ``end``."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    span = max(1.0, fraction * total_steps)
    return end + (start - end) * max(0.0, 1.0 - step / span)


def double_q_target(reward: torch.Tensor, discount: float, online_next_q: torch.Tensor, target_next_q: torch.Tensor,
                    aggregate: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Multi-agent double-Q target y = r + gamma Q_tot^target(s', a') with a'_i = argmax_a Q_i^online(o'_i, a).

    Args:
        reward: [b] float team reward.
        discount: gamma.
        online_next_q: [b, N, A] online per-agent Q-values at the next observations (pick the actions).
        target_next_q: [b, N, A] target per-agent Q-values at the next observations (value the actions).
        aggregate: the target aggregation network, [b, N] chosen per-agent values -> [b] Q_tot.

    Returns:
        [b] float targets (no gradient).
    """
    with torch.no_grad():
        chosen = online_next_q.argmax(-1, keepdim=True)
        value = torch.gather(target_next_q, -1, chosen).squeeze(-1)
        return reward + discount * aggregate(value)


def clipped_double_q_target(reward: torch.Tensor, discount: float, q1_next: torch.Tensor,
                            q2_next: torch.Tensor) -> torch.Tensor:
    """Twin-critic target y = r + gamma min(Q1'(s', a'), Q2'(s', a')); all [b] float."""
    with torch.no_grad():
        return reward + discount * torch.minimum(q1_next, q2_next)


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau online, parameter by parameter."""
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters()):
            t.lerp_(o, tau)


@dataclass
class SlotBatch:
    """A sample of slots from :class:`ReplayBuffer` (b slots, N agents)."""

    observation: torch.Tensor
    """[b, N, F] float."""
    discrete: torch.Tensor
    """[b, N] int64 discrete action indices."""
    power_split: torch.Tensor
    """[b, N] float in [0, 1]."""
    reward: torch.Tensor
    """[b] float, discrete layer's reward."""
    reward_continuous: torch.Tensor
    """[b] float, continuous layer's reward."""
    next_observation: torch.Tensor
    """[b, N, F] float."""


class ReplayBuffer:
    """Ring buffer of whole slots (every agent's observation and action of one network in one slot).

    Episodes end by a time limit, never in a terminal state, so every transition bootstraps.

    Args:
        capacity: slots held.
        num_agents: N.
        observation_size: F.
        seed: seed of the sampling generator.
    """

    def __init__(self, capacity: int, num_agents: int, observation_size: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.observation = torch.zeros(capacity, num_agents, observation_size)
        self.next_observation = torch.zeros(capacity, num_agents, observation_size)
        self.discrete = torch.zeros(capacity, num_agents, dtype=torch.long)
        self.power_split = torch.zeros(capacity, num_agents)
        self.reward = torch.zeros(capacity)
        self.reward_continuous = torch.zeros(capacity)
        self.size = 0
        self._next = 0
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor, reward: torch.Tensor,
            reward_continuous: torch.Tensor, next_observation: torch.Tensor) -> None:
        """Store B slots: [B, N, F], [B, N], [B, N], [B], [B], [B, N, F]."""
        count = observation.shape[0]
        index = (self._next + torch.arange(count)) % self.capacity
        self.observation[index] = observation.float()
        self.discrete[index] = discrete
        self.power_split[index] = power_split.float()
        self.reward[index] = reward.float()
        self.reward_continuous[index] = reward_continuous.float()
        self.next_observation[index] = next_observation.float()
        self._next = (self._next + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def state_dict(self) -> dict[str, Any]:
        """The stored slots (the filled part only), the write position and the sampling generator's state."""
        filled = slice(0, self.size)
        return {"observation": self.observation[filled].clone(), "next_observation": self.next_observation[filled].clone(),
                "discrete": self.discrete[filled].clone(), "power_split": self.power_split[filled].clone(),
                "reward": self.reward[filled].clone(), "reward_continuous": self.reward_continuous[filled].clone(),
                "size": self.size, "next": self._next, "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same capacity, N and F)."""
        size = int(state["size"])
        if size > self.capacity or tuple(state["observation"].shape[1:]) != tuple(self.observation.shape[1:]):
            raise ValueError(f"replay state of {size} slots of shape {tuple(state['observation'].shape[1:])} does not "
                             f"fit this buffer ({self.capacity} slots of shape {tuple(self.observation.shape[1:])})")
        for name in ("observation", "next_observation", "discrete", "power_split", "reward", "reward_continuous"):
            getattr(self, name)[:size] = state[name]
        self.size, self._next = size, int(state["next"])
        self._generator.set_state(state["generator"])

    def sample(self, batch_size: int) -> SlotBatch:
        """``batch_size`` slots drawn uniformly with replacement."""
        index = torch.randint(0, self.size, (batch_size,), generator=self._generator)
        return SlotBatch(self.observation[index], self.discrete[index], self.power_split[index], self.reward[index],
                         self.reward_continuous[index], self.next_observation[index])
