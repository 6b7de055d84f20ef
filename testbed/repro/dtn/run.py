"""Running the DTN reproduction: one training run (:func:`run_spec`) or baseline evaluation (:func:`baseline_value`)
per job, all the jobs of the selected experiments through :mod:`agents.jobs` (:func:`run_all`), and the jobs and
runs saved on disk (:func:`save_job`, :func:`load_jobs`, :func:`clear_jobs`, :func:`load_raw`)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from agents.baselines import (ExhaustiveFPPolicy, ExhaustiveSearchPolicy, MaxPowerCQIPolicy, RandomPolicy)
from agents.continual import ContinualTrainer
from agents.dqn import DQNConfig, DQNPolicy, evaluate_policy
from agents.jobs import Job, JobFiles, JobProgress, job_key, run_jobs
from agents.sadrl import JointActionView
from testbed.repro.dtn.plan import BLOCK_PHI, BLOCK_SHADOWING, SCHEMES, Profile, RunSpec, plan, twin_config
from testbed.timing import median_call_ms
from twin.config import CODE_RATES, MODULATION_ORDERS, DTNConfig
from twin.geometry import nearest_ap
from twin.network import AnalyticPhysical, LinkAdaptationNetwork, evaluate_slot
from twin.phi import AnalyticPhiProbe
from twin.scheduling import proportional_fair_schedule

__all__ = ["OracleMCSPolicy", "baseline_value", "clear_jobs", "decision_time_ms", "load_jobs", "load_raw", "run_all",
           "run_spec", "save_job"]


def _block(episode: int, length: int) -> int:
    return max(episode - 1, 0) // length


def _set_physical_block(network: AnalyticPhysical, block: int) -> None:
    phi = BLOCK_PHI[block % len(BLOCK_PHI)]
    shadowing = BLOCK_SHADOWING[block % len(BLOCK_SHADOWING)]
    network.config = network.config.with_updates(phi=phi, phi_aci=phi, phi_hwi=phi, shadowing=shadowing)
    network.phi = phi


def _eval_network(profile: Profile, spec: RunSpec, slots: int | None = None) -> AnalyticPhysical:
    config = twin_config(spec.network, spec.kappa, slots or profile.eval_slots, spec.ser_model)
    return AnalyticPhysical(spec.phi, config, batch_size=profile.num_envs)


def _eval_seed(seed: int) -> int:
    return 10_000 + seed


def run_spec(profile: Profile, spec: RunSpec) -> dict[str, Any]:
    """Train one run and evaluate it greedily on the physical network.

    Returns:
        ``final`` (mean reward per slot on the physical network, Mbit/s), ``curve`` ([episode, reward]
        pairs), ``seconds``, ``sps`` (training slots per second), ``measured_phi`` (last estimate, if any),
        ``physical_episodes``.
    """
    torch.set_num_threads(1)
    started = time.perf_counter()
    dqn_values = {**profile.dqn_overrides(), "episodes": profile.episodes, "num_envs": profile.num_envs,
                  "seed": spec.seed, "discount": spec.discount, "checkpoint_every": 0}
    if spec.reward is not None:
        dqn_values["reward"] = spec.reward
    if spec.scheme == "physical-only":
        dqn_values["ota_every"] = 1
    elif spec.scheme in ("proposed", "proposed-sync"):
        dqn_values.update(ota_every=profile.ota_every(spec.ota_every), sync_phi=spec.scheme == "proposed-sync")
    elif spec.scheme == "twin-only":
        dqn_values["ota_every"] = 0
    elif spec.scheme == "twin-calibrated":
        dqn_values.update(ota_every=0, calibration_episodes=1)
    else:
        raise ValueError(f"scheme {spec.scheme!r}; allowed: {', '.join(SCHEMES)}")
    config = DQNConfig.from_mapping(dqn_values)
    dtn = twin_config(spec.network, spec.kappa, profile.slots_per_episode, spec.ser_model)
    twin = LinkAdaptationNetwork(dtn, batch_size=profile.num_envs)
    physical_network = AnalyticPhysical(spec.phi, dtn, batch_size=profile.num_envs)
    physical = AnalyticPhiProbe(physical_network, seed=spec.seed + 3)
    view = (JointActionView(dtn.num_devices, dtn.num_actions, dtn.observation_size)
            if spec.agent == "sadrl" else None)
    evaluation_network = _eval_network(profile, spec)

    curve: list[list[float]] = []
    if spec.block_length:
        block_ends = list(range(spec.block_length, profile.episodes + 1, spec.block_length))
        # At most 2 x curve_points evaluations, spread over the run (each is a full evaluation episode).
        stride = max(1, math.ceil(len(block_ends) / (2 * max(profile.curve_points, 1))))
        checkpoints = block_ends[stride - 1::stride]
    else:
        step = max(1, profile.episodes // max(profile.curve_points, 1))
        checkpoints = list(range(step, profile.episodes + 1, step))
    if not checkpoints or checkpoints[-1] != profile.episodes:
        checkpoints.append(profile.episodes)

    def before_episode(trainer: ContinualTrainer, episode: int, source: str) -> None:
        if spec.block_length:
            _set_physical_block(physical_network, _block(episode, spec.block_length))

    trainer = ContinualTrainer(config, twin, physical, view=view, before_episode=before_episode)
    for checkpoint in checkpoints:
        trainer.run(until_episode=checkpoint)
        if spec.block_length:
            # Evaluate under the conditions of the block that just ended.
            _set_physical_block(evaluation_network, _block(checkpoint, spec.block_length))
        result = evaluate_policy(trainer.policy(), evaluation_network, 1, _eval_seed(spec.seed) + checkpoint)
        curve.append([checkpoint, result.mean_reward])
    if spec.block_length:
        final = float(np.mean([reward for _, reward in curve]))
    else:
        final = evaluate_policy(trainer.policy(), evaluation_network, profile.eval_episodes,
                                _eval_seed(spec.seed)).mean_reward
    played = [m for m in trainer.history if not m.get("calibration")]
    measured = [m["ota/measured_phi"] for m in trainer.history if m.get("ota/measured_phi") is not None]
    return {
        "final": final,
        "curve": curve,
        "seconds": time.perf_counter() - started,
        "sps": float(np.mean([m["charts/sps"] for m in played])),
        "measured_phi": measured[-1] if measured else None,
        "physical_episodes": sum(m["source"] == "physical" for m in trainer.history),
    }


def baseline_value(profile: Profile, name: str, network: tuple[int, int, int], kappa: float, phi: float,
                   seed: int, ser_model: str = "exact") -> float:
    """Mean reward per slot (Mbit/s) of a classical baseline on the same deployments as the trained runs."""
    torch.set_num_threads(1)
    spec = RunSpec("baseline", network, phi, seed, kappa=kappa, ser_model=ser_model)
    if name in ("esa", "esa-fp"):
        evaluation_network = _eval_network(profile, spec, profile.exhaustive_eval_slots)
        policy: Any = ExhaustiveSearchPolicy() if name == "esa" else _ContinuousPower(ExhaustiveFPPolicy())
    else:
        evaluation_network = _eval_network(profile, spec)
        policies = {"maxp-3gpp-cqi": MaxPowerCQIPolicy, "oracle-mcs": OracleMCSPolicy,
                    "random": lambda: RandomPolicy(48, seed=seed)}
        if name not in policies:
            raise ValueError(f"baseline {name!r}; allowed: esa, esa-fp, {', '.join(policies)}")
        policy = policies[name]()
    return evaluate_policy(policy, evaluation_network, profile.eval_episodes, _eval_seed(seed)).mean_reward


class OracleMCSPolicy:
    """Reference for decentralised link adaptation: every link at P_max takes the (modulation, code rate) with
    the largest expected goodput under the coming slot's exact SINR (global, perfect CSI). Not a policy a link
    could run; it bounds what choosing the MCS well can gain over MaxP-3GPP-CQI."""

    needs_state = True

    def act(self, observation: torch.Tensor, state: Any = None) -> torch.Tensor:
        cfg = state.config
        shape = state.rrb.shape
        power_w = torch.full(shape, 10.0 ** ((cfg.power_set_dbm[-1] - 30.0) / 10.0), dtype=state.gain.dtype,
                             device=state.gain.device)
        rates = []
        for modulation in range(len(MODULATION_ORDERS)):
            for code_rate in range(len(CODE_RATES)):
                m = torch.full(shape, modulation, dtype=torch.int64, device=state.gain.device)
                c = torch.full(shape, code_rate, dtype=torch.int64, device=state.gain.device)
                rates.append(evaluate_slot(state, power_w, m, c).rate)
        best = torch.stack(rates, dim=-1).argmax(dim=-1)
        return (cfg.num_power_levels - 1) * len(MODULATION_ORDERS) * len(CODE_RATES) + best


class _ContinuousPower:
    """Plays ESA-FP's continuous powers (its ``decide``) rather than the nearest power level."""

    needs_state = True

    def __init__(self, policy: ExhaustiveFPPolicy) -> None:
        self.policy = policy

    def act(self, observation: torch.Tensor, state: Any = None) -> Any:
        return self.policy.decide(observation, state)


