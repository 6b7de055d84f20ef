"""The episode loop every HetNet learner trains with, and the greedy evaluation of any HetNet policy.

A learner implements the small :class:`Learner` protocol; :func:`train` runs it on B twin networks, keeps the
per-episode returns (eq. 10, summed over the episode's slots and averaged over the B networks) and stops at the
episode budget or when the mean return over the last ``stop_window`` episodes improves by less than
``stop_tolerance`` on the window before it (checked once exploration has ended).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from agents.policy import Policy
from twin import HetNetAction, HetNetConfig, HetNetStep, HetNetwork
from twin.hetnet import HetNetState

__all__ = ["EvaluationResult", "Learner", "TrainingHistory", "evaluate", "perturb_csi", "train"]


class Learner(Protocol):
    """What :func:`train` needs from a learning algorithm."""

    def explore(self, observation: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N, F] observations and training progress in [0, 1] -> ([B, N] discrete indices, [B, N] splits)."""

    def to_action(self, discrete: torch.Tensor, power_split: torch.Tensor) -> HetNetAction:
        """The environment action of the learner's discrete indices and splits."""

    def record(self, observation: torch.Tensor, discrete: torch.Tensor, power_split: torch.Tensor,
               outcome: HetNetStep) -> None:
        """Store one slot of B networks."""

    def learn(self, progress: float) -> dict[str, float]:
        """Gradient updates after a slot; returns metrics (``losses/...``) or an empty dict."""

    def end_episode(self, progress: float) -> dict[str, float]:
        """Called after every episode (on-policy learners update here); returns metrics."""

    def exploration_done(self, progress: float) -> bool:
        """True once exploration has reached its floor (the stopping rule waits for it)."""

    def policy(self) -> Policy:
        """The greedy policy being trained (shares the learner's parameters)."""


@dataclass
class TrainingHistory:
    """What one training run leaves behind."""

    returns: list[float] = field(default_factory=list)
    """Per-episode return: sum over slots of the eq. 10 reward, mean over the B networks."""
    throughput: list[float] = field(default_factory=list)
    """Per-episode mean sum throughput (Mbit/s)."""
    metrics: list[dict[str, float]] = field(default_factory=list)
    """Per-episode means of the learner's metrics (``losses/...``, ``charts/...``)."""
    stopped_early: bool = False
    """True when the stopping rule ended the run before the budget."""
    seconds: float = 0.0
    """Wall-clock training time (s)."""
    slots: int = 0
    """Environment slots played (each on B networks)."""


def train(learner: Learner, config: HetNetConfig, episodes: int, num_envs: int, seed: int,
          stop_window: int = 100, stop_tolerance: float = 0.01,
          on_episode: Callable[[int, TrainingHistory], None] | None = None,
          history: TrainingHistory | None = None) -> TrainingHistory:
    """Train ``learner`` on ``num_envs`` HetNets for at most ``episodes`` episodes.

    Args:
        learner: the algorithm.
        config: the network (its ``slots_per_episode`` is the episode length).
        episodes: episode budget.
        num_envs: B, networks stepped together.
        seed: episode i is reset with seed ``seed * 1_000_003 + i``.
        stop_window, stop_tolerance: the stopping rule (module docstring); ``stop_window = 0`` disables it.
        on_episode: called as ``on_episode(i, history)`` after every episode.
        history: the history of a run being continued (its learner restored to the end of its last episode):
            training goes on from episode ``len(history.returns)`` with the same budget, seeds and schedules.
    """
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be >= 1, got {episodes} and {num_envs}")
    env = HetNetwork(config, batch_size=num_envs)
    history = history if history is not None else TrainingHistory()
    if history.stopped_early:
        return history
    started = time.perf_counter() - history.seconds
    total_slots = episodes * config.slots_per_episode
    for episode in range(len(history.returns), episodes):
        observation = env.reset(seed * 1_000_003 + episode)
        episode_return = torch.zeros(num_envs)
        throughput = 0.0
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(config.slots_per_episode):
            progress = history.slots / total_slots
            discrete, split = learner.explore(observation, progress)
            outcome = env.step(learner.to_action(discrete, split))
            learner.record(observation, discrete, split, outcome)
            for name, value in learner.learn(progress).items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            episode_return += outcome.reward.float()
            throughput += float(outcome.info["sum_throughput_mbps"].mean())
            observation = outcome.observation
            history.slots += 1
        progress = history.slots / total_slots
        for name, value in learner.end_episode(progress).items():
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
        history.returns.append(float(episode_return.mean()))
        history.throughput.append(throughput / config.slots_per_episode)
        metrics = {name: sums[name] / counts[name] for name in sums}
        metrics["charts/return"] = history.returns[-1]
        metrics["charts/throughput_mbps"] = history.throughput[-1]
        history.metrics.append(metrics)
        if (stop_window and learner.exploration_done(progress) and len(history.returns) >= 2 * stop_window
                and (len(history.returns) % stop_window == 0)):
            recent = statistics.fmean(history.returns[-stop_window:])
            before = statistics.fmean(history.returns[-2 * stop_window:-stop_window])
            history.stopped_early = recent - before < stop_tolerance
        history.seconds = time.perf_counter() - started
        if on_episode is not None:
            on_episode(episode, history)
        if history.stopped_early:
            break
    history.seconds = time.perf_counter() - started
    return history


