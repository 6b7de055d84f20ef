"""Uniformly random baselines."""

from __future__ import annotations

from typing import Any

import torch

from twin import HetNetAction

from ..policy import Policy

__all__ = ["RandomHetNetPolicy", "RandomPolicy"]


class RandomPolicy(Policy):
    """Every link draws its joint action uniformly from the action set.

    Args:
        num_actions: size of the joint action set (48 for the DTN defaults).
        seed: seed of the policy's own generator (saved with the policy, so a reloaded one continues
            the same sequence).
    """

    name = "random"

    def __init__(self, num_actions: int = 48, seed: int = 0) -> None:
        self.num_actions = int(num_actions)
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        """[B, N, F] observations -> [B, N] int64 actions uniform in 0..num_actions-1."""
        actions = torch.randint(0, self.num_actions, observation.shape[:-1], generator=self._generator)
        return actions.to(observation.device)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_actions": self.num_actions, "seed": self.seed}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])


class RandomHetNetPolicy(Policy):
    """HetNet: uniform association, uniform block and a uniform power split in [0, 1] per UE.

    Args:
        num_bs: K + 1.
        num_blocks: M_b.
        seed: seed of the policy's generator.
    """

    name = "random-hetnet"

    def __init__(self, num_bs: int, num_blocks: int, seed: int = 0) -> None:
        self.num_bs, self.num_blocks, self.seed = int(num_bs), int(num_blocks), int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def act(self, observation: torch.Tensor, state: Any = None) -> HetNetAction:
        """[B, N, F] observations -> :class:`twin.HetNetAction` of [B, N] tensors."""
        shape = observation.shape[:-1]
        gen = self._generator
        action = HetNetAction(association=torch.randint(0, self.num_bs, shape, generator=gen),
                              block=torch.randint(0, self.num_blocks, shape, generator=gen),
                              power_split=torch.rand(shape, generator=gen, dtype=observation.dtype))
        return HetNetAction(*(t.to(observation.device) for t in action))

    def hyper_parameters(self) -> dict[str, Any]:
        return {"num_bs": self.num_bs, "num_blocks": self.num_blocks, "seed": self.seed}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])