def decision_time_ms(num_links: int, repeats: int = 200) -> dict[str, float]:
    """Median per-slot decision latency on one CPU thread (ms): nearest-AP clustering + PF schedule + one
    shared-DQN forward for every link (the paper's Algorithm 3), and the DQN forward alone."""
    torch.set_num_threads(1)
    config = DTNConfig(num_aps=6 if num_links >= 50 else 4, num_devices=num_links,
                       num_rrbs=12 if num_links >= 50 else 8)
    network = LinkAdaptationNetwork(config, batch_size=1)
    observation = network.reset(0)
    policy = DQNPolicy()
    metric = torch.rand(1, num_links)

    def full() -> None:
        cluster, _ = nearest_ap(network.device_xy, network.ap_xy)
        proportional_fair_schedule(metric, cluster, config.num_aps, config.rrbs_per_ap)
        policy.act(observation)

    def forward() -> None:
        policy.act(observation)

    return {label: median_call_ms(function, repeats, warmup=20)
            for label, function in (("algorithm3", full), ("dqn_forward", forward))}


def _run_job(job: tuple[str, Profile, Any]) -> tuple[Any, Any]:
    kind, profile, payload = job
    if kind == "run":
        return payload, run_spec(profile, payload)
    return payload, baseline_value(profile, *payload)


