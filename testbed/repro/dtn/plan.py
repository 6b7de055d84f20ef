"""The DTN reproduction's plan: the budgets (:class:`Profile`), one training run's definition (:class:`RunSpec`) and
the experiment grid of the paper's figures (:func:`plan`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.dqn import DQNConfig
from twin.config import DTNConfig

__all__ = ["BLOCK_PHI", "BLOCK_SHADOWING", "COMPARISON_SCHEME", "FULL", "PAPER", "PAPER_EPISODES", "QUICK", "SCHEMES",
           "Experiment", "Profile", "RunSpec", "plan", "twin_config"]


PAPER_EPISODES = 2000
"""Z of the paper: the episodes of one training run."""

PAPER: dict[str, Any] = {
    "proposed_vs_physical_only_phi_0.4": "within 1 % of physical-only",
    "proposed_over_twin_only_phi_0.9": ">= +14 %",
    "madrl_over_esa_fp": ">= 70.4 % of ESA-FP",
    "over_maxp_k6_n100": ">= +46 % (K = 6, N = 100, sigma_rt = 0.05)",
    "over_maxp_high_hwi": ">= +114 % (high HWI)",
    "decision_time_ms": {20: 12.5, 100: 15.1},
    "twin_calibrated_vs_physical_only": "within 2 % (target beyond the paper)",
}
"""The paper's headline numbers that our results are set beside (Table 4 and the text's claims)."""

SCHEMES: tuple[str, ...] = ("physical-only", "proposed", "proposed-sync", "twin-only", "twin-calibrated")
"""Training schemes compared in Figs. 5b-5d (see the module docstring)."""

COMPARISON_SCHEME = "proposed-sync"
"""The scheme whose trained policies are compared with the baselines (Figs. 7a-7c): the testbed's own
continual loop, so that the comparison measures the policy rather than an uncalibrated twin's bias."""

# Non-stationary physical network (Fig. 8): the hidden phi and whether shadowing is present change every
# Z_m episodes, cycling through these blocks.
BLOCK_PHI: tuple[float, ...] = (0.2, 0.9, 0.5, 1.2, 0.0, 0.7)
BLOCK_SHADOWING: tuple[bool, ...] = (True, False, True, True, False, True)


@dataclass(frozen=True)
class Profile:
    """Budget and sizes of one reproduction run."""

    name: str
    """``"full"`` or ``"quick"``."""
    seeds: tuple[int, ...]
    """Training seeds; every number is a mean and spread over them."""
    episodes: int
    """Z of every training run."""
    slots_per_episode: int
    """Slots of a training episode (evaluation episodes use ``eval_slots``)."""
    num_envs: int
    """B: networks stepped together in every episode (twin and analytic physical alike)."""
    eval_episodes: int
    """Greedy evaluation episodes on the physical network at the end of a run (each with B networks)."""
    eval_slots: int
    """Slots of an evaluation episode."""
    curve_points: int
    """Greedy physical evaluations (one episode each) spread over a run for the learning curves."""
    scale_ota_every: bool
    """Scale the paper's Z_k by episodes / 2000 (QUICK, whose few episodes would otherwise hold none)."""
    main_network: tuple[int, int, int]
    """(K, N, R) of the main experiments (Figs. 5, 6c, 8)."""
    small_networks: tuple[tuple[int, int, int], ...]
    """(K, N, R) of the comparison with exhaustive search (Fig. 7a)."""
    sadrl_networks: tuple[tuple[int, int, int], ...]
    """(K, N, R) of the SADRL vs MADRL comparison (Figs. 6a, 6b)."""
    scaling_networks: tuple[tuple[int, int, int], ...]
    """(K, N, R) of the comparison with MaxP-3GPP-CQI and random across sizes (Fig. 7b)."""
    hwi_levels: tuple[float, ...]
    """EVM kappa_t = kappa_r of the HWI sweeps (Figs. 5d, 7c); the first is the default."""
    ota_sweep: tuple[int, ...]
    """The paper's Z_k values of Fig. 6c."""
    block_lengths: tuple[int, ...]
    """Z_m of the non-stationary experiment (Fig. 8)."""
    exhaustive_eval_slots: int
    """Slots per evaluation episode for ESA / ESA-FP (they are slow)."""
    workers: int
    """Training runs in parallel (processes)."""
    dqn: tuple[tuple[str, Any], ...] = ()
    """DQN config fields that differ from :class:`DQNConfig`'s (the paper's) defaults."""

    def dqn_overrides(self) -> dict[str, Any]:
        return dict(self.dqn)

    def ota_every(self, paper_zk: int) -> int:
        """Our Z_k for the paper's ``paper_zk``."""
        if not self.scale_ota_every or paper_zk <= 1:
            return paper_zk
        return max(2, round(paper_zk * self.episodes / PAPER_EPISODES))


