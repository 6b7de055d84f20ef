"""Shared-parameter DQN link adaptation and its continual twin/physical trainer (Algorithm 2).

Every IoT link is an agent that picks a joint action (transmit power x modulation x code rate, 48 values)
from its 6-number local state. All links share one Q-network (centralised training, decentralised
execution): the same state gives the same Q-values whichever link holds it. Training alternates between
the digital twin and the physical network: episode i runs on the physical network when i is a multiple of
``Z_k`` (``ota_every``) and in the twin otherwise; both feed one replay memory whose transitions are tagged
by source. The file reads top to bottom:

1. :class:`DQNConfig`, every hyper-parameter with its meaning and the paper's value;
2. :class:`QNetwork`, its optimiser (:class:`RMSprop`) and the epsilon / learning-rate schedules;
3. :class:`DQNAgent`: acting, the TD update, the target copy;
4. :class:`DQNPolicy`: the greedy policy with act / save / load;
5. agent views: how a slot of B networks x N links turns into agent transitions (:class:`SharedLinkView`
   here; the centralised joint-action view lives in :mod:`agents.sadrl`);
6. the physical side: the :class:`PhysicalNetwork` contract (``twin.network``'s reset/step), the optional hooks
   (``measured_phi()``, ``context_network``, ``state_dict()``/``load_state_dict()``) and
   :class:`AnalyticPhiProbe`, which gives the analytic physical network the ``measured_phi`` hook;
7. :class:`ContinualTrainer`: Algorithm 2, metrics, checkpoint and resume, evaluation.

Units: rewards and rates in Mbit/s (the environment's), learning rate per gradient step, time in slots.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from agents.checkpoint import atomic_save, capture_rng_states, load_checkpoint, restore_rng_states
from agents.policy import Policy
from agents.replay import SOURCE_PHYSICAL, SOURCE_TWIN, ReplayMemory, TransitionBatch
from twin.config import DTNConfig, decode_action
from twin.network import LinkAdaptationNetwork, PhysicalNetwork, StepResult, evaluate_slot

__all__ = [
    "CHECKPOINT_FORMAT",
    "AnalyticPhiProbe",
    "ContinualTrainer",
    "DQNAgent",
    "DQNConfig",
    "DQNPolicy",
    "EvaluationResult",
    "PhiReporter",
    "PhysicalNetwork",
    "QNetwork",
    "RMSprop",
    "SharedLinkView",
    "decayed_value",
    "episode_seed",
    "evaluate_policy",
    "mirror_twin",
]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout written by :meth:`ContinualTrainer.save_checkpoint`."""


# =====================================================================================================
# 1. Configuration
# =====================================================================================================

