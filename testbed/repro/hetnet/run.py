"""Running the HetNet reproduction: one job trains (or not) one scheme with one seed and evaluates it everywhere
it belongs (:func:`run_job`); :func:`run_all` runs the selected experiments' jobs through :mod:`agents.jobs` and
measures the decision costs (:func:`decision_cost`); jobs and results saved on disk are read back by
:func:`load_jobs` and :func:`load_saved`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from agents.baselines import RandomHetNetPolicy, WMMSEPolicy
from agents.jobs import Job, JobFiles, JobProgress, job_key, run_jobs
from agents.marl import (DQNDDDPG, MADDPG, MADDQNDMADDPG, MAPPO, QMIX, MADDQNDMADDPGConfig, evaluate, train)
from agents.policy import Policy
from testbed.repro.hetnet.plan import (ABLATIONS, EXPERIMENTS, FAIRNESS, LEARNED, SIZE_AGNOSTIC, Profile, eval_seeds,
                                       plan, quick_overrides)
from testbed.timing import median_call_ms
from twin import HetNetConfig, HetNetwork

__all__ = ["clear_jobs", "decision_cost", "load_jobs", "load_saved", "run_all", "run_job", "save_job"]


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
                out["scarcity"][m] = _evaluate(policy.for_blocks(changed.num_blocks), changed, profile, seed)
        if "robustness" in experiments:
            out["robustness"] = {db: _evaluate(policy, config, profile, seed, db) for db in profile.disturbance_db}
    out["seconds"] = time.perf_counter() - started
    return out


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
    """Write one finished job (``record``: its :class:`agents.jobs.Job` config) whole as ``job_dir/KEY.json``."""
    return JobFiles(job_dir).save(record, result=result)


def load_jobs(job_dir: Path, profile: Profile) -> list[dict[str, Any]]:
    """The job results :func:`run_all` saved in ``job_dir`` with ``profile`` (worker count aside), per-axis keys
    turned back into numbers, as ``saved["jobs"]`` takes them; files of other profiles are ignored."""
    jobs = []
    for saved in JobFiles(job_dir).matching("profile", _profile_record(profile)):
        job = saved["result"]
        for key, axis in _PER_POLICY.items():
            if key in job:
                job[key] = {value: job[key][str(value)] for value in getattr(profile, axis) if str(value) in job[key]}
        jobs.append(job)
    return jobs


def clear_jobs(job_dir: Path, profile: Profile) -> int:
    """Delete the jobs of ``profile`` from ``job_dir`` (after their results were written); returns how many."""
    return JobFiles(job_dir).clear("profile", _profile_record(profile))


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