FULL = Profile(
    name="full", seeds=(0, 1, 2), episodes=1000, slots_per_episode=5, num_envs=4, eval_episodes=3, eval_slots=50,
    curve_points=10, scale_ota_every=False, main_network=(4, 20, 8),
    small_networks=((1, 2, 2), (2, 3, 2), (3, 5, 3)), sadrl_networks=((1, 2, 2), (2, 2, 2)),
    scaling_networks=((4, 20, 8), (6, 50, 12), (6, 100, 12)), hwi_levels=(0.05, 0.10, 0.15),
    ota_sweep=(10, 50, 100, 200), block_lengths=(10, 30, 50), exhaustive_eval_slots=20, workers=2,
    dqn=(("reward", "link"),))

QUICK = Profile(
    name="quick", seeds=(0, 1, 2), episodes=16, slots_per_episode=4, num_envs=2, eval_episodes=1, eval_slots=8,
    curve_points=2, scale_ota_every=True, main_network=(2, 6, 4),
    small_networks=((1, 2, 2), (2, 3, 2)), sadrl_networks=((1, 2, 2),),
    scaling_networks=((2, 6, 4), (3, 9, 6)), hwi_levels=(0.05, 0.15),
    ota_sweep=(100, 200), block_lengths=(4,), exhaustive_eval_slots=4, workers=2,
    dqn=(("reward", "link"), ("learning_starts", 16), ("batch_size", 16)))


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run (hashable: identical runs are trained once)."""

    scheme: str
    """``physical-only``, ``proposed``, ``proposed-sync``, ``twin-only`` or ``twin-calibrated``."""
    network: tuple[int, int, int]
    """(K, N, R)."""
    phi: float
    """Hidden deviation of the physical network."""
    seed: int
    agent: str = "madrl"
    """``madrl`` (shared DQN) or ``sadrl`` (centralised)."""
    ota_every: int = 100
    """Z_k of the proposed scheme (ignored by the others)."""
    kappa: float = 0.05
    """kappa_t = kappa_r (EVM ratio)."""
    discount: float = 0.9
    block_length: int = 0
    """Z_m of a non-stationary physical network (0: stationary)."""
    reward: str | None = None
    """DQN reward mode (``shared`` / ``link``); ``None``: the profile's."""
    ser_model: str = "exact"
    """Symbol-error formula of twin and physical network: ``exact`` or ``printed`` (the paper's eq. 17)."""


def twin_config(network: tuple[int, int, int], kappa: float, slots: int, ser_model: str = "exact") -> DTNConfig:
    """The twin configuration of a (K, N, R) network with EVM ``kappa``, ``slots`` per episode and a SER model."""
    k, n, r = network
    return DTNConfig(num_aps=k, num_devices=n, num_rrbs=r, kappa_t=kappa, kappa_r=kappa, slots_per_episode=slots,
                     ser_model=ser_model)


@dataclass
class Experiment:
    """One figure or table: the runs it needs and how to summarise them."""

    key: str
    title: str
    paper: str
    runs: list[RunSpec] = field(default_factory=list)
    baselines: list[tuple[str, tuple[int, int, int], float, float, int, str]] = field(default_factory=list)
    """(baseline name, network, kappa, phi, seed, SER model) of the baseline evaluations it needs."""