def perturb_csi(observation: torch.Tensor, state: HetNetState | None, num_bs: int, noise_db: float,
                generator: torch.Generator) -> tuple[torch.Tensor, HetNetState | None]:
    """Channel disturbance: log-normal errors of ``noise_db`` dB (standard deviation) on every channel estimate.

    The same error reaches the observation's SNR columns ([B, N, J] in dB / 10) and the centralised state's gains,
    so decentralised and centralised policies act on equally wrong CSI; the environment keeps the true channel.
    """
    if noise_db <= 0:
        return observation, state
    error_db = noise_db * torch.randn(observation.shape[:-1] + (num_bs,), generator=generator,
                                      dtype=observation.dtype)
    observation = observation.clone()
    observation[..., :num_bs] += error_db / 10
    if state is not None:
        state = state._replace(gain=state.gain * 10 ** (error_db.to(state.gain.dtype) / 10))
    return observation, state


@dataclass
class EvaluationResult:
    """Greedy evaluation of a policy: means over slots and networks, plus per-episode returns."""

    metrics: dict[str, float]
    """``throughput_mbps`` (sum), ``rate_mbps`` (per UE), ``energy_efficiency``, ``qos_non_compliance``, ``jain``,
    ``handover_rate``, ``spectral_efficiency``, ``utilisation``, ``return`` (mean episode return),
    ``throughput_std`` (std over slots and networks of the sum throughput), ``return_variance``."""
    episode_returns: list[float]
    """Return of every evaluated network and episode."""


def evaluate(policy: Policy, config: HetNetConfig, seeds: list[int], num_envs: int = 4, csi_noise_db: float = 0.0,
             double_precision_state: bool = False) -> EvaluationResult:
    """Play one greedy episode per seed on ``num_envs`` networks and average the metrics.

    Args:
        policy: any HetNet policy (centralised ones get ``env.network_state()``).
        config: the network.
        seeds: one episode per seed (the episode's reset seed).
        num_envs: B.
        csi_noise_db: channel disturbance (:func:`perturb_csi`).
        double_precision_state: hand the centralised state over in float64 (iterative solvers that lose
            precision in float32 at high SINR).
    """
    env = HetNetwork(config, batch_size=num_envs)
    sums: dict[str, float] = {}
    throughputs: list[torch.Tensor] = []
    returns: list[float] = []
    names = {"throughput_mbps": "sum_throughput_mbps", "energy_efficiency": "energy_efficiency_mbit_per_j",
             "qos_non_compliance": "qos_non_compliance", "jain": "jain_index", "handover_rate": "handover_rate",
             "spectral_efficiency": "spectral_efficiency", "utilisation": "resource_utilisation"}
    slots = 0
    for seed in seeds:
        observation = env.reset(seed)
        noise = torch.Generator().manual_seed(seed + 17)
        episode_return = torch.zeros(num_envs)
        for _ in range(config.slots_per_episode):
            state = env.network_state() if policy.needs_state else None
            if state is not None and double_precision_state:
                state = state._replace(gain=state.gain.double(), block_power_w=state.block_power_w.double())
            seen, state = perturb_csi(observation, state, config.num_bs, csi_noise_db, noise)
            with torch.no_grad():
                action = policy.act(seen, state)
            action = action._replace(power_split=action.power_split.to(env.dtype))
            outcome = env.step(action)
            for key, name in names.items():
                sums[key] = sums.get(key, 0.0) + float(outcome.info[name].float().mean())
            throughputs.append(outcome.info["sum_throughput_mbps"].float())
            episode_return += outcome.reward.float()
            observation = outcome.observation
            slots += 1
        returns.extend(episode_return.tolist())
    metrics = {key: value / slots for key, value in sums.items()}
    metrics["rate_mbps"] = metrics["throughput_mbps"] / config.num_ues
    metrics["return"] = statistics.fmean(returns)
    metrics["throughput_std"] = float(torch.cat(throughputs).std()) if len(throughputs) > 1 else 0.0
    metrics["return_variance"] = statistics.variance(returns) if len(returns) > 1 else 0.0
    if any(not math.isfinite(v) for v in metrics.values()):
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        raise FloatingPointError(f"{policy.name}: non-finite evaluation metrics {bad}")
    return EvaluationResult(metrics, returns)


def detach_metrics(values: dict[str, Any]) -> dict[str, float]:
    """Tensors and numbers -> plain floats (for the metrics dicts)."""
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in values.items()}
