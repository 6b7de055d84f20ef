"""PettingZoo ``ParallelEnv`` adapter: one link-adaptation network (B = 1) for third-party MARL code.

Agents are the links ``"link_0" .. "link_{N-1}"``. Each observes its 6-number local state
(``Box(-inf, inf, (6,), float32)``) and picks one of the 48 joint actions (``Discrete(48)``). All
agents receive the shared reward (sum goodput, Mbit/s). ``infos[agent]`` carries ``scheduled`` (the
transition mask of the slot just played), ``next_scheduled``, ``sinr_db``, ``per`` and ``rate_mbps``.
Episodes end by truncation after ``config.slots_per_episode`` slots; there is no termination.

Requires the optional packages ``pettingzoo`` and ``gymnasium`` (imported when this module is).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from .config import DTNConfig
from .network import LinkAdaptationNetwork

__all__ = ["LinkAdaptationParallelEnv", "parallel_env"]


class LinkAdaptationParallelEnv(ParallelEnv):
    """ParallelEnv over a :class:`twin.LinkAdaptationNetwork` with batch size 1.

    Args:
        config: network parameters.
        network: an existing network of batch size 1 (e.g. :class:`twin.AnalyticPhysical`) instead of
            building one from ``config``.
        render_mode: unused (no rendering); kept for the PettingZoo signature.
    """

    metadata = {"name": "link_adaptation_dtn_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: DTNConfig | None = None, network: LinkAdaptationNetwork | None = None,
                 render_mode: str | None = None) -> None:
        self.network = network or LinkAdaptationNetwork(config or DTNConfig(), batch_size=1)
        if self.network.batch_size != 1:
            raise ValueError("the PettingZoo adapter wraps a single environment (batch_size 1)")
        self.render_mode = render_mode
        self.possible_agents = [f"link_{n}" for n in range(self.network.num_links)]
        self.agents: list[str] = []
        self._observation_space = spaces.Box(-np.inf, np.inf, (self.network.observation_size,), np.float32)
        self._action_space = spaces.Discrete(self.network.num_actions)

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def _split(self, observation: torch.Tensor) -> dict[str, np.ndarray]:
        array = observation[0].detach().cpu().numpy().astype(np.float32)
        return {agent: array[n] for n, agent in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._observation_space.seed(seed)
            self._action_space.seed(seed)
        observation = self.network.reset(seed)
        self.agents = list(self.possible_agents)
        scheduled = self.network.scheduled[0].cpu().numpy()
        infos = {agent: {"next_scheduled": bool(scheduled[n])} for n, agent in enumerate(self.possible_agents)}
        return self._split(observation), infos

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset()")
        # Agents missing from the dict (allowed by the API) play action 0; an idle link ignores it anyway.
        action = torch.tensor([[int(actions.get(agent, 0)) for agent in self.possible_agents]], dtype=torch.int64)
        observation, reward, rate, info = self.network.step(action)
        shared = float(reward[0])
        truncated = bool(info["truncated"][0])
        observations = self._split(observation)
        rewards = {agent: shared for agent in self.agents}
        terminations = {agent: False for agent in self.agents}
        truncations = {agent: truncated for agent in self.agents}
        infos = {}
        for n, agent in enumerate(self.possible_agents):
            infos[agent] = {"scheduled": bool(info["scheduled"][0, n]), "next_scheduled": bool(info["next_scheduled"][0, n]),
                            "sinr_db": float(info["sinr_db"][0, n]), "per": float(info["per"][0, n]),
                            "rate_mbps": float(rate[0, n])}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


def parallel_env(**kwargs) -> LinkAdaptationParallelEnv:
    """PettingZoo-style constructor."""
    return LinkAdaptationParallelEnv(**kwargs)
