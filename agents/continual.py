"""Algorithm 2: the continual trainer of the shared DQN (or SADRL) between the twin and the physical network.

Training alternates between the digital twin and the physical network: episode i runs on the physical network
when i is a multiple of ``Z_k`` (``ota_every``) and in the twin otherwise; both feed one replay memory whose
transitions are tagged by source. The learner itself (config, network, agent, policy, evaluation) is
:mod:`agents.dqn`. The file reads top to bottom:

1. agent views: how a slot of B networks x N links turns into agent transitions (:class:`SharedLinkView`
   here; the centralised joint-action view lives in :mod:`agents.sadrl`);
2. the physical side: the :class:`~twin.network.PhysicalNetwork` contract (reset/step), the optional hooks
   (``measured_phi()``, see :mod:`twin.phi`; ``context_network``; ``state_dict()``/``load_state_dict()``) and
   :func:`mirror_twin`, which starts a twin episode on the physical network's deployment;
3. :class:`ContinualTrainer`: Algorithm 2, metrics, checkpoint and resume, evaluation.

Units: rewards and rates in Mbit/s (the environment's), time in slots.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from agents.checkpoint import atomic_save, capture_rng_states, load_checkpoint, restore_rng_states
from agents.dqn import DQNAgent, DQNConfig, DQNPolicy, EvaluationResult, QNetwork, episode_seed, evaluate_policy
from agents.replay import SOURCE_PHYSICAL, SOURCE_TWIN, ReplayMemory
from twin.network import LinkAdaptationNetwork, PhysicalNetwork, StepResult
from twin.phi import PhiReporter

__all__ = ["CHECKPOINT_FORMAT", "ContinualTrainer", "SharedLinkView", "mirror_twin"]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout written by :meth:`ContinualTrainer.save_checkpoint`."""


# =====================================================================================================
# 1. Agent views: a slot of B networks x N links -> agent transitions
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
# 2. The physical side
# =====================================================================================================
#
# The trainer drives any object with twin.network.PhysicalNetwork's contract: ``batch_size``, ``num_links``,
# ``reset(seed) -> [B, N, 6]`` and ``step(action [B, N] int64) -> StepResult`` whose info carries
# ``scheduled`` ([B, N] bool, the transition mask) and ``truncated`` ([B] bool, the episode's last slot).
# Optional hooks, each used only when present:
#   * ``measured_phi() -> float | None``: phi measured since the last reset (twin.phi.PhiReporter); needed for
#     ``sync_phi`` and ``calibration_episodes``;
#   * ``context_network``: a LinkAdaptationNetwork holding the physical network's current deployment, which a
#     twin with ``twin_context = "mirror"`` copies at the start of its episodes;
#   * ``state_dict()`` / ``load_state_dict(state)``: state of the physical side saved in checkpoints.


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
# 3. Algorithm 2: the continual trainer
# =====================================================================================================

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
                             "(wrap the analytic one in twin.phi.AnalyticPhiProbe)")
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