@dataclass(frozen=True)
class DQNConfig:
    """Hyper-parameters of the shared DQN and of the continual trainer (paper values by default)."""

    # --- network ------------------------------------------------------------------------------------
    hidden_sizes: tuple[int, ...] = (64, 128)
    """Widths of the hidden layers of the Q-network (the paper: 64 then 128)."""
    activation: str = "tanh"
    """Hidden-layer activation: ``"tanh"`` (the paper) or ``"relu"``."""

    # --- optimiser and its schedule -----------------------------------------------------------------
    learning_rate: float = 5e-3
    """Initial RMSprop learning rate."""
    learning_rate_decay: float = 1e-3
    """The learning rate is multiplied by (1 - learning_rate_decay) once per ``learning_rate_decay_unit``."""
    learning_rate_decay_unit: str = "episode"
    """When the learning rate decays: ``"episode"`` (default: after 2000 episodes it is still 13.5 % of its
    start, whereas per slot it would vanish after a few thousand slots) or ``"step"`` (every slot)."""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant of the squared-gradient average."""
    rmsprop_eps: float = 1e-8
    """RMSprop term added to the denominator for numerical stability."""
    grad_clip_norm: float | None = None
    """Largest L2 norm of the gradient per update; ``None`` leaves gradients unclipped (the paper)."""
    loss: str = "mse"
    """TD loss: ``"mse"`` (squared TD error, the paper) or ``"huber"`` (smooth L1)."""

    # --- exploration ----------------------------------------------------------------------------------
    epsilon_start: float = 0.7
    """Initial probability that a link explores (picks a uniformly random action)."""
    epsilon_end: float = 0.01
    """Floor of the exploration probability."""
    epsilon_decay: float = 1e-3
    """Epsilon is multiplied by (1 - epsilon_decay) once per ``epsilon_decay_unit``, down to ``epsilon_end``."""
    epsilon_decay_unit: str = "step"
    """When epsilon decays: ``"step"`` (default: every slot, so it reaches the 0.01 floor after ~4250 slots;
    per episode it would still be 0.095 after 2000 episodes) or ``"episode"``."""
    physical_max_epsilon: float = 1.0
    """Cap on the exploration probability during physical episodes (bounded exploration on real radios);
    1.0 means the same epsilon as in the twin (the paper)."""

    # --- TD learning --------------------------------------------------------------------------------
    discount: float = 0.9
    """gamma, the discount factor of the Markov game."""
    replay_capacity: int = 5000
    """Transitions held by the replay memory (one transition = one agent in one slot)."""
    batch_size: int = 64
    """Transitions per gradient update."""
    learning_starts: int = 64
    """Transitions the memory must hold before the first gradient update."""
    updates_per_step: int = 1
    """Gradient updates after every slot (every vectorised step over the B networks)."""
    target_update_every: int = 500
    """The target network is a copy of the online network refreshed every this many gradient updates."""
    double_dqn: bool = False
    """Use the online network to pick the bootstrap action (double DQN); the paper uses plain DQN."""
    reward: str = "shared"
    """Reward each link learns from: ``"shared"`` (the network's sum goodput, the paper's cooperative
    reward) or ``"link"`` (the link's own goodput)."""
    reward_scale: float = 1.0
    """Factor applied to rewards (Mbit/s) before they enter the replay memory."""
    bootstrap_on_truncation: bool = True
    """The last slot of an episode ends it by a time limit, not a terminal state: bootstrap from its
    successor (True) or treat it as terminal (False)."""

    # --- Algorithm 2 ----------------------------------------------------------------------------------
    episodes: int = 2000
    """Z: episodes of training (twin and physical together; a twin episode runs B networks at once)."""
    ota_every: int = 100
    """Z_k: episode i runs on the physical network when i mod Z_k == 0 (i = 1..Z). 1 trains only on the
    physical network, 0 only in the twin."""
    num_envs: int = 1
    """B: twin networks stepped together in a twin episode (vectorised)."""
    twin_context: str = "mirror"
    """How a twin episode starts: ``"mirror"`` (the twin copies the physical network's current deployment
    and channel, with the twin's ``sigma_rt`` error on the gains: the context-aware DTN) or
    ``"independent"`` (the twin draws its own deployment)."""
    sync_phi: bool = False
    """After every physical episode whose network reports a measured phi, set the twin's ``phi_aci`` and
    ``phi_hwi`` to it (the paper's twin keeps its model, i.e. False)."""
    calibration_episodes: int = 0
    """Physical episodes played before training only to measure phi and calibrate the twin (implies
    reading the physical network's ``measured_phi``); their transitions also enter the memory."""

    # --- bookkeeping ----------------------------------------------------------------------------------
    seed: int = 0
    """Seed of everything random in training: network initialisation, exploration, replay sampling and
    the deployments of every episode."""
    checkpoint_every: int = 1
    """Write a checkpoint (when the trainer has an output directory) every this many episodes and after the
    last one; 1 means a crash loses at most the episode in flight. 0: only after the last episode."""
    device: str = "cpu"
    """Torch device of the Q-networks and the replay memory."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        choices = {"activation": ("tanh", "relu"), "learning_rate_decay_unit": ("episode", "step"),
                   "epsilon_decay_unit": ("episode", "step"), "loss": ("mse", "huber"),
                   "reward": ("shared", "link"), "twin_context": ("mirror", "independent")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        positive = ("learning_rate", "replay_capacity", "batch_size", "target_update_every", "num_envs",
                    "updates_per_step")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: a value > 0")
        for name in ("learning_rate_decay", "epsilon_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: 0 <= value < 1")
        for name in ("epsilon_start", "epsilon_end", "physical_max_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: 0 <= value <= 1")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount={self.discount!r}; allowed: 0 <= value < 1")
        for name in ("episodes", "ota_every", "learning_starts", "checkpoint_every", "calibration_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: an integer >= 0")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes={self.hidden_sizes!r}; allowed: one or more widths >= 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DQNConfig":
        """A config from a mapping (e.g. a parsed TOML/JSON file); unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DQN config key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**dict(values))

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able mapping of every field."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def with_updates(self, **changes: Any) -> "DQNConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# =====================================================================================================
# 2. Q-network and schedules
# =====================================================================================================

class QNetwork(nn.Module):
    """MLP from a state to one Q-value per action.

    Args:
        state_size: S (6 for one link's local state).
        num_actions: A (48 joint actions).
        hidden_sizes: hidden widths (64, 128 in the paper).
        activation: ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, state_size: int, num_actions: int, hidden_sizes: Iterable[int] = (64, 128),
                 activation: str = "tanh") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = state_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.Tanh() if activation == "tanh" else nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_actions))
        self.layers = nn.Sequential(*layers)
        self.state_size = state_size
        self.num_actions = num_actions

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """[..., S] float32 states -> [..., A] float32 Q-values (reward units x 1/(1-gamma))."""
        return self.layers(state)


class RMSprop:
    """RMSprop exactly as ``torch.optim.RMSprop`` computes it without momentum or centring::

        v <- alpha v + (1 - alpha) g^2;   p <- p - lr g / (sqrt(v) + eps)

    Written out because ``torch.optim`` loads the compiler stack on first use, seconds of start-up for every
    process (each CLI call, each parallel experiment) for three tensor operations per parameter.

    Args:
        params: the parameters to optimise.
        lr: learning rate (reassign ``lr`` to schedule it).
        alpha: smoothing constant of the squared-gradient average.
        eps: added to the root of the average.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float, alpha: float = 0.99, eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.square_avg = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p, square_avg in zip(self.params, self.square_avg):
            if p.grad is None:
                continue
            square_avg.mul_(self.alpha).addcmul_(p.grad, p.grad, value=1.0 - self.alpha)
            p.addcdiv_(p.grad, square_avg.sqrt().add_(self.eps), value=-self.lr)
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "steps": self.steps,
                "square_avg": [v.clone() for v in self.square_avg]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lr, self.alpha, self.eps = float(state["lr"]), float(state["alpha"]), float(state["eps"])
        self.steps = int(state["steps"])
        for target, saved in zip(self.square_avg, state["square_avg"]):
            target.copy_(saved)


