"""The shared-parameter DQN learner of link adaptation: network, optimiser, agent, greedy policy, evaluation.

Every IoT link is an agent that picks a joint action (transmit power x modulation x code rate, 48 values)
from its 6-number local state. All links share one Q-network (centralised training, decentralised
execution): the same state gives the same Q-values whichever link holds it. The trainer that alternates
between the twin and the physical network (Algorithm 2) is :mod:`agents.continual`. The file reads top to
bottom:

1. :class:`DQNConfig`, every hyper-parameter (the learner's and the continual trainer's) with its meaning and
   the paper's value;
2. :class:`QNetwork`, its optimiser (:class:`RMSprop`), the epsilon / learning-rate schedules and the
   per-episode seeds;
3. :class:`DQNAgent`: acting, the TD update, the target copy;
4. :class:`DQNPolicy`: the greedy policy with act / save / load;
5. :func:`evaluate_policy`: greedy episodes of any policy on a network.

Units: rewards and rates in Mbit/s (the environment's), learning rate per gradient step, time in slots.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from agents.checkpoint import atomic_save
from agents.policy import Policy
from agents.replay import TransitionBatch
from twin.network import PhysicalNetwork

__all__ = [
    "DQNAgent",
    "DQNConfig",
    "DQNPolicy",
    "EvaluationResult",
    "QNetwork",
    "RMSprop",
    "decayed_value",
    "episode_seed",
    "evaluate_policy",
]


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
# 5. Evaluation
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