def _budget_record(profile: Profile) -> Any:
    """What of ``profile`` a saved job must match to be reused (its budget, as JSON reads it back)."""
    return json.loads(_budget(json.loads(json.dumps(dataclasses.asdict(profile), default=list))))


def _job_record(profile: Profile, kind: str, payload: Any) -> dict[str, Any]:
    """A job as plain JSON: its budget, kind and what it trains or evaluates (the saved job's identity)."""
    if kind == "run":
        what: Any = dataclasses.asdict(payload)
    else:
        what = dict(zip(("name", "network", "kappa", "phi", "seed", "ser_model"), payload))
    return {"budget": _budget_record(profile), "kind": kind, "job": json.loads(json.dumps(what, default=list))}


def _job(profile: Profile, kind: str, payload: Any) -> Job:
    record = _job_record(profile, kind, payload)
    if kind == "run":
        label = (f"{payload.scheme} {payload.agent} K,N,R={payload.network} phi={payload.phi} kappa={payload.kappa} "
                 f"seed={payload.seed}")
    else:
        label = f"baseline {payload[0]} K,N,R={payload[1]} phi={payload[3]} kappa={payload[2]} seed={payload[4]}"
    return Job(job_key(record), _run_job, ((kind, profile, payload),), record, label)


def save_job(job_dir: Path, record: Mapping[str, Any], value: Any) -> Path:
    """Write one finished job (``record`` from its :class:`agents.jobs.Job` config) whole as ``job_dir/KEY.json``."""
    return JobFiles(job_dir).save(record, value=value)


def load_jobs(job_dir: Path, profile: Profile) -> dict[str, Any]:
    """The jobs :func:`run_all` saved in ``job_dir`` with the same budget as ``profile``, as ``known`` takes them
    (``{"runs", "baselines"}``); files of other budgets are ignored."""
    runs: dict[RunSpec, Any] = {}
    baselines: dict[tuple[Any, ...], float] = {}
    for saved in JobFiles(job_dir).matching("budget", _budget_record(profile)):
        what = saved["job"]
        if saved["kind"] == "run":
            runs[RunSpec(**{**what, "network": tuple(what["network"])})] = saved["value"]
        else:
            baselines[(what["name"], tuple(what["network"]), what["kappa"], what["phi"], what["seed"],
                       what["ser_model"])] = saved["value"]
    return {"runs": runs, "baselines": baselines}


def clear_jobs(job_dir: Path, profile: Profile) -> int:
    """Delete the jobs of ``profile``'s budget from ``job_dir`` (after their results were written); returns how
    many."""
    return JobFiles(job_dir).clear("budget", _budget_record(profile))


