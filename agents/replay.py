"""Replay memory shared by the twin and the physical network (Algorithm 2), tagged by source.

A transition is one agent's (s, a, r, s', done) for one slot. For the shared-parameter DQN an agent is a
link, so a slot of B environments with N links yields up to B x N transitions (only the scheduled ones);
for the centralised SADRL agent a slot yields one transition whose state is the whole network's. The
memory stores flat per-agent transitions and so does not depend on the number of links, only on the state
length it was built for.

Every transition carries the source that produced it (:data:`SOURCE_TWIN` or :data:`SOURCE_PHYSICAL`), so
experiments can count, weight or filter the two kinds of experience.

The memory is a ring buffer of fixed capacity (oldest transitions are overwritten first). Sampling is
uniform with replacement-free indices per batch and draws from the memory's own torch generator, so that
checkpointing :meth:`ReplayMemory.state_dict` captures everything needed to continue bit-identically.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SOURCE_NAMES", "SOURCE_PHYSICAL", "SOURCE_TWIN", "ReplayMemory", "TransitionBatch"]

SOURCE_TWIN = 0
"""Source tag of transitions collected in the digital twin."""
SOURCE_PHYSICAL = 1
"""Source tag of transitions collected on the physical network (analytic, simulated radios or hardware)."""
SOURCE_NAMES: tuple[str, ...] = ("twin", "physical")
"""Human-readable name of each source tag, indexed by tag."""

_STATE_FORMAT = 1


class TransitionBatch(NamedTuple):
    """A batch of M transitions; all tensors on the memory's device."""

    state: torch.Tensor
    """[M, S] float32, state s (S = state length)."""
    action: torch.Tensor
    """[M] int64, action taken in s."""
    reward: torch.Tensor
    """[M] float32, reward received (the unit of the environment's reward, e.g. Mbit/s)."""
    next_state: torch.Tensor
    """[M, S] float32, state s' that followed, from the same episode."""
    done: torch.Tensor
    """[M] bool, s' is terminal: no bootstrapping from it."""
    source: torch.Tensor
    """[M] uint8, :data:`SOURCE_TWIN` or :data:`SOURCE_PHYSICAL`."""


