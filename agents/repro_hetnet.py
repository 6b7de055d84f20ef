"""Reproduction of the joint user-association / channel-scheduling experiments on the HetNet twin
(``testbed repro hetnet``).

Every learned scheme is trained on :class:`twin.HetNetwork` (:mod:`agents.marl`) once per seed, then its greedy
policy is evaluated on fresh deployments (seeds disjoint from training, the same for every scheme and for the
classical baselines, so that comparisons pair per seed). Numbers are means and sample standard deviations over
the profile's seeds; p-values come from paired t-tests over seeds.

Experiments (keys for ``--only``):

* ``overall``: MADDQN-DMADDPG, DQN-DDDPG, QMIX, MADDPG, MAPPO, WMMSE + strongest-signal association and random,
  on the main network: throughput, energy efficiency, QoS non-compliance, Jain index, handover rate; and the
  training efficiency of the learned schemes (episodes to 90 % of the final return, final return, its variance);
* ``ablation``: MADDQN-DMADDPG without double-Q, without the twin critic, without attention, with the
  throughput-only reward;
* ``scaling``: the policies trained on the main network run with N UEs up to 200 (average rate, non-compliance);
* ``scarcity``: the same policies with 10 to 50 sub-channels (spectral efficiency, utilisation);
* ``robustness``: CSI errors up to 12 dB (throughput standard deviation, return variance);
* ``fairness``: MADDQN-DMADDPG trained with larger Jain-fairness weights lambda_J in its reward (eq. 10), evaluated
  like every scheme: the throughput the learner gives up for fairness, beside WMMSE + SSA;
* decision latency per slot on one CPU thread and FLOPs per decision (always).

``--only KEY`` trains only the jobs the saved results of the same profile (``hetnet_results.json``) do not already
hold and writes every table from the saved and the new jobs together.

The learned policies depend on neither N nor M (parameter sharing and the block-offset code), so scaling and
scarcity re-use the policies trained on the main network; DQN-DDDPG's centralised networks are built for one N
and join only the experiments on the main network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from agents.baselines import RandomHetNetPolicy, WMMSEPolicy
from agents.jobs import Job, JobProgress, job_key, run_jobs
from agents.marl import (DQNDDDPG, MADDPG, MADDQNDMADDPG, MAPPO, QMIX, MADDQNDMADDPGConfig, evaluate, train)
from agents.policy import Policy
from agents.results_page import figures_link, replace_section
from twin import HetNetConfig, HetNetwork

__all__ = ["ABLATIONS", "EXPERIMENTS", "FAIRNESS", "FULL", "PAPER", "QUICK", "Profile", "clear_jobs", "decision_cost",
           "load_jobs", "load_saved", "median_call_ms", "run_all", "save_job", "write_results"]

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


# =====================================================================================================
# One job: train (or not) one scheme with one seed, evaluate it everywhere it belongs
# =====================================================================================================

def eval_seeds(profile: Profile, seed: int) -> list[int]:
    """Evaluation reset seeds for training seed ``seed`` (disjoint from the training seeds)."""
    return [1_000_000 + 1000 * seed + e for e in range(profile.eval_episodes)]


def _learner(scheme: str, config: HetNetConfig, seed: int, profile: Profile) -> Any:
    overrides = quick_overrides(profile)
    if scheme == "maddqn-dmaddpg" or scheme in ABLATIONS or scheme in FAIRNESS:
        fields = {**overrides, **ABLATIONS.get(scheme, {})}
        return MADDQNDMADDPG(config, MADDQNDMADDPGConfig(**fields), seed)
    from agents.marl import DQNDDDPGConfig, MADDPGConfig, MAPPOConfig, QMIXConfig
    classes = {"dqn-dddpg": (DQNDDDPG, DQNDDDPGConfig), "qmix": (QMIX, QMIXConfig), "maddpg": (MADDPG, MADDPGConfig),
               "mappo": (MAPPO, MAPPOConfig)}
    if scheme not in classes:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(LEARNED + tuple(ABLATIONS) + tuple(FAIRNESS))}")
    learner, config_class = classes[scheme]
    allowed = {f.name for f in dataclasses.fields(config_class)}
    return learner(config, config_class(**{k: v for k, v in overrides.items() if k in allowed}), seed)


def with_blocks(policy: Policy, num_blocks: int) -> Policy:
    """The same policy acting on a network with ``num_blocks`` blocks (policies whose networks ignore M)."""
    hyper = policy.hyper_parameters()
    if "num_blocks" not in hyper:
        return policy
    other = type(policy)(**{**hyper, "num_blocks": num_blocks})
    other.load_state_dict(policy.state_dict())
    return other


def _evaluate(policy: Policy, config: HetNetConfig, profile: Profile, seed: int, noise_db: float = 0.0) -> dict[str, float]:
    result = evaluate(policy, config, eval_seeds(profile, seed), profile.num_envs, csi_noise_db=noise_db,
                      double_precision_state=policy.needs_state)
    return result.metrics


def run_job(profile: Profile, scheme: str, seed: int, experiments: Iterable[str], policy_dir: Path | None = None
            ) -> dict[str, Any]:
    """Train ``scheme`` (unless classical) with ``seed`` and evaluate it in ``experiments``.

    Returns:
        ``{"main": metrics, "curve": returns, "throughput_curve", "episodes", "stopped_early", "seconds",
        "scaling": {N: metrics}, "scarcity": {M: metrics}, "robustness": {dB: metrics}}`` (the keys that apply).
    """
    torch.set_num_threads(1)
    experiments = set(experiments)
    config = profile.network()
    out: dict[str, Any] = {"scheme": scheme, "seed": seed}
    started = time.perf_counter()
    if scheme == "wmmse-ssa":
        policy: Policy = WMMSEPolicy()
    elif scheme == "random":
        policy = RandomHetNetPolicy(config.num_bs, config.num_blocks, seed)
    else:
        trained_on = profile.network(**FAIRNESS.get(scheme, {}))
        learner = _learner(scheme, trained_on, seed, profile)
        history = train(learner, trained_on, profile.episodes, profile.num_envs, seed, stop_window=profile.stop_window)
        policy = learner.policy()
        out.update(curve=history.returns, throughput_curve=history.throughput, episodes=len(history.returns),
                   stopped_early=history.stopped_early, train_seconds=history.seconds)
        if policy_dir is not None:
            policy_dir.mkdir(parents=True, exist_ok=True)
            policy.save(policy_dir / f"{scheme}-seed{seed}.pt")
    out["main"] = _evaluate(policy, config, profile, seed)
    if scheme in SIZE_AGNOSTIC:
        if "scaling" in experiments:
            out["scaling"] = {n: _evaluate(policy, config.with_updates(num_ues=n), profile, seed)
                              for n in profile.scaling_ues}
        if "scarcity" in experiments:
            out["scarcity"] = {}
            for m in profile.scarcity_subchannels:
                changed = config.with_updates(num_subchannels=m)
                out["scarcity"][m] = _evaluate(with_blocks(policy, changed.num_blocks), changed, profile, seed)
        if "robustness" in experiments:
            out["robustness"] = {db: _evaluate(policy, config, profile, seed, db) for db in profile.disturbance_db}
    out["seconds"] = time.perf_counter() - started
    return out


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


def _run_job_tuple(job: tuple[Profile, str, int, tuple[str, ...], bool]) -> dict[str, Any]:
    """One job where it lands (maybe another host): a trained policy comes back as the bytes of its file under
    ``"policy_file"``, for the caller to write where the policies go."""
    profile, scheme, seed, experiments, keep_policy = job
    if not keep_policy:
        return run_job(profile, scheme, seed, experiments)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="repro-hetnet-") as scratch:
        out = run_job(profile, scheme, seed, experiments, Path(scratch))
        trained = Path(scratch) / f"{scheme}-seed{seed}.pt"
        if trained.exists():
            out["policy_file"] = trained.read_bytes()
    return out


def _profile_record(profile: Profile) -> dict[str, Any]:
    """The profile as JSON without the worker count (which does not change any result)."""
    return {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(profile))).items() if k != "workers"}


def _job(profile: Profile, scheme: str, seed: int, experiments: tuple[str, ...], keep_policy: bool) -> Job:
    record = {"profile": _profile_record(profile), "scheme": scheme, "seed": seed, "experiments": sorted(experiments)}
    return Job(job_key(record), _run_job_tuple, ((profile, scheme, seed, experiments, keep_policy),), record,
               f"{scheme} seed={seed}")


def save_job(job_dir: Path, record: Mapping[str, Any], result: Mapping[str, Any]) -> Path:
    """Write one finished job (``record``: its :class:`agents.jobs.Job` config) atomically as ``job_dir/KEY.json``."""
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / f"{job_key(record)}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps({**record, "result": result}, default=float), encoding="utf-8")
    os.replace(partial, path)
    return path


def load_jobs(job_dir: Path, profile: Profile) -> list[dict[str, Any]]:
    """The job results :func:`run_all` saved in ``job_dir`` with ``profile`` (worker count aside), per-axis keys
    turned back into numbers, as ``saved["jobs"]`` takes them; files of other profiles are ignored."""
    mine = _profile_record(profile)
    jobs = []
    for path in sorted(job_dir.glob("*.json")) if job_dir.is_dir() else []:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if saved.get("profile") != mine:
            continue
        job = saved["result"]
        for key, axis in _PER_POLICY.items():
            if key in job:
                job[key] = {value: job[key][str(value)] for value in getattr(profile, axis) if str(value) in job[key]}
        jobs.append(job)
    return jobs


def clear_jobs(job_dir: Path, profile: Profile) -> int:
    """Delete the jobs of ``profile`` from ``job_dir`` (after their results were written); returns how many."""
    mine = _profile_record(profile)
    removed = 0
    for path in sorted(job_dir.glob("*.json")) if job_dir.is_dir() else []:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("profile") == mine:
                path.unlink()
                removed += 1
        except (OSError, json.JSONDecodeError):
            continue
    return removed


# =====================================================================================================
# Decision cost: latency per slot on one CPU thread, FLOPs per decision
# =====================================================================================================

def _policy_for(scheme: str, config: HetNetConfig) -> Policy:
    """An untrained policy of ``scheme``'s architecture (latency and FLOPs do not depend on the weights)."""
    from agents.marl import DQNDDDPGPolicy, MADDPGPolicy, MADDQNDMADDPGPolicy, MAPPOPolicy, QMIXPolicy

    j, m_b = config.num_bs, config.num_blocks
    policies: dict[str, Callable[[], Policy]] = {
        "wmmse-ssa": WMMSEPolicy, "maddqn-dmaddpg": lambda: MADDQNDMADDPGPolicy(j, m_b),
        "dqn-dddpg": lambda: DQNDDDPGPolicy(j, m_b, config.num_ues), "qmix": lambda: QMIXPolicy(j, m_b),
        "maddpg": lambda: MADDPGPolicy(j, m_b), "mappo": lambda: MAPPOPolicy(j, m_b)}
    if scheme not in policies:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(policies)}")
    return policies[scheme]()