def decayed_value(start: float, decay: float, count: int, floor: float = 0.0) -> float:
    """start x (1 - decay)^count, not below ``floor`` (the epsilon and learning-rate schedules)."""
    return max(floor, start * (1.0 - decay) ** count)


def episode_seed(base_seed: int, episode: int, stream: str) -> int:
    """Deterministic 63-bit seed for an episode's deployment, independent across episodes and streams.

    Args:
        base_seed: the run's seed.
        episode: episode index (1-based for training; evaluation uses its own streams).
        stream: what the seed is for (``"twin"``, ``"physical"``, ``"context"``, ``"eval"``...).
    """
    stream_key = int.from_bytes(stream.encode()[:8].ljust(8, b"\0"), "little")
    sequence = np.random.SeedSequence([int(base_seed) & (2**63 - 1), int(episode), stream_key])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# =====================================================================================================
# 3. The learner
# =====================================================================================================

class DQNAgent:
    """DQN with a target network, RMSprop and decaying epsilon / learning rate.

    The schedules are pure functions of the counters (slots played, episodes finished, gradient updates),
    so checkpointing the counters checkpoints the schedules.

    Args:
        config: hyper-parameters.
        state_size: S, the length of one agent's state.
        num_actions: A.
    """

    def __init__(self, config: DQNConfig, state_size: int, num_actions: int) -> None:
        self.config = config
        self.state_size = int(state_size)
        self.num_actions = int(num_actions)
        self.device = torch.device(config.device)
        # Initialise from the run's seed without touching the global generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.q_network = QNetwork(state_size, num_actions, config.hidden_sizes, config.activation)
        self.q_network.to(self.device)
        self.target_network = copy.deepcopy(self.q_network)
        self.target_network.requires_grad_(False)
        self.optimizer = RMSprop(self.q_network.parameters(), lr=config.learning_rate, alpha=config.rmsprop_alpha,
                                 eps=config.rmsprop_eps)
        self.steps = 0               # slots played (twin and physical)
        self.episodes = 0            # episodes finished (twin and physical)
        self.gradient_updates = 0    # TD updates applied

    # --- schedules -------------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        """Current exploration probability."""
        c = self.config
        count = self.steps if c.epsilon_decay_unit == "step" else self.episodes
        return decayed_value(c.epsilon_start, c.epsilon_decay, count, c.epsilon_end)

    @property
    def learning_rate(self) -> float:
        """Current learning rate (applied at the next update)."""
        c = self.config
        count = self.steps if c.learning_rate_decay_unit == "step" else self.episodes
        return decayed_value(c.learning_rate, c.learning_rate_decay, count)

    # --- acting ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def q_values(self, states: torch.Tensor) -> torch.Tensor:
        """[M, S] float states -> [M, A] float32 Q-values of the online network."""
        return self.q_network(states.to(self.device, torch.float32))

    @torch.no_grad()
    def act(self, states: torch.Tensor, epsilon: float, generator: torch.Generator) -> torch.Tensor:
        """Epsilon-greedy actions, each agent exploring independently.

        Args:
            states: [M, S] float, one row per agent.
            epsilon: exploration probability.
            generator: source of the exploration draws (on the agent's device).

        Returns:
            [M] int64 actions in 0..A-1.
        """
        greedy = self.q_values(states).argmax(dim=-1)
        count = greedy.shape[0]
        # Always draw both numbers so the generator advances the same way whatever epsilon is.
        explore = torch.rand(count, generator=generator, device=self.device) < epsilon
        random_action = torch.randint(self.num_actions, (count,), generator=generator, device=self.device)
        return torch.where(explore, random_action, greedy)

    # --- learning ------------------------------------------------------------------------------------
    def learn(self, batch: TransitionBatch) -> dict[str, float]:
        """One TD update on a batch; refreshes the target network every ``target_update_every`` updates.

        The target is r + gamma (1 - done) max_a' Q_target(s', a') (double DQN: Q_target(s', argmax_a'
        Q(s', a'))).

        Returns:
            ``{"td_loss", "q_value"}``: the batch loss and the mean Q of the taken actions.
        """
        c = self.config
        self.optimizer.lr = self.learning_rate
        q_taken = self.q_network(batch.state).gather(1, batch.action.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_target = self.target_network(batch.next_state)
            if c.double_dqn:
                best = self.q_network(batch.next_state).argmax(dim=1, keepdim=True)
                next_value = next_target.gather(1, best).squeeze(1)
            else:
                next_value = next_target.max(dim=1).values
            target = batch.reward + c.discount * (~batch.done).to(next_value.dtype) * next_value
        if c.loss == "mse":
            loss = nn.functional.mse_loss(q_taken, target)
        else:
            loss = nn.functional.smooth_l1_loss(q_taken, target)
        self.optimizer.zero_grad()
        loss.backward()
        if c.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(self.q_network.parameters(), c.grad_clip_norm)
        self.optimizer.step()
        self.gradient_updates += 1
        if self.gradient_updates % c.target_update_every == 0:
            self.target_network.load_state_dict(self.q_network.state_dict())
        return {"td_loss": float(loss.detach()), "q_value": float(q_taken.detach().mean())}

    # --- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Online and target networks, optimiser, counters."""
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {"steps": self.steps, "episodes": self.episodes,
                         "gradient_updates": self.gradient_updates},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        counters = state["counters"]
        self.steps = int(counters["steps"])
        self.episodes = int(counters["episodes"])
        self.gradient_updates = int(counters["gradient_updates"])


# =====================================================================================================
# 4. The greedy policy: act on a batch of observations, save, load
# =====================================================================================================

class DQNPolicy(Policy):
    """Greedy decentralised policy of the shared DQN: every link applies the same Q-network to its state.

    Implements :class:`agents.policy.Policy`: ``act`` on a batch, ``save`` (atomic), ``DQNPolicy.load``.

    Args:
        state_size: S (6 for one link's local state).
        num_actions: A (48 joint actions).
        hidden_sizes: hidden widths of the Q-network.
        activation: ``"tanh"`` or ``"relu"``.
        metadata: JSON-able notes saved with the policy (training config, episodes).
    """

    name = "madrl-shared-dqn"

    def __init__(self, state_size: int = 6, num_actions: int = 48, hidden_sizes: Iterable[int] = (64, 128),
                 activation: str = "tanh", metadata: Mapping[str, Any] | None = None) -> None:
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.metadata = dict(metadata or {})
        self.q_network = QNetwork(int(state_size), int(num_actions), self.hidden_sizes, activation).eval()

    @classmethod
    def from_network(cls, q_network: QNetwork, metadata: Mapping[str, Any] | None = None,
                     **extra: Any) -> "DQNPolicy":
        """A policy around a trained network (the network is used as is, not copied)."""
        hidden = [m.out_features for m in q_network.layers if isinstance(m, nn.Linear)][:-1]
        activation = "tanh" if any(isinstance(m, nn.Tanh) for m in q_network.layers) else "relu"
        policy = cls(state_size=q_network.state_size, num_actions=q_network.num_actions, hidden_sizes=hidden,
                     activation=activation, metadata=metadata, **extra)
        policy.q_network = q_network.eval()
        return policy

    @torch.no_grad()
    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        """Greedy actions.

        Args:
            observation: [B, N, S] float local states.
            state: unused (decentralised: a link sees only its own state).

        Returns:
            [B, N] int64 joint actions.
        """
        device = next(self.q_network.parameters()).device
        return self.q_network(observation.to(device, torch.float32)).argmax(dim=-1).to(observation.device)

    def hyper_parameters(self) -> dict[str, Any]:
        return {"state_size": self.q_network.state_size, "num_actions": self.q_network.num_actions,
                "hidden_sizes": list(self.hidden_sizes), "activation": self.activation, "metadata": self.metadata}

    def state_dict(self) -> dict[str, Any]:
        return {"q_network": {k: v.detach().cpu() for k, v in self.q_network.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy to ``path`` atomically (the :class:`agents.policy.Policy` file layout)."""
        atomic_save({"class": f"{type(self).__module__}.{type(self).__qualname__}", "name": self.name,
                     "hyper_parameters": self.hyper_parameters(), "state": self.state_dict()}, path)


# =====================================================================================================
# 5. Agent views: a slot of B networks x N links -> agent transitions
# =====================================================================================================

class SharedLinkView:
    """Every link of every network is an agent with its own 6-number state (the shared DQN).

    Args:
        num_actions: A, the joint actions per link (48).
        state_size: S, the local state length (6).
        reward: ``"shared"`` (every link gets the network's sum goodput) or ``"link"`` (its own goodput).
    """

    def __init__(self, num_actions: int, state_size: int, reward: str = "shared") -> None:
        self.num_actions = int(num_actions)
        self.state_size = int(state_size)
        self.reward_mode = reward

    def states(self, observation: torch.Tensor) -> torch.Tensor:
        """[B, N, S] -> [B N, S] agent states."""
        return observation.reshape(-1, self.state_size)

    def env_action(self, actions: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
        """[B N] agent actions -> [B, N] network actions."""
        return actions.reshape(observation.shape[:-1])

    def transition_mask(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[B N] bool: links that transmitted in the slot (PF scheduled); only they yield transitions."""
        return info["scheduled"].reshape(-1)

    def rewards(self, result: StepResult) -> torch.Tensor:
        """[B N] float reward of each agent (Mbit/s)."""
        if self.reward_mode == "link":
            return result.rate.reshape(-1)
        return result.reward.unsqueeze(-1).expand_as(result.rate).reshape(-1)

    def agent_flags(self, flags: torch.Tensor, num_links: int) -> torch.Tensor:
        """[B] per-network flags -> [B N] per-agent flags."""
        return flags.unsqueeze(-1).expand(-1, num_links).reshape(-1)

    def policy(self, q_network: QNetwork, metadata: Mapping[str, Any]) -> DQNPolicy:
        """The greedy policy of this view for a trained network."""
        return DQNPolicy.from_network(q_network, metadata)


# =====================================================================================================
# 6. The physical side
# =====================================================================================================
#
# The trainer drives any object with twin.network.PhysicalNetwork's contract: ``batch_size``, ``num_links``,
# ``reset(seed) -> [B, N, 6]`` and ``step(action [B, N] int64) -> StepResult`` whose info carries
# ``scheduled`` ([B, N] bool, the transition mask) and ``truncated`` ([B] bool, the episode's last slot).
# Optional hooks, each used only when present:
#   * ``measured_phi() -> float | None``: phi measured since the last reset (PhiReporter below); needed for
#     ``sync_phi`` and ``calibration_episodes``;
#   * ``context_network``: a LinkAdaptationNetwork holding the physical network's current deployment, which a
#     twin with ``twin_context = "mirror"`` copies at the start of its episodes;
#   * ``state_dict()`` / ``load_state_dict(state)``: state of the physical side saved in checkpoints.

@runtime_checkable
class PhiReporter(Protocol):
    """Optional hook of a physical network: the deviation phi it measured during its last episode.

    The over-the-air runner implements it from its ACI / HWI measurements; :class:`AnalyticPhiProbe`
    implements it for the analytic physical network. ``None`` means "no estimate available".
    """

    def measured_phi(self) -> float | None: ...


class AnalyticPhiProbe:
    """A physical network that also reports the phi it measured (wraps e.g. :class:`AnalyticPhysical`).

    Every slot it compares the ACI + HWI power the physical network produced (``info['aci_w'] +
    info['hwi_w']``) with what the twin's model predicts for the same decisions from the twin's view of the
    channel (gains with the log-normal ``sigma_rt`` error, phi = 0). The least-squares scale over an episode,
    minus one, is the measured phi.

    Args:
        network: the physical network (a :class:`LinkAdaptationNetwork`, typically :class:`AnalyticPhysical`).
        sigma_rt: relative error of the twin's channel knowledge (default: the network's config).
        seed: seed of that error's draws.
    """

    def __init__(self, network: LinkAdaptationNetwork, sigma_rt: float | None = None, seed: int = 0) -> None:
        self.network = network
        self.sigma_rt = network.config.sigma_rt if sigma_rt is None else float(sigma_rt)
        self._model_config = network.config.with_updates(phi_aci=0.0, phi_hwi=0.0)
        self._generator = torch.Generator(device=network.device).manual_seed(int(seed))
        self._measured = 0.0
        self._modelled = 0.0

    # PhysicalNetwork contract, forwarded.
    @property
    def config(self) -> DTNConfig:
        return self.network.config

    @property
    def batch_size(self) -> int:
        return self.network.batch_size

    @property
    def num_links(self) -> int:
        return self.network.num_links

    @property
    def scheduled(self) -> torch.Tensor:
        return self.network.scheduled

    @property
    def context_network(self) -> LinkAdaptationNetwork:
        """The wrapped network, whose deployment a mirrored twin copies."""
        return self.network

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self._measured = 0.0
        self._modelled = 0.0
        if seed is not None:
            self._generator.manual_seed(int(seed) ^ 0x5A5A5A5A)
        return self.network.reset(seed)

    def step(self, action: torch.Tensor) -> StepResult:
        state = self.network.network_state()
        error = self.sigma_rt * torch.randn(state.gain.shape, generator=self._generator, device=state.gain.device,
                                            dtype=state.gain.dtype)
        believed = state._replace(gain=state.gain * torch.exp(error), config=self._model_config)
        result = self.network.step(action)
        power_index, modulation_index, code_rate_index = decode_action(action.to(state.gain.device),
                                                                       self.network.config.num_power_levels)
        model = evaluate_slot(believed, self.network.power_set_w[power_index], modulation_index, code_rate_index)
        active = result.info["scheduled"]
        measured = (result.info["aci_w"] + result.info["hwi_w"])[active]
        modelled = (model.terms.aci_w + model.terms.hwi_w)[active]
        self._measured += float((measured * modelled).sum())
        self._modelled += float((modelled * modelled).sum())
        return result

    def measured_phi(self) -> float | None:
        """Least-squares phi of the slots played since the last reset (``None`` before any)."""
        if self._modelled <= 0.0:
            return None
        return self._measured / self._modelled - 1.0

    def state_dict(self) -> dict[str, Any]:
        """The error generator's state (episodes reset everything else)."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._generator.set_state(state["generator"])


def _context_network(physical: Any) -> LinkAdaptationNetwork | None:
    """The network whose deployment a mirrored twin copies, if the physical side exposes one."""
    if isinstance(physical, LinkAdaptationNetwork):
        return physical
    context = getattr(physical, "context_network", None)
    return context if isinstance(context, LinkAdaptationNetwork) else None


class _RepeatedContext:
    """A network's context repeated ``times`` along the batch, for twins with more networks than it."""

    _FIELDS = ("device_xy", "cluster", "distance_m", "los", "large_scale_gain", "fading", "average_throughput",
               "last_sinr_db", "last_aci_rise_db", "last_hwi_rise_db", "last_power_dbm", "last_rate_mbps", "rrb")

    def __init__(self, network: LinkAdaptationNetwork, times: int) -> None:
        self.config = network.config
        self.batch_size = network.batch_size * times
        self.num_links = network.num_links
        self.slot = network.slot
        for name in self._FIELDS:
            setattr(self, name, getattr(network, name).repeat_interleave(times, dim=0))

    def _require_reset(self) -> None:
        """The source was reset before being repeated."""


def mirror_twin(twin: LinkAdaptationNetwork, context: LinkAdaptationNetwork, twin_seed: int,
                context_seed: int) -> torch.Tensor:
    """Start a twin episode that mirrors a fresh deployment of the physical network.

    The physical network is reset with ``context_seed`` (nothing is played on it), the twin's generator is
    seeded with ``twin_seed`` and the twin copies the deployment, LoS states, fading and schedule, with its
    ``sigma_rt`` error on the large-scale gains. A physical network with fewer networks than the twin is
    repeated along the batch (each twin copy then evolves its own fading).

    Returns:
        [B, N, 6] float, the twin's initial observation.
    """
    context.reset(context_seed)
    twin.reset(twin_seed)
    if context.batch_size == twin.batch_size:
        twin.synchronise_from(context)
    elif twin.batch_size % context.batch_size == 0:
        twin.synchronise_from(_RepeatedContext(context, twin.batch_size // context.batch_size))  # type: ignore[arg-type]
    else:
        raise ValueError(f"a twin of {twin.batch_size} networks cannot mirror a physical network of "
                         f"{context.batch_size}; use a multiple")
    return twin.observe()


# =====================================================================================================
# 7. Algorithm 2: the continual trainer
# =====================================================================================================

@dataclass
class EvaluationResult:
    """Greedy evaluation of a policy on a network."""

    mean_reward: float
    """Mean shared reward per slot (sum goodput, Mbit/s) over every evaluated slot and network."""
    episode_rewards: list[float] = field(default_factory=list)
    """Mean reward per slot of each evaluation episode (averaged over the network's B)."""
    slots: int = 0
    """Slots evaluated (per network)."""


def evaluate_policy(policy: Any, network: PhysicalNetwork, episodes: int, seed: int) -> EvaluationResult:
    """Play ``episodes`` greedy episodes of ``policy`` on ``network`` with deployments drawn from ``seed``.

    Args:
        policy: an :class:`agents.policy.Policy` (``act(observation [B, N, 6], state) -> [B, N] int64``, or a
            decision with ``action`` and ``power_dbm`` for continuous-power baselines). Policies with
            ``needs_state`` get the network's ``network_state()`` (global CSI of the coming slot).
        network: where to play (twin or physical).
        episodes: number of episodes.
        seed: evaluation seed; episode e uses ``episode_seed(seed, e, "eval")``.

    Returns:
        :class:`EvaluationResult`.
    """
    needs_state = bool(getattr(policy, "needs_state", False))
    episode_rewards: list[float] = []
    slots = 0
    for episode in range(episodes):
        observation = network.reset(episode_seed(seed, episode, "eval"))
        total, count = 0.0, 0
        while True:
            decision = policy.act(observation, network.network_state() if needs_state else None)
            if hasattr(decision, "power_dbm"):
                result = network.step(decision.action, power_dbm=decision.power_dbm)
            else:
                result = network.step(decision)
            total += float(result.reward.mean())
            count += 1
            observation = result.observation
            if bool(result.info["truncated"].all()):
                break
        episode_rewards.append(total / count)
        slots += count
    return EvaluationResult(mean_reward=float(np.mean(episode_rewards)) if episode_rewards else math.nan,
                            episode_rewards=episode_rewards, slots=slots)


class ContinualTrainer:
    """Algorithm 2: train one shared DQN in the twin and, every Z_k episodes, on the physical network.

    Episode i (1-based) runs on the physical network when ``ota_every`` > 0 and i mod ``ota_every`` == 0,
    else in the twin (B networks at once). Every slot, each agent that acted (PF-scheduled link) adds
    (s, a, r, s', done) to one replay memory tagged with the source; unscheduled links add nothing, and s'
    always comes from the same episode as s. One (or ``updates_per_step``) TD update follows every slot.
    Episode deployments come from :func:`episode_seed`, so a run is a function of its seed.

    Metrics (one JSON line per episode in ``metrics.jsonl`` when ``out_dir`` is given): ``charts/episode_reward``
    (mean sum goodput per slot, Mbit/s), ``charts/epsilon``, ``charts/learning_rate``, ``charts/sps`` (slots per
    second of wall time), ``charts/link_slots_per_s``, ``losses/td``, ``losses/q_value``, ``replay/size``,
    ``replay/physical_fraction``, and for physical episodes ``ota/episode_reward`` and ``ota/measured_phi``.

    Args:
        config: hyper-parameters.
        twin: the twin, with ``config.num_envs`` networks.
        physical: the physical network (analytic, or an over-the-air runner).
        view: agent view (default :class:`SharedLinkView`; :class:`agents.sadrl.JointActionView` for SADRL).
        out_dir: where metrics, checkpoints and the final policy go (``None``: nothing written).
        before_episode: called as ``before_episode(trainer, episode, source)`` before each episode (used by
            experiments that change the physical network over time).
    """

    def __init__(self, config: DQNConfig, twin: LinkAdaptationNetwork, physical: PhysicalNetwork,
                 view: Any = None, out_dir: str | os.PathLike[str] | None = None,
                 before_episode: Callable[["ContinualTrainer", int, str], None] | None = None) -> None:
        if twin.batch_size != config.num_envs:
            raise ValueError(f"the twin has {twin.batch_size} networks but num_envs={config.num_envs}")
        if twin.num_links != physical.num_links:
            raise ValueError(f"twin and physical network differ in links: {twin.num_links} vs {physical.num_links}")
        self.config = config
        self.twin = twin
        self.physical = physical
        self.view = view or SharedLinkView(twin.config.num_actions, twin.config.observation_size, config.reward)
        self.agent = DQNAgent(config, self.view.state_size, self.view.num_actions)
        self.memory = ReplayMemory(config.replay_capacity, self.view.state_size, seed=config.seed + 1,
                                   device=config.device)
        self.generator = torch.Generator(device=self.agent.device).manual_seed(config.seed + 2)
        self.context = _context_network(physical) if config.twin_context == "mirror" else None
        if config.twin_context == "mirror" and self.context is None:
            raise ValueError("twin_context='mirror' needs a physical network that exposes its deployment "
                             "(a LinkAdaptationNetwork or a context_network attribute); use 'independent'")
        if (config.sync_phi or config.calibration_episodes) and not isinstance(physical, PhiReporter):
            raise ValueError("sync_phi / calibration_episodes need a physical network with measured_phi() "
                             "(wrap the analytic one in AnalyticPhiProbe)")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.before_episode = before_episode
        self.episode = 0                      # episodes of Algorithm 2 finished (calibration excluded)
        self.calibrated = 0                   # calibration episodes finished
        self.twin_phi: float | None = None    # phi the twin was last set to from a measurement
        self.history: list[dict[str, Any]] = []
        self.physical_available = True
        """False while the physical network is unreachable (radios down): its episodes are played in the twin."""

    # --- Algorithm 2 -----------------------------------------------------------------------------------
    def is_physical_episode(self, episode: int) -> bool:
        """Whether episode ``episode`` (1-based) runs on the physical network."""
        k = self.config.ota_every
        return k > 0 and episode % k == 0

    def run(self, until_episode: int | None = None) -> list[dict[str, Any]]:
        """Train from the current episode up to ``until_episode`` (default ``config.episodes``).

        Returns:
            The metrics of the episodes played by this call.
        """
        c = self.config
        last = c.episodes if until_episode is None else int(until_episode)
        played: list[dict[str, Any]] = []
        while self.calibrated < self.config.calibration_episodes:
            self.calibrated += 1
            played.append(self._play_episode(self.calibrated, "physical", calibration=True))
        while self.episode < last:
            episode = self.episode + 1
            source = "physical" if self.is_physical_episode(episode) and self.physical_available else "twin"
            metrics = self._play_episode(episode, source)
            if source == "twin" and self.is_physical_episode(episode):
                metrics["ota/skipped"] = True
            self.episode = episode
            played.append(metrics)
            every = c.checkpoint_every
            if self.out_dir is not None and ((every and episode % every == 0) or episode == c.episodes):
                self.save_checkpoint(self.out_dir / "checkpoint.pt")
        return played

    def _play_episode(self, episode: int, source: str, calibration: bool = False) -> dict[str, Any]:
        c = self.config
        if self.before_episode is not None:
            self.before_episode(self, episode, source)
        tag = SOURCE_PHYSICAL if source == "physical" else SOURCE_TWIN
        if source == "physical":
            network: Any = self.physical
            observation = network.reset(episode_seed(c.seed, episode, "calibrate" if calibration else "physical"))
            epsilon_cap = c.physical_max_epsilon
        else:
            network = self.twin
            if self.context is not None:
                observation = mirror_twin(self.twin, self.context, episode_seed(c.seed, episode, "twin"),
                                          episode_seed(c.seed, episode, "context"))
            else:
                observation = network.reset(episode_seed(c.seed, episode, "twin"))
            epsilon_cap = 1.0
        num_links = network.num_links
        started = time.perf_counter()
        total_reward, slots, losses, q_values = 0.0, 0, [], []
        epsilon_played = min(self.agent.epsilon, epsilon_cap)
        while True:
            epsilon = min(self.agent.epsilon, epsilon_cap)
            states = self.view.states(observation)
            actions = self.agent.act(states, epsilon, self.generator)
            result = network.step(self.view.env_action(actions, observation))
            next_states = self.view.states(result.observation)
            truncated = result.info["truncated"]
            terminal = torch.zeros_like(truncated) if c.bootstrap_on_truncation else truncated
            mask = self.view.transition_mask(result.info).to(states.device)
            self.memory.add(states[mask], actions[mask],
                            (self.view.rewards(result) * c.reward_scale).to(states.device)[mask],
                            next_states[mask], self.view.agent_flags(terminal, num_links).to(states.device)[mask],
                            tag)
            self.agent.steps += 1
            if len(self.memory) >= max(c.learning_starts, 1):
                for _ in range(c.updates_per_step):
                    stats = self.agent.learn(self.memory.sample(c.batch_size))
                    losses.append(stats["td_loss"])
                    q_values.append(stats["q_value"])
            total_reward += float(result.reward.mean())
            slots += 1
            observation = result.observation
            if bool(truncated.all()):
                break
        elapsed = max(time.perf_counter() - started, 1e-9)
        self.agent.episodes += 1
        measured_phi = None
        if source == "physical" and isinstance(network, PhiReporter):
            measured_phi = network.measured_phi()
            if measured_phi is not None and (c.sync_phi or calibration):
                self.set_twin_phi(measured_phi)
        held = self.memory.source_counts()
        metrics: dict[str, Any] = {
            "episode": episode,
            "source": source,
            "global_step": self.agent.steps,
            "gradient_updates": self.agent.gradient_updates,
            "charts/episode_reward": total_reward / slots,
            "charts/epsilon": epsilon_played,
            "charts/learning_rate": self.agent.learning_rate,
            "charts/sps": slots / elapsed,
            "charts/link_slots_per_s": slots * network.batch_size * num_links / elapsed,
            "losses/td": float(np.mean(losses)) if losses else None,
            "losses/q_value": float(np.mean(q_values)) if q_values else None,
            "replay/size": len(self.memory),
            "replay/physical_fraction": held["physical"] / max(len(self.memory), 1),
        }
        if source == "physical":
            metrics["ota/episode_reward"] = metrics["charts/episode_reward"]
            metrics["ota/measured_phi"] = measured_phi
        if calibration:
            metrics["calibration"] = True
        self.history.append(metrics)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(metrics) + "\n")
        return metrics

    def set_twin_phi(self, phi: float) -> None:
        """Set the twin's ACI and HWI deviation to a measured phi (clamped above -1)."""
        phi = max(float(phi), -0.99)
        self.twin.config = self.twin.config.with_updates(phi_aci=phi, phi_hwi=phi)
        self.twin_phi = phi

    # --- results ---------------------------------------------------------------------------------------
    def policy(self) -> Any:
        """The greedy policy of the current online network (a copy: further training does not change it)."""
        network = copy.deepcopy(self.agent.q_network).eval()
        return self.view.policy(network, {"dqn_config": self.config.as_dict(), "episodes": self.episode})

    def evaluate(self, network: PhysicalNetwork, episodes: int, seed: int) -> EvaluationResult:
        """Greedy evaluation of the current policy (see :func:`evaluate_policy`)."""
        return evaluate_policy(self.policy(), network, episodes, seed)

    # --- checkpoint and resume -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resume needs (see :meth:`save_checkpoint` for the layout)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "dqn_config": self.config.as_dict(),
            "twin_config": dataclasses.asdict(self.twin.config),
            "episode": self.episode,
            "calibrated": self.calibrated,
            "twin_phi": self.twin_phi,
            "agent": self.agent.state_dict(),
            "replay": self.memory.state_dict(),
            "rng": {"global": capture_rng_states(), "exploration": self.generator.get_state()},
            "physical": self.physical.state_dict() if hasattr(self.physical, "state_dict") else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned into a trainer built with the same config."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown checkpoint format {state.get('format')!r}; expected {CHECKPOINT_FORMAT}")
        saved = {k: tuple(v) if isinstance(v, list) else v for k, v in state["dqn_config"].items()}
        mine = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.as_dict().items()}
        differing = sorted(k for k in mine if k not in ("episodes", "checkpoint_every") and saved.get(k) != mine[k])
        if differing:
            raise ValueError(f"checkpoint was written with a different config: {differing}")
        self.episode = int(state["episode"])
        self.calibrated = int(state["calibrated"])
        if state["twin_phi"] is not None:
            self.set_twin_phi(state["twin_phi"])
        self.agent.load_state_dict(state["agent"])
        self.memory.load_state_dict(state["replay"])
        restore_rng_states(state["rng"]["global"])
        self.generator.set_state(state["rng"]["exploration"])
        if state.get("physical") is not None and hasattr(self.physical, "load_state_dict"):
            self.physical.load_state_dict(state["physical"])

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically (temporary file + rename).

        Layout (a ``torch.save`` dict of plain containers and tensors): ``format``; ``dqn_config`` and
        ``twin_config`` (dicts); ``episode`` (episodes finished); ``calibrated``; ``twin_phi``; ``agent``
        (``q_network``, ``target_network``, ``optimizer`` state dicts and ``counters`` = steps, episodes,
        gradient_updates, from which epsilon and the learning rate follow); ``replay`` (contents, ring
        position, per-source counters, sampler generator); ``rng`` (``global``: Python, numpy, torch
        generators; ``exploration``: the action-selection generator); ``physical`` (the physical network's own
        ``state_dict()`` when it has one, else ``None``).
        """
        return atomic_save(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint written by :meth:`save_checkpoint`."""
        self.load_state_dict(load_checkpoint(path))
