"""The HetNet reproduction's plan: the budgets (:class:`Profile`), the schemes, ablations and fairness weights, the
evaluation seeds and the (scheme, seed) jobs each experiment needs (:func:`plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from twin import HetNetConfig

__all__ = ["ABLATIONS", "CLASSICAL", "EXPERIMENTS", "FAIRNESS", "FULL", "LEARNED", "PAPER", "QUICK", "SIZE_AGNOSTIC",
           "Profile", "eval_seeds", "plan", "quick_overrides"]


PAPER: dict[str, Any] = {
    "throughput_over_wmmse": "+33 %",
    "jain": ">= 0.9",
    "decision_time_ms_n200": 12.45,
}
"""The paper's headline claims our numbers are set beside."""

EXPERIMENTS: tuple[str, ...] = ("overall", "ablation", "scaling", "scarcity", "robustness", "fairness")
"""Experiment keys (``--only``)."""

LEARNED: tuple[str, ...] = ("maddqn-dmaddpg", "dqn-dddpg", "qmix", "maddpg", "mappo")
"""Learned schemes of the overall comparison."""

CLASSICAL: tuple[str, ...] = ("wmmse-ssa", "random")
"""Classical baselines (no training)."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "no-double-q": {"double_q": False},
    "no-twin-critic": {"twin_critic": False},
    "no-attention": {"attention": False},
    "throughput-reward": {"reward": "throughput"},
}
"""MADDQN-DMADDPG variants: name -> config fields changed."""

FAIRNESS: dict[str, dict[str, Any]] = {
    "fairness-3": {"fairness_weight": 3.0},
    "fairness-10": {"fairness_weight": 10.0},
}
"""MADDQN-DMADDPG trained on the main network with these reward weights changed (evaluated on the main network,
whose metrics do not depend on the weights): name -> HetNetConfig fields changed."""

SIZE_AGNOSTIC: tuple[str, ...] = ("maddqn-dmaddpg", "qmix", "maddpg", "mappo", "wmmse-ssa", "random")
"""Schemes that run on any N and M (scaling, scarcity, robustness)."""


@dataclass(frozen=True)
class Profile:
    """Budget and sizes of one reproduction run."""

    name: str
    """``"full"`` or ``"quick"``."""
    seeds: tuple[int, ...]
    """Training seeds; every number is a mean and standard deviation over them."""
    episodes: int
    """Episode budget of every training run."""
    slots_per_episode: int
    """Slots per episode (training and evaluation)."""
    num_envs: int
    """B: networks stepped together while training and evaluating."""
    eval_episodes: int
    """Greedy evaluation episodes per seed (each on B networks)."""
    num_small_cells: int
    """K of every experiment."""
    num_ues: int
    """N of the main network (training)."""
    num_subchannels: int
    """M of the main network (training)."""
    scaling_ues: tuple[int, ...]
    """N of the scaling experiment."""
    scarcity_subchannels: tuple[int, ...]
    """M of the sub-channel scarcity experiment."""
    disturbance_db: tuple[float, ...]
    """CSI error standard deviations of the robustness experiment (dB)."""
    stop_window: int
    """Episodes of the stopping rule's window (0: train the whole budget)."""
    workers: int
    """Training runs in parallel (processes)."""

    def network(self, **changes: Any) -> HetNetConfig:
        """The main network's config, with ``changes``."""
        base = HetNetConfig(num_small_cells=self.num_small_cells, num_ues=self.num_ues,
                            num_subchannels=self.num_subchannels, slots_per_episode=self.slots_per_episode)
        return base.with_updates(**changes)


FULL = Profile(name="full", seeds=(0, 1, 2), episodes=150, slots_per_episode=20, num_envs=4, eval_episodes=3,
               num_small_cells=4, num_ues=40, num_subchannels=20, scaling_ues=(20, 40, 100, 200),
               scarcity_subchannels=(10, 20, 30, 50), disturbance_db=(0.0, 3.0, 6.0, 9.0, 12.0), stop_window=100,
               workers=2)

QUICK = Profile(name="quick", seeds=(0, 1, 2), episodes=6, slots_per_episode=6, num_envs=2, eval_episodes=1,
                num_small_cells=2, num_ues=8, num_subchannels=6, scaling_ues=(8, 16), scarcity_subchannels=(4, 6),
                disturbance_db=(0.0, 12.0), stop_window=0, workers=2)


def quick_overrides(profile: Profile) -> dict[str, Any]:
    """Learner settings that make a tiny budget learn at all (updates start after a few slots)."""
    if profile.name != "quick":
        return {}
    return {"learning_starts": 8, "batch_size": 8}


def eval_seeds(profile: Profile, seed: int) -> list[int]:
    """Evaluation reset seeds for training seed ``seed`` (disjoint from the training seeds)."""
    return [1_000_000 + 1000 * seed + e for e in range(profile.eval_episodes)]


def plan(profile: Profile, experiments: Iterable[str]) -> list[tuple[str, int]]:
    """The (scheme, seed) jobs the selected experiments need."""
    experiments = set(experiments)
    schemes: list[str] = []
    if experiments & {"overall", "scaling", "scarcity", "robustness"}:
        schemes += [s for s in LEARNED + CLASSICAL
                    if "overall" in experiments or s in SIZE_AGNOSTIC]
    if "ablation" in experiments:
        schemes += ["maddqn-dmaddpg", "wmmse-ssa", *ABLATIONS]
    if "fairness" in experiments:
        schemes += ["maddqn-dmaddpg", "wmmse-ssa", *FAIRNESS]
    schemes = list(dict.fromkeys(schemes))
    return [(scheme, seed) for scheme in schemes for seed in profile.seeds]