def median_call_ms(call: Callable[[], Any], repeats: int, warmup: int = 10) -> float:
    """Median wall-clock time of ``call()`` over ``repeats`` timed calls after ``warmup`` untimed ones (ms)."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return 1e3 * statistics.median(samples)


def decision_cost(scheme: str, num_ues: int, num_small_cells: int = 4, num_subchannels: int = 20,
                  repeats: int = 100) -> dict[str, float]:
    """Median latency of one slot's decisions for all N UEs on one CPU thread (ms) and FLOPs per slot.

    Args:
        scheme: a learned scheme or ``"wmmse-ssa"``.
        num_ues, num_small_cells, num_subchannels: the network.
        repeats: timed calls (after 10 warm-up calls).

    Returns:
        ``{"latency_ms", "flops", "flops_per_ue"}``; FLOPs from :class:`torch.utils.flop_counter.FlopCounterMode`
        (matrix products only, 2 per multiply-add). A policy with a deployment form (``compiled()``, one
        ``torch.compile`` graph) is timed in that form, and ``eager_latency_ms`` adds the eager policy's time;
        FLOPs are counted on the eager policy.
    """
    from torch.utils.flop_counter import FlopCounterMode

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = HetNetConfig(num_small_cells=num_small_cells, num_ues=num_ues, num_subchannels=num_subchannels)
        env = HetNetwork(config, batch_size=1)
        observation = env.reset(0)
        policy = _policy_for(scheme, config)
        state = env.network_state() if policy.needs_state else None

        def median_ms(candidate: Policy) -> float:
            def decide() -> None:
                with torch.no_grad():
                    candidate.act(observation, state)

            return median_call_ms(decide, repeats)

        out = {"latency_ms": median_ms(policy)}
        if hasattr(policy, "compiled"):
            out = {"latency_ms": median_ms(policy.compiled()), "eager_latency_ms": out["latency_ms"]}
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            policy.act(observation, state)
        flops = float(counter.get_total_flops())
    finally:
        torch.set_num_threads(threads)
    return {**out, "flops": flops, "flops_per_ue": flops / num_ues}


# =====================================================================================================
# All jobs
# =====================================================================================================

_PER_POLICY = {"scaling": "scaling_ues", "scarcity": "scarcity_subchannels", "robustness": "disturbance_db"}
"""Experiments whose numbers a job computes with its policy beyond the main network -> the profile's axis."""