def plan(profile: Profile) -> list[Experiment]:
    """The experiments of the paper's figures, with the training runs and baseline evaluations each needs."""
    main = profile.main_network
    seeds = profile.seeds
    kappa0 = profile.hwi_levels[0]
    schemes = SCHEMES
    experiments: list[Experiment] = []

    def runs(**fixed: Any) -> list[RunSpec]:
        return [RunSpec(seed=s, **fixed) for s in seeds]

    e = Experiment("fig5a", "Discount factor (Fig. 5a)", "gamma = 0.9 converges highest")
    for gamma in (0.7, 0.8, 0.9):
        e.runs += runs(scheme="proposed", network=main, phi=0.4, discount=gamma)
    experiments.append(e)

    for key, phi in (("fig5b", 0.4), ("fig5c", 0.9)):
        e = Experiment(key, f"Physical-only vs proposed vs twin-only, phi = {phi} (Fig. {key[-2:]})",
                       PAPER["proposed_vs_physical_only_phi_0.4"] if phi == 0.4 else PAPER["proposed_over_twin_only_phi_0.9"])
        for scheme in schemes:
            e.runs += runs(scheme=scheme, network=main, phi=phi)
        for name in ("oracle-mcs", "maxp-3gpp-cqi"):
            e.baselines += [(name, main, kappa0, phi, s, "exact") for s in seeds]
        experiments.append(e)

    e = Experiment("fig5d", "Schemes across HWI levels, phi = 0.9 (Fig. 5d)", "proposed tracks physical-only")
    for kappa in profile.hwi_levels:
        for scheme in ("physical-only", "proposed", "proposed-sync", "twin-only"):
            e.runs += runs(scheme=scheme, network=main, phi=0.9, kappa=kappa)
    experiments.append(e)

    e = Experiment("fig6ab", "SADRL vs MADRL on small networks (Figs. 6a, 6b)",
                   "SADRL converges slower and lower as N grows")
    for network in profile.sadrl_networks:
        for agent in ("sadrl", "madrl"):
            e.runs += runs(scheme="proposed", network=network, phi=0.4, agent=agent)
    experiments.append(e)

    e = Experiment("fig6c", "Physical-episode period Z_k (Fig. 6c)", "smaller Z_k -> closer to physical-only")
    for zk in profile.ota_sweep:
        e.runs += runs(scheme="proposed", network=main, phi=0.9, ota_every=zk)
    e.runs += runs(scheme="physical-only", network=main, phi=0.9)
    experiments.append(e)

    e = Experiment("fig7a", "MADRL vs ESA and ESA-FP (Fig. 7a)", PAPER["madrl_over_esa_fp"])
    for network in profile.small_networks:
        e.runs += runs(scheme=COMPARISON_SCHEME, network=network, phi=0.4)
        for name in ("esa", "esa-fp"):
            e.baselines += [(name, network, kappa0, 0.4, s, "exact") for s in seeds]
    experiments.append(e)

    e = Experiment("fig7b", "MADRL vs MaxP-3GPP-CQI and random across network sizes (Fig. 7b)",
                   PAPER["over_maxp_k6_n100"])
    for network in profile.scaling_networks:
        e.runs += runs(scheme=COMPARISON_SCHEME, network=network, phi=0.4)
        for name in ("maxp-3gpp-cqi", "random", "oracle-mcs"):
            e.baselines += [(name, network, kappa0, 0.4, s, "exact") for s in seeds]
    experiments.append(e)

    largest = profile.scaling_networks[-1]
    e = Experiment("fig7c", f"MADRL vs MaxP-3GPP-CQI and random across HWI, (K, N) = {largest[:2]} (Fig. 7c)",
                   PAPER["over_maxp_high_hwi"])
    for kappa in profile.hwi_levels:
        e.runs += runs(scheme=COMPARISON_SCHEME, network=largest, phi=0.4, kappa=kappa)
        for name in ("maxp-3gpp-cqi", "random", "oracle-mcs"):
            e.baselines += [(name, largest, kappa, 0.4, s, "exact") for s in seeds]
    experiments.append(e)

    e = Experiment("fig8", "Non-stationary phi and shadowing blocks of Z_m episodes (Fig. 8)",
                   "the proposed scheme follows the changes")
    for length in profile.block_lengths:
        e.runs += runs(scheme="proposed-sync", network=main, phi=0.4, block_length=length, ota_every=10)
        e.runs += runs(scheme="twin-only", network=main, phi=0.4, block_length=length)
    experiments.append(e)

    e = Experiment("printed", f"MaxP-3GPP-CQI comparison with the paper's printed eq. 17, (K, N) = {largest[:2]}",
                   f"{PAPER['over_maxp_k6_n100']}; {PAPER['over_maxp_high_hwi']}")
    for kappa in profile.hwi_levels:
        e.runs += runs(scheme=COMPARISON_SCHEME, network=largest, phi=0.4, kappa=kappa, ser_model="printed")
        for name in ("maxp-3gpp-cqi", "random", "oracle-mcs"):
            e.baselines += [(name, largest, kappa, 0.4, s, "printed") for s in seeds]
    experiments.append(e)

    e = Experiment("reward", "Shared vs per-link reward (ablation)", "the paper uses the shared sum goodput")
    default_reward = DQNConfig.from_mapping(profile.dqn_overrides()).reward
    e.runs += runs(scheme="proposed", network=main, phi=0.4)
    e.runs += runs(scheme="proposed", network=main, phi=0.4, reward="link" if default_reward == "shared" else "shared")
    experiments.append(e)
    return experiments