def run_all(profile: Profile, progress: JobProgress | None = None,
            only: Iterable[str] | None = None, known: Mapping[str, Any] | None = None,
            executor: str = "local", job_dir: Path | None = None) -> dict[str, Any]:
    """Train and evaluate what the selected experiments need (each distinct run once, known ones not again).

    Args:
        profile: budget and sizes.
        progress: progress of the jobs (done / running / failed, ETA).
        only: experiment keys to run (default all).
        known: ``{"runs", "baselines"}`` computed earlier with the same profile (see :func:`load_raw` and
            :func:`load_jobs`); they are reused, and the outcome covers every experiment whose runs are all known
            or new.
        executor: where the jobs run (:func:`agents.jobs.parse_executor`: ``local``, ``ray``, ``ray:auto``,
            ``ray:HOST:PORT``); ``profile.workers`` processes locally.
        job_dir: every job is saved there as it finishes (:func:`save_job`), so that a killed call loses only the
            jobs in flight.

    Returns:
        ``{"profile", "experiments", "runs", "baselines", "decision_time_ms", "seconds", "computed", "failures"}``;
        ``runs`` maps a :class:`RunSpec` to :func:`run_spec`'s result, ``baselines`` a (name, network, kappa, phi,
        seed, SER model) key to its value; ``computed`` counts the jobs run by this call; ``failures`` lists the
        :class:`agents.jobs.JobFailure` of jobs that raised (the experiments that need them are not covered).
    """
    started = time.perf_counter()
    selected = set(only) if only is not None else None
    known_runs = dict((known or {}).get("runs", {}))
    known_baselines = dict((known or {}).get("baselines", {}))
    requested = [e for e in plan(profile) if selected is None or e.key in selected]
    run_specs = [spec for spec in dict.fromkeys(spec for e in requested for spec in e.runs) if spec not in known_runs]
    baseline_keys = [key for key in dict.fromkeys(key for e in requested for key in e.baselines)
                     if key not in known_baselines]
    # Long jobs first so the parallel workers finish together.
    jobs = [_job(profile, "run", s) for s in
            sorted(run_specs, key=lambda s: (s.agent != "sadrl", s.scheme != "physical-only"))]
    jobs += [_job(profile, "baseline", key) for key in
             sorted(baseline_keys, key=lambda k: k[0] not in ("esa-fp", "esa"))]
    results: dict[Any, Any] = {}

    def finished(job: Job, value: tuple[Any, Any], seconds: float) -> None:
        payload, result = value
        results[payload] = result
        if job_dir is not None:
            save_job(job_dir, job.config, result)

    report = run_jobs(jobs, executor, workers=profile.workers, on_result=finished, progress=progress)
    decision = {n: decision_time_ms(n, repeats=50 if profile.name == "quick" else 200) for n in (20, 100)}
    # Keep what the profile's experiments use (runs of an older plan are dropped).
    needed_runs = {spec for e in plan(profile) for spec in e.runs}
    needed_baselines = {key for e in plan(profile) for key in e.baselines}
    all_runs = {spec: value for spec, value in {**known_runs, **{spec: results[spec] for spec in run_specs
                                                                 if spec in results}}.items()
                if spec in needed_runs}
    all_baselines = {key: value for key, value in
                     {**known_baselines, **{key: results[key] for key in baseline_keys if key in results}}.items()
                     if key in needed_baselines}
    covered = [e for e in plan(profile)
               if all(spec in all_runs for spec in e.runs) and all(key in all_baselines for key in e.baselines)]
    return {"profile": profile, "experiments": covered, "runs": all_runs, "baselines": all_baselines,
            "decision_time_ms": decision, "seconds": time.perf_counter() - started, "computed": len(jobs),
            "failures": report.failures, "executor": report.executor}


_BUDGET_FIELDS = ("seeds", "episodes", "slots_per_episode", "num_envs", "eval_episodes", "eval_slots", "curve_points",
                  "scale_ota_every", "exhaustive_eval_slots", "dqn")


def _budget(profile_fields: Mapping[str, Any]) -> str:
    return json.dumps({k: profile_fields.get(k) for k in _BUDGET_FIELDS}, sort_keys=True, default=list)


def load_raw(path: Path, profile: Profile) -> dict[str, Any] | None:
    """Runs and baselines saved by :func:`write_results` with the same budget as ``profile`` (else ``None``)."""
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    current = json.loads(json.dumps(dataclasses.asdict(profile), default=list))
    if _budget(raw.get("profile", {})) != _budget(current):
        return None
    runs = {}
    for entry in raw["runs"]:
        spec = dict(entry["spec"])
        spec["network"] = tuple(spec["network"])
        runs[RunSpec(**spec)] = {k: v for k, v in entry.items() if k != "spec"}
    baselines = {(b["name"], tuple(b["network"]), b["kappa"], b["phi"], b["seed"], b.get("ser_model", "exact")): b["value"]
                 for b in raw["baselines"]}
    return {"runs": runs, "baselines": baselines}