class ReplayMemory:
    """Fixed-capacity ring buffer of transitions tagged by source.

    Args:
        capacity: largest number of transitions held (the paper uses 5000).
        state_size: S, length of a state vector (6 for one link; 6 N for a centralised agent).
        seed: seed of the generator that draws sample indices.
        device: where the storage lives.
    """

    def __init__(self, capacity: int, state_size: int, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if state_size < 1:
            raise ValueError(f"state_size must be >= 1, got {state_size}")
        self.capacity = int(capacity)
        self.state_size = int(state_size)
        self.device = torch.device(device)
        self._state = torch.zeros(self.capacity, self.state_size, dtype=torch.float32, device=self.device)
        self._next_state = torch.zeros_like(self._state)
        self._action = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
        self._reward = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
        self._done = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self._source = torch.zeros(self.capacity, dtype=torch.uint8, device=self.device)
        self._position = 0           # next slot to write
        self._size = 0               # slots holding a transition
        self._added = [0, 0]         # transitions ever added, per source
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return self._size

    @property
    def added(self) -> dict[str, int]:
        """Transitions ever added, per source name (not reduced by overwriting)."""
        return {name: count for name, count in zip(SOURCE_NAMES, self._added)}

    def source_counts(self) -> dict[str, int]:
        """Transitions currently held, per source name."""
        held = self._source[: self._size]
        return {name: int((held == tag).sum()) for tag, name in enumerate(SOURCE_NAMES)}

    def add(self, state: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_state: torch.Tensor,
            done: torch.Tensor, source: int) -> int:
        """Append M transitions from one source; the oldest are overwritten once the memory is full.

        Args:
            state: [M, S] float, states s.
            action: [M] int, actions.
            reward: [M] float, rewards.
            next_state: [M, S] float, successor states s'.
            done: [M] bool, terminal flags.
            source: :data:`SOURCE_TWIN` or :data:`SOURCE_PHYSICAL`.

        Returns:
            M, the number of transitions added.
        """
        if source not in (SOURCE_TWIN, SOURCE_PHYSICAL):
            raise ValueError(f"source must be {SOURCE_TWIN} (twin) or {SOURCE_PHYSICAL} (physical), got {source}")
        count = int(action.shape[0])
        if state.shape != (count, self.state_size) or next_state.shape != (count, self.state_size):
            raise ValueError(f"state and next_state must be [{count}, {self.state_size}], got "
                             f"{tuple(state.shape)} and {tuple(next_state.shape)}")
        if reward.shape != (count,) or done.shape != (count,):
            raise ValueError(f"reward and done must be [{count}], got {tuple(reward.shape)} and {tuple(done.shape)}")
        if count == 0:
            return 0
        if count > self.capacity:
            # Only the newest `capacity` of them would survive anyway.
            state, action, reward = state[-self.capacity:], action[-self.capacity:], reward[-self.capacity:]
            next_state, done = next_state[-self.capacity:], done[-self.capacity:]
            self._added[source] += count - self.capacity
            self._position = (self._position + count - self.capacity) % self.capacity
            count = self.capacity
        slots = (self._position + torch.arange(count, device=self.device)) % self.capacity
        self._state[slots] = state.to(self.device, torch.float32)
        self._next_state[slots] = next_state.to(self.device, torch.float32)
        self._action[slots] = action.to(self.device, torch.int64)
        self._reward[slots] = reward.to(self.device, torch.float32)
        self._done[slots] = done.to(self.device, torch.bool)
        self._source[slots] = source
        self._position = (self._position + count) % self.capacity
        self._size = min(self._size + count, self.capacity)
        self._added[source] += count
        return count

    def sample(self, batch_size: int) -> TransitionBatch:
        """Draw ``batch_size`` distinct transitions uniformly (all of them, shuffled, if fewer are held).

        Returns:
            :class:`TransitionBatch` of min(batch_size, len(self)) transitions.
        """
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay memory")
        take = min(int(batch_size), self._size)
        index = torch.randperm(self._size, generator=self._generator, device=self.device)[:take]
        return self._gather(index)

    def transitions(self) -> TransitionBatch:
        """Every held transition, oldest first (for inspection and tests)."""
        if self._size < self.capacity:
            index = torch.arange(self._size, device=self.device)
        else:
            index = (self._position + torch.arange(self.capacity, device=self.device)) % self.capacity
        return self._gather(index)

    def _gather(self, index: torch.Tensor) -> TransitionBatch:
        return TransitionBatch(state=self._state[index], action=self._action[index], reward=self._reward[index],
                               next_state=self._next_state[index], done=self._done[index],
                               source=self._source[index])

    # --- checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue bit-identically: contents, ring position, counters, sampler state.

        Only the filled part of the storage is saved, so an early checkpoint stays small.
        """
        return {
            "format": _STATE_FORMAT,
            "capacity": self.capacity,
            "state_size": self.state_size,
            "position": self._position,
            "size": self._size,
            "added": list(self._added),
            "state": self._state[: self._size].cpu().clone(),
            "next_state": self._next_state[: self._size].cpu().clone(),
            "action": self._action[: self._size].cpu().clone(),
            "reward": self._reward[: self._size].cpu().clone(),
            "done": self._done[: self._size].cpu().clone(),
            "source": self._source[: self._size].cpu().clone(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved; capacity and state size must match."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"unknown replay-memory format {state.get('format')!r}; expected {_STATE_FORMAT}")
        if state["capacity"] != self.capacity or state["state_size"] != self.state_size:
            raise ValueError(f"replay memory of capacity {state['capacity']} and state size {state['state_size']} "
                             f"cannot be loaded into one of capacity {self.capacity} and state size "
                             f"{self.state_size}")
        size = int(state["size"])
        self._state.zero_()
        self._next_state.zero_()
        for name in ("state", "next_state", "action", "reward", "done", "source"):
            getattr(self, f"_{name}")[:size] = state[name].to(self.device)
        self._position = int(state["position"])
        self._size = size
        self._added = [int(v) for v in state["added"]]
        self._generator.set_state(state["generator"])
