"""SADRL: one centralised DQN agent that picks the joint action of every link (small networks only).

The centralised agent sees the concatenated local states of all N links (6 N numbers) and chooses one of
A^N joint actions (A = 48 per link), which it decodes into one action per link. It learns from the shared
reward (sum goodput), one transition per network and slot. The action space grows as 48^N, so it is
only built for networks whose joint action count stays below :data:`MAX_JOINT_ACTIONS` (N <= 3 with 48
actions per link); that is the point of the comparison with the shared multi-agent DQN, which scales.

It reuses the shared-DQN learner of :mod:`agents.dqn` and the Algorithm 2 trainer of :mod:`agents.continual`
through a different agent view::

    view = JointActionView(num_links=3, link_actions=48, link_state_size=6)
    trainer = ContinualTrainer(config, twin, physical, view=view)
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from agents.dqn import DQNPolicy, QNetwork
from twin.network import StepResult

__all__ = ["MAX_JOINT_ACTIONS", "JointActionView", "SADRLPolicy", "decode_joint_action", "encode_joint_action"]

MAX_JOINT_ACTIONS = 1 << 17
"""Largest joint action set SADRL builds (48^3 = 110592 fits; 48^4 does not)."""


def decode_joint_action(joint: torch.Tensor, num_links: int, link_actions: int) -> torch.Tensor:
    """[B] int64 joint actions -> [B, N] per-link actions (link 0 is the most significant digit)."""
    powers = link_actions ** torch.arange(num_links - 1, -1, -1, device=joint.device)
    return torch.div(joint.unsqueeze(-1), powers, rounding_mode="floor") % link_actions


def encode_joint_action(actions: torch.Tensor, link_actions: int) -> torch.Tensor:
    """[B, N] int64 per-link actions -> [B] joint actions (inverse of :func:`decode_joint_action`)."""
    num_links = actions.shape[-1]
    powers = link_actions ** torch.arange(num_links - 1, -1, -1, device=actions.device)
    return (actions * powers).sum(dim=-1)


class SADRLPolicy(DQNPolicy):
    """Greedy centralised policy: one Q-network over the whole network's state and joint action.

    Args:
        num_links: N.
        link_actions: A, actions per link (48).
        other arguments: as :class:`agents.dqn.DQNPolicy` (state_size = 6 N, num_actions = A^N).
    """

    name = "sadrl"

    def __init__(self, state_size: int = 12, num_actions: int = 48 ** 2, hidden_sizes: Any = (64, 128),
                 activation: str = "tanh", metadata: Mapping[str, Any] | None = None, num_links: int = 2,
                 link_actions: int = 48) -> None:
        if link_actions ** num_links != num_actions:
            raise ValueError(f"num_actions={num_actions} must equal link_actions ** num_links = "
                             f"{link_actions ** num_links}")
        super().__init__(state_size, num_actions, hidden_sizes, activation, metadata)
        self.num_links = int(num_links)
        self.link_actions = int(link_actions)

    @torch.no_grad()
    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        """[B, N, 6] float states -> [B, N] int64 per-link actions."""
        device = next(self.q_network.parameters()).device
        flat = observation.to(device, torch.float32).reshape(observation.shape[0], -1)
        joint = self.q_network(flat).argmax(dim=-1)
        return decode_joint_action(joint, self.num_links, self.link_actions).to(observation.device)

    def hyper_parameters(self) -> dict[str, Any]:
        return {**super().hyper_parameters(), "num_links": self.num_links, "link_actions": self.link_actions}


class JointActionView:
    """The whole network is one agent: state [6 N], joint action in 0..A^N - 1, one transition per slot.

    Args:
        num_links: N.
        link_actions: A, actions per link (48).
        link_state_size: length of one link's state (6).
    """

    def __init__(self, num_links: int, link_actions: int, link_state_size: int) -> None:
        joint = link_actions ** num_links
        if joint > MAX_JOINT_ACTIONS:
            raise ValueError(f"SADRL with {num_links} links of {link_actions} actions needs {joint} joint actions; "
                             f"allowed: at most {MAX_JOINT_ACTIONS} (e.g. N <= 3 with 48 actions per link)")
        self.num_links = int(num_links)
        self.link_actions = int(link_actions)
        self.state_size = int(num_links * link_state_size)
        self.num_actions = int(joint)

    def states(self, observation: torch.Tensor) -> torch.Tensor:
        """[B, N, S] -> [B, N S]."""
        return observation.reshape(observation.shape[0], -1)

    def env_action(self, actions: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
        """[B] joint actions -> [B, N] per-link actions."""
        return decode_joint_action(actions, self.num_links, self.link_actions)

    def transition_mask(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B] bool: the slot is a transition when at least one link transmitted."""
        return info["scheduled"].any(dim=-1)

    def rewards(self, result: StepResult) -> torch.Tensor:
        """[B] shared reward (sum goodput, Mbit/s)."""
        return result.reward

    def agent_flags(self, flags: torch.Tensor, num_links: int) -> torch.Tensor:
        """[B] per-network flags are already per agent."""
        return flags

    def policy(self, q_network: QNetwork, metadata: Mapping[str, Any]) -> SADRLPolicy:
        """The greedy centralised policy of a trained network."""
        return SADRLPolicy.from_network(q_network, metadata, num_links=self.num_links,  # type: ignore[return-value]
                                        link_actions=self.link_actions)