def _covers(job: Mapping[str, Any], experiments: Iterable[str]) -> bool:
    """Whether a saved job holds everything ``experiments`` need from it."""
    return all(key in job for key in _PER_POLICY if key in experiments and job["scheme"] in SIZE_AGNOSTIC)


def load_saved(path: Path, profile: Profile) -> dict[str, Any] | None:
    """The jobs and experiments of saved results (``hetnet_results.json``) made with the same profile (worker count
    aside), with the per-axis keys turned back into numbers; None when there are none or the profile differs."""
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    mine = json.loads(json.dumps(dataclasses.asdict(profile)))
    theirs = dict(raw.get("profile", {}))
    if {k: v for k, v in mine.items() if k != "workers"} != {k: v for k, v in theirs.items() if k != "workers"}:
        return None
    jobs = []
    for job in raw.get("jobs", []):
        for key, axis in _PER_POLICY.items():
            if key in job:
                job[key] = {value: job[key][str(value)] for value in getattr(profile, axis) if str(value) in job[key]}
        jobs.append(job)
    return {"jobs": jobs, "experiments": list(raw.get("experiments", [])), "seconds": raw.get("seconds", 0.0)}


def run_all(profile: Profile, experiments: Iterable[str] | None = None,
            progress: JobProgress | None = None, policy_dir: Path | None = None,
            saved: Mapping[str, Any] | None = None, executor: str = "local",
            job_dir: Path | None = None) -> dict[str, Any]:
    """Run every job the selected experiments need (on ``executor``: ``profile.workers`` local processes by
    default, or Ray, see :func:`agents.jobs.parse_executor`) and the decision costs.

    ``saved``: what :func:`load_saved` returned (or jobs from :func:`load_jobs`); its jobs that already hold what
    the selected experiments need are kept instead of being run again, and its experiments stay in the outcome.
    ``job_dir``: every job is saved there as it finishes (:func:`save_job`), so a killed call loses only the jobs
    in flight. Jobs that raise are in ``"failures"`` (:class:`agents.jobs.JobFailure`), the others are kept.

    Returns:
        ``{"profile", "experiments", "jobs": [run_job results], "decision": {scheme: {N: cost}}, "reused"`` (jobs
        kept from ``saved``), ``"seconds"`` (this call), ``"total_seconds"`` (with the calls of the kept jobs)``}``.
    """
    started = time.perf_counter()
    selected = tuple(experiments) if experiments is not None else EXPERIMENTS
    unknown = [e for e in selected if e not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; allowed: {', '.join(EXPERIMENTS)}")
    kept = [job for job in (saved or {}).get("jobs", []) if _covers(job, selected)]
    have = {(job["scheme"], job["seed"]) for job in kept}
    jobs = [_job(profile, scheme, seed, selected, policy_dir is not None) for scheme, seed in plan(profile, selected)
            if (scheme, seed) not in have]
    # Longest first (DQN-DDDPG's wide networks, then the other learners) so parallel workers finish together.
    order = {"dqn-dddpg": 0, "wmmse-ssa": 9, "random": 10}
    jobs.sort(key=lambda job: order.get(job.config["scheme"], 1))
    results: list[dict[str, Any]] = []

    def finished(job: Job, result: dict[str, Any], seconds: float) -> None:
        policy_file = result.pop("policy_file", None)
        if policy_file is not None and policy_dir is not None:
            policy_dir.mkdir(parents=True, exist_ok=True)
            (policy_dir / f"{result['scheme']}-seed{result['seed']}.pt").write_bytes(policy_file)
        results.append(result)
        if job_dir is not None:
            save_job(job_dir, job.config, result)

    report = run_jobs(jobs, executor, workers=profile.workers, on_result=finished, progress=progress,
                      max_tasks_per_worker=4)
    sizes = sorted({profile.num_ues, 200})
    repeats = 20 if profile.name == "quick" else 100
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    decision: dict[str, dict[int, dict[str, float]]] = {}
    for scheme in ("maddqn-dmaddpg", "dqn-dddpg", "qmix", "maddpg", "mappo", "wmmse-ssa"):
        decision[scheme] = {}
        for n in sizes:
            if scheme == "dqn-dddpg" and n != profile.num_ues:
                continue
            decision[scheme][n] = decision_cost(scheme, n, profile.num_small_cells, profile.num_subchannels, repeats)
    new = {(job["scheme"], job["seed"]) for job in results}
    results += [job for job in (saved or {}).get("jobs", []) if (job["scheme"], job["seed"]) not in new]
    done = set(selected) | {e for e in (saved or {}).get("experiments", []) if e in EXPERIMENTS}
    reused = sum(1 for job in results if (job["scheme"], job["seed"]) not in new)
    return {"profile": profile, "experiments": [e for e in EXPERIMENTS if e in done], "jobs": results,
            "decision": decision, "decision_load": load, "reused": reused, "seconds": time.perf_counter() - started,
            "failures": report.failures, "executor": report.executor,
            "total_seconds": time.perf_counter() - started + (float((saved or {}).get("seconds", 0.0)) if reused else 0.0)}


# =====================================================================================================
# Summaries
# =====================================================================================================

def _stats(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)


def _fmt(stats: tuple[float, float], digits: int = 3) -> str:
    mean, spread = stats
    return "n/a" if not math.isfinite(mean) else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def paired_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided paired t-test p-value (NaN with fewer than 2 pairs or identical pairs)."""
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        return math.nan
    differences = np.asarray(a) - np.asarray(b)
    if np.allclose(differences, differences[0]):
        return 0.0 if differences[0] != 0 else 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def _per_seed(outcome: Mapping[str, Any], scheme: str, pick: Callable[[dict[str, Any]], float]) -> list[float]:
    rows = sorted((job["seed"], job) for job in outcome["jobs"] if job["scheme"] == scheme)
    return [pick(job) for _, job in rows]


def training_efficiency(curve: list[float]) -> dict[str, float]:
    """Episodes to 90 % of the final return, the final return and its variance.

    Final return: the mean over the last 10 % of episodes (at least 1); its variance over the same episodes.
    "90 % of the final return" is 90 % of the way from the first episode's return to the final one (returns can be
    negative), read on the 5-episode moving average.
    """
    values = np.asarray(curve, dtype=float)
    tail = max(1, len(values) // 10)
    final = float(values[-tail:].mean())
    variance = float(values[-tail:].var(ddof=1)) if tail > 1 else 0.0
    smooth = np.convolve(values, np.ones(min(5, len(values))) / min(5, len(values)), mode="valid")
    threshold = values[0] + 0.9 * (final - values[0])
    reached = np.nonzero(smooth >= threshold)[0] if final >= values[0] else np.nonzero(smooth <= threshold)[0]
    episodes = float(reached[0] + min(5, len(values))) if len(reached) else float(len(values))
    return {"episodes_to_90": episodes, "final_return": final, "return_variance": variance}


OVERALL_METRICS: tuple[tuple[str, str], ...] = (
    ("throughput_mbps", "throughput (Mbit/s)"), ("energy_efficiency", "EE (Mbit/J)"),
    ("qos_non_compliance", "QoS non-compliance"), ("jain", "Jain"), ("handover_rate", "handover rate"))


def summarise(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Per-table numbers: {metric: (mean, std)} per scheme, p-values against MADDQN-DMADDPG, and the targets."""
    profile: Profile = outcome["profile"]
    present = {job["scheme"] for job in outcome["jobs"]}
    summary: dict[str, Any] = {"targets": {}}
    ours = "maddqn-dmaddpg"

    def main_table(schemes: Iterable[str]) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for scheme in schemes:
            if scheme not in present:
                continue
            row: dict[str, Any] = {}
            for key, _ in OVERALL_METRICS + (("return", ""),):
                values = _per_seed(outcome, scheme, lambda job: job["main"][key])
                row[key] = _stats(values)
                if scheme != ours and ours in present:
                    row[f"p_{key}"] = paired_p_value(_per_seed(outcome, ours, lambda job: job["main"][key]), values)
            table[scheme] = row
        return table

    if "overall" in outcome["experiments"]:
        summary["overall"] = main_table(LEARNED + CLASSICAL)
        efficiency: dict[str, Any] = {}
        for scheme in LEARNED:
            if scheme in present:
                rows = [training_efficiency(c) for c in _per_seed(outcome, scheme, lambda job: job["curve"])]
                efficiency[scheme] = {k: _stats([r[k] for r in rows]) for k in rows[0]}
                efficiency[scheme]["train_seconds"] = _stats(_per_seed(outcome, scheme, lambda job: job["train_seconds"]))
        summary["efficiency"] = efficiency
    if "ablation" in outcome["experiments"]:
        summary["ablation"] = main_table((ours, *ABLATIONS, "wmmse-ssa"))
    if "fairness" in outcome["experiments"]:
        summary["fairness"] = main_table((ours, *FAIRNESS, "wmmse-ssa"))
    for key, axis in (("scaling", "scaling_ues"), ("scarcity", "scarcity_subchannels"), ("robustness", "disturbance_db")):
        if key not in outcome["experiments"]:
            continue
        table = {}
        for scheme in SIZE_AGNOSTIC:
            if scheme not in present:
                continue
            table[scheme] = {}
            for value in getattr(profile, axis):
                table[scheme][value] = {metric: _stats(_per_seed(outcome, scheme, lambda job: job[key][value][metric]))
                                        for metric in ("rate_mbps", "qos_non_compliance", "spectral_efficiency",
                                                       "utilisation", "throughput_mbps", "throughput_std",
                                                       "return_variance", "jain")}
        summary[key] = table

    if {ours, "wmmse-ssa"} <= present:
        ours_t = _per_seed(outcome, ours, lambda job: job["main"]["throughput_mbps"])
        wmmse_t = _per_seed(outcome, "wmmse-ssa", lambda job: job["main"]["throughput_mbps"])
        gain = _stats([a / b - 1 for a, b in zip(ours_t, wmmse_t)])
        summary["targets"]["throughput over WMMSE + SSA (paper +33 %)"] = (
            f"{100 * gain[0]:+.1f} % ± {100 * gain[1]:.1f} (p = {paired_p_value(ours_t, wmmse_t):.3g})", gain[0] >= 0.33)
        jain = _stats(_per_seed(outcome, ours, lambda job: job["main"]["jain"]))
        summary["targets"]["Jain index >= 0.9"] = (_fmt(jain), jain[0] >= 0.9)
    if "scaling" in summary and ours in summary["scaling"]:
        largest = max(profile.scaling_ues)
        row = summary["scaling"][ours][largest]
        summary["targets"][f"runs at N = {largest}"] = (
            f"rate {_fmt(row['rate_mbps'])} Mbit/s, non-compliance {_fmt(row['qos_non_compliance'])}",
            math.isfinite(row["rate_mbps"][0]))
    decision = outcome["decision"].get(ours, {})
    if 200 in decision:
        latency = decision[200]["latency_ms"]
        summary["targets"]["decision <= 1 ms per slot at N = 200, one core (paper 12.45 ms)"] = (
            f"{latency:.3f} ms", latency <= 1.0)
    summary["decision"] = outcome["decision"]
    return summary


# =====================================================================================================
# Figures and docs/RESULTS.md
# =====================================================================================================

NAMES = {"maddqn-dmaddpg": "MADDQN-DMADDPG", "dqn-dddpg": "DQN-DDDPG", "qmix": "QMIX", "maddpg": "MADDPG",
         "mappo": "MAPPO", "wmmse-ssa": "WMMSE + SSA", "random": "random", "no-double-q": "without double-Q",
         "no-twin-critic": "without double critic", "no-attention": "without attention",
         "throughput-reward": "throughput-only reward",
         **{name: f"MADDQN-DMADDPG, lambda_J = {changes['fairness_weight']:g}" for name, changes in FAIRNESS.items()}}


def plot_figures(outcome: Mapping[str, Any], summary: Mapping[str, Any], figures: Path) -> dict[str, str]:
    """PNG figures under ``figures`` (``hetnet_*.png``); returns {key: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    profile: Profile = outcome["profile"]

    def save(fig: Any, key: str) -> None:
        name = f"hetnet_{key}.png"
        fig.tight_layout()
        fig.savefig(figures / name, dpi=110)
        plt.close(fig)
        written[key] = name

    curves = {s: _per_seed(outcome, s, lambda job: job["curve"]) for s in LEARNED + tuple(ABLATIONS)
              if any(job["scheme"] == s for job in outcome["jobs"])}
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for scheme, runs in curves.items():
            length = min(len(c) for c in runs)
            data = np.array([c[:length] for c in runs])
            axis = axes[1] if scheme in ABLATIONS or (scheme == "maddqn-dmaddpg" and "ablation" in summary) else None
            for ax in ([axes[0]] if scheme in LEARNED else []) + ([axis] if axis is not None else []):
                ax.plot(np.arange(1, length + 1), data.mean(0), label=NAMES[scheme])
                ax.fill_between(np.arange(1, length + 1), data.mean(0) - data.std(0), data.mean(0) + data.std(0), alpha=0.2)
        for ax, title in zip(axes, ("schemes", "ablations")):
            ax.set_xlabel("episode")
            ax.set_ylabel("return (eq. 10, summed over the episode)")
            ax.set_title(title)
            if ax.lines:
                ax.legend(fontsize=8)
        save(fig, "training")
    for key, axis, metrics, xlabel in (
            ("scaling", "scaling_ues", (("rate_mbps", "average rate per UE (Mbit/s)"), ("qos_non_compliance", "QoS non-compliance")), "N (UEs)"),
            ("scarcity", "scarcity_subchannels", (("spectral_efficiency", "spectral efficiency (bit/s/Hz)"), ("utilisation", "resource utilisation")), "M (sub-channels)"),
            ("robustness", "disturbance_db", (("throughput_std", "std of sum throughput (Mbit/s)"), ("return_variance", "return variance")), "CSI error (dB)")):
        if key not in summary:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        xs = list(getattr(profile, axis))
        for scheme, rows in summary[key].items():
            for ax, (metric, label) in zip(axes, metrics):
                means = [rows[x][metric][0] for x in xs]
                spreads = [rows[x][metric][1] for x in xs]
                ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=NAMES[scheme])
                ax.set_xlabel(xlabel)
                ax.set_ylabel(label)
        axes[0].legend(fontsize=8)
        save(fig, key)
    return written


RESULTS_BEGIN = "<!-- BEGIN repro hetnet -->"
RESULTS_END = "<!-- END repro hetnet -->"


def _p(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3g}"


def render_markdown(outcome: Mapping[str, Any], summary: Mapping[str, Any], figures: dict[str, str],
                    figures_dir: str, command: str) -> str:
    """The HetNet section of RESULTS.md."""
    profile: Profile = outcome["profile"]
    config = profile.network()
    train_hours = sum(job.get("train_seconds", 0.0) for job in outcome["jobs"]) / 3600
    lines = [
        RESULTS_BEGIN,
        "## Joint user association and channel resource scheduling: MADDQN-DMADDPG (Xie)",
        "",
        f"Regenerate with `{command}` (profile `{profile.name}`: {len(outcome['jobs'])} jobs"
        + (f", {outcome['reused']} of them kept from earlier calls" if outcome.get("reused") else "")
        + f", {outcome.get('total_seconds', outcome['seconds']) / 60:.1f} min wall clock in all, "
        f"{train_hours:.2f} CPU-hours of training runs of one thread each). `--only KEY` runs one experiment "
        f"({', '.join(EXPERIMENTS)}) and keeps the saved jobs of the others.",
        "",
        f"Setting: `twin.HetNetwork`, one MBS + K = {config.num_small_cells} SBSs, N = {config.num_ues} UEs (half static "
        f"sensors, half mobile), M = {config.num_subchannels} sub-channels of {config.bandwidth_hz / 1e6:g} MHz, OMA, "
        f"bitstream traffic, {config.slots_per_episode} slots of {1e3 * config.slot_duration_s:g} ms per episode. "
        f"Budget per training run: at most {profile.episodes} episodes on B = {profile.num_envs} networks "
        f"({profile.episodes * profile.slots_per_episode} gradient steps), stopping rule: mean return over "
        f"the last {profile.stop_window} episodes improving by less than 0.01 "
        + ("(it cannot fire within this budget)" if profile.stop_window and profile.episodes < 2 * profile.stop_window + 1
           else "") + ". "
        f"Evaluation: the greedy policy on {profile.eval_episodes} fresh deployment(s) x B networks per seed, the same "
        f"for every scheme; mean ± standard deviation over seeds {list(profile.seeds)}; p: two-sided paired t-test "
        "against MADDQN-DMADDPG over seeds.",
        "",
        "Design choices of ours (the paper's text does not fix them): agents are the UEs, with parameters shared by "
        "all UEs; a UE's discrete action is (BS, block offset): the BS numbers the UEs that chose the same offset and "
        "hands them consecutive blocks from the offset's start, so UEs of one BS never collide while agents still "
        "place themselves in the band (see `agents/marl/common.py`); users in range (attention keys) are the users "
        "attached to the same BS; the centralised critics are set networks over all UEs, so the policy runs on any N "
        "and M. The learned policies trained on the main network are the ones evaluated in the scaling, scarcity "
        "and robustness experiments (no retraining). QMIX picks one of 4 power levels; MADDPG uses strongest-signal "
        "association and round-robin blocks; WMMSE + SSA iterates in SNR units with w = 1 + SINR, so float32 "
        "state neither underflows nor cancels at high SINR. The paper's hyper-parameter values are not available to "
        "us: every learner uses the defaults listed in its config dataclass (`agents/marl/*.py`), with equal widths "
        "and budgets.",
        "",
        "### Targets",
        "",
        "| target (paper) | ours | met |",
        "|---|---|---|",
    ]
    for name, (value, met) in summary["targets"].items():
        lines.append(f"| {name} | {value} | {'yes' if met else 'no'} |")
    lines.append("")
    lines += _reading(summary)

    def image(key: str) -> None:
        if key in figures:
            lines.extend([f"![{key}]({figures_dir}/{figures[key]})", ""])

    def table(rows: Mapping[str, Any], title: str) -> None:
        header = "| scheme | " + " | ".join(label for _, label in OVERALL_METRICS) + " | return |"
        lines.extend(([title, ""] if title else []) + [header, "|---" * (len(OVERALL_METRICS) + 2) + "|"])
        for scheme, row in rows.items():
            cells = []
            for key, _ in OVERALL_METRICS + (("return", ""),):
                p = row.get(f"p_{key}", math.nan)
                cells.append(_fmt(row[key]) + (f" (p {_p(p)})" if math.isfinite(p) else ""))
            lines.append(f"| {NAMES[scheme]} | " + " | ".join(cells) + " |")
        lines.append("")

    if "overall" in summary:
        table(summary["overall"], "### Overall comparison (main network)")
        lines += ["### Training efficiency", "",
                  "Episodes to 90 % of the final return (90 % of the way from the first episode's return, on the "
                  "5-episode moving average), final return (mean of the last 10 % of episodes) and its variance over "
                  "those episodes; training time of one run on one thread.", "",
                  "| scheme | episodes to 90 % | final return | return variance | training s |", "|---|---|---|---|---|"]
        for scheme, row in summary["efficiency"].items():
            lines.append(f"| {NAMES[scheme]} | {_fmt(row['episodes_to_90'], 1)} | {_fmt(row['final_return'], 2)} | "
                         f"{_fmt(row['return_variance'], 2)} | {_fmt(row['train_seconds'], 0)} |")
        lines.append("")
        image("training")
        lines += [f"Command: `{command} --only overall`", ""]
    if "ablation" in summary:
        table(summary["ablation"], "### Ablations")
        lines += [f"Command: `{command} --only ablation`", ""]
    if "fairness" in summary:
        weights = ", ".join(f"{changes['fairness_weight']:g}" for changes in FAIRNESS.values())
        lines += ["### Fairness weight", "",
                  f"MADDQN-DMADDPG trained with the Jain-fairness weight lambda_J of eq. 10 at {config.fairness_weight:g} "
                  f"(the main runs) and at {weights}; every policy evaluated on the main network (the metrics do not "
                  f"depend on the weights; the return column is eq. 10 with lambda_J = {config.fairness_weight:g}).", ""]
        table(summary["fairness"], "")
        lines += [f"Command: `{command} --only fairness`", ""]
    for key, axis, metrics, title in (
            ("scaling", "scaling_ues", (("rate_mbps", "rate (Mbit/s)"), ("qos_non_compliance", "non-compliance")),
             "### Scaling with N (average rate per UE, QoS non-compliance)"),
            ("scarcity", "scarcity_subchannels", (("spectral_efficiency", "SE (bit/s/Hz)"), ("utilisation", "utilisation")),
             "### Sub-channel scarcity (spectral efficiency, resource utilisation)"),
            ("robustness", "disturbance_db", (("throughput_std", "throughput std (Mbit/s)"), ("return_variance", "return variance"), ("throughput_mbps", "throughput (Mbit/s)")),
             "### Channel-disturbance robustness (CSI error std in dB)")):
        if key not in summary:
            continue
        xs = list(getattr(profile, axis))
        label = {"scaling": "N", "scarcity": "M", "robustness": "dB"}[key]
        lines += [title, "", "| scheme | " + " | ".join(f"{label} = {x:g}: {name}" for x in xs for _, name in metrics) + " |",
                  "|---" * (1 + len(xs) * len(metrics)) + "|"]
        for scheme, rows in summary[key].items():
            lines.append(f"| {NAMES[scheme]} | " + " | ".join(_fmt(rows[x][m], 2) for x in xs for m, _ in metrics) + " |")
        lines.append("")
        image(key)
        lines += [f"Command: `{command} --only {key}`", ""]
    lines += ["### Inference time and FLOPs per decision", "",
              "Median latency of one slot's decisions for all N UEs (batch of one network, one CPU thread, "
              "`torch.set_num_threads(1)`), and FLOPs per slot counted by `torch.utils.flop_counter` (matrix products, "
              "2 per multiply-add). Also `python bench/bench_marl.py`. Latencies are wall-clock on a shared machine and "
              "grow with its load"
              + (f" (load average {outcome['decision_load']:.1f} when these were measured)"
                 if math.isfinite(outcome.get("decision_load", math.nan)) else "")
              + ": compare rows of one run.", "",
              "| scheme | N | latency (ms) | FLOPs per slot | FLOPs per UE |", "|---|---|---|---|---|"]
    for scheme, rows in summary["decision"].items():
        for n, cost in rows.items():
            lines.append(f"| {NAMES[scheme]} | {n} | {cost['latency_ms']:.3f} | {cost['flops']:.3g} | "
                         f"{cost['flops_per_ue']:.3g} |")
    lines += ["", f"Paper: {PAPER['decision_time_ms_n200']} ms per slot at N = 200.", "", RESULTS_END, ""]
    return "\n".join(lines)


def _reading(summary: Mapping[str, Any]) -> list[str]:
    """Plain statements of where the paper's ordering holds on our twin, in this run's numbers."""
    notes: list[str] = []
    overall = summary.get("overall", {})
    if "maddqn-dmaddpg" in overall:
        ours = overall["maddqn-dmaddpg"]
        ranked = sorted(overall, key=lambda s: -overall[s]["throughput_mbps"][0])
        notes.append("- Throughput ranking on our twin: " + " > ".join(
            f"{NAMES[s]} {overall[s]['throughput_mbps'][0]:.1f}" for s in ranked) + " Mbit/s.")
        above = [NAMES[s] for s in ranked if s != "maddqn-dmaddpg"
                 and overall[s]["throughput_mbps"][0] > ours["throughput_mbps"][0]]
        if above:
            verb = "reaches" if len(above) == 1 else "reach"
            notes.append(f"- The paper's ordering does not hold here: {', '.join(above)} {verb} more throughput than "
                         "MADDQN-DMADDPG.")
        ranked_jain = sorted(overall, key=lambda s: -overall[s]["jain"][0])
        notes.append("- Jain index: " + ", ".join(f"{NAMES[s]} {overall[s]['jain'][0]:.3f}" for s in ranked_jain) + ".")
    ablation = summary.get("ablation", {})
    if "maddqn-dmaddpg" in ablation:
        base = ablation["maddqn-dmaddpg"]["return"][0]
        worse = [NAMES[s] for s in ABLATIONS if s in ablation and ablation[s]["return"][0] < base]
        better = [NAMES[s] for s in ABLATIONS if s in ablation and ablation[s]["return"][0] >= base]
        if better:
            notes.append(f"- Ablations: removing a part does not lower the evaluation return for {', '.join(better)} "
                         f"(the paper reports every part helping); lower for {', '.join(worse) or 'none'}.")
        else:
            notes.append("- Ablations: every removed part lowers the evaluation return, as in the paper.")
    fairness = summary.get("fairness", {})
    if "maddqn-dmaddpg" in fairness and "wmmse-ssa" in fairness:
        wmmse = fairness["wmmse-ssa"]["throughput_mbps"][0]
        points = ", ".join(
            f"{NAMES[s]}: Jain {fairness[s]['jain'][0]:.3f} at {fairness[s]['throughput_mbps'][0]:.1f} Mbit/s "
            f"({100 * (fairness[s]['throughput_mbps'][0] / wmmse - 1):+.1f} % vs WMMSE + SSA)"
            for s in ("maddqn-dmaddpg", *FAIRNESS) if s in fairness)
        fair = [s for s in ("maddqn-dmaddpg", *FAIRNESS) if s in fairness and fairness[s]["jain"][0] >= 0.9
                and fairness[s]["throughput_mbps"][0] > wmmse]
        notes.append(f"- Fairness weight: {points}. "
                     + ("A weight reaches Jain >= 0.9 with more throughput than WMMSE + SSA: "
                        + ", ".join(NAMES[s] for s in fair) + "." if fair else
                        "No weight reaches Jain >= 0.9 together with more throughput than WMMSE + SSA: on our twin "
                        "the learner buys fairness with throughput."))
    return (["Reading the results:", ""] + notes + [""]) if notes else []


def write_results(outcome: Mapping[str, Any], results_path: Path, figures_dir: Path, command: str) -> dict[str, Any]:
    """Plot, write the HetNet section of ``results_path`` (other sections kept) and ``hetnet_results.json``."""
    summary = summarise(outcome)
    figures = plot_figures(outcome, summary, figures_dir)
    section = render_markdown(outcome, summary, figures, figures_link(figures_dir, results_path), command)
    replace_section(results_path, RESULTS_BEGIN, RESULTS_END, section)
    raw = {"profile": dataclasses.asdict(outcome["profile"]), "experiments": outcome["experiments"],
           "summary": summary, "jobs": outcome["jobs"], "seconds": outcome.get("total_seconds", outcome["seconds"]),
           "decision_load": outcome.get("decision_load")}
    (figures_dir / "hetnet_results.json").write_text(json.dumps(raw, indent=1, default=float), encoding="utf-8")
    return summary
