"""The hardware-in-the-loop controller behind ``testbed run`` and ``testbed eval``.

One loop, one class per physical-network family on a shared base (:class:`RunController`):

1. open the radios (the TX guard applies to every transmission; the last radio named is the device, the others
   AP radios) and the store;
2. calibrate them, or reuse a stored record that measured the same units (:mod:`testbed.calibration_reuse`);
3. build the twin from the record;
4. train: :class:`LinkAdaptationController` runs the shared DQN (Algorithm 2) in the twin with an over-the-air
   episode every Z_k, whose transitions enter the replay memory and the store and update the running phi that the
   twin is set to; :class:`HetNetController` trains MADDQN-DMADDPG in the HetNet twin;
5. evaluate the policy over the air (or on the analytic network) against the baselines on the same deployments;
6. summarise and report into the :class:`testbed.rundir.RunDirectory`.

Every episode is checkpointed after the store has it, so a run resumes from its last checkpoint, also after
SIGKILL; Ctrl-C stops after the slot or episode in flight with the transmitters off. A radio fault in a
link-adaptation OTA episode rolls back to the checkpoint and training continues in the twin while the radios are
probed with backoff.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from calibration.record import CalibrationRecord
from calibration.settings import CalibrationSettings
from radio.errors import RadioFault
from testbed.calibration_reuse import calibrate_or_reuse
from testbed.cliutil import BadInput, progress
from testbed.rundir import ProgressLines, RunDirectory, StopFlag, versions

__all__ = ["HETNET_DEFAULTS", "HetNetController", "LinkAdaptationController", "RETRY_FIRST_S", "RETRY_MAX_S",
           "RUN_DEFAULTS", "RUN_DQN", "RunController", "RunInterrupted", "build_trainer", "episode_throughputs", "evaluate_run",
           "twin_config_from"]

RUN_DEFAULTS = {"episodes": 200, "ota_every": 40, "num_envs": 8, "eval_episodes": 3, "ota_slots": 40, "discount": 0.0}
"""Budget of a default run on two simulated radios: 5 OTA episodes of 40 slots, 195 twin episodes of 8 networks,
then 3 OTA evaluation episodes per policy (one episode of 8 links x 40 slots is too few to rank policies a few
percent apart).

The run's learner is myopic (discount 0) by default: a link's power / MCS choice changes its next state only
through the "last slot" features, so bootstrapping the next state's value adds noise to every TD target without
information (the paper's 0.9 stays available with ``--discount 0.9``; docs/configs/twin-*.toml compare the two in
the calibrated twin)."""
RUN_DQN = {"epsilon_end": 0.1, "replay_capacity": 50_000}
"""Learner settings of a run that differ from the paper's: twin episodes keep exploring (10 %: exploration in the
twin costs nothing, and a myopic Q of an action never tried drifts with the shared layers until it wins the
argmax; over the air exploration stays capped at ``physical_max_epsilon``), and the replay memory holds about
eight twin episodes of 8 networks instead of less than one."""
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 60.0
"""Backoff between probes of radios that failed (seconds, doubling up to the maximum)."""
HETNET_DEFAULTS: dict[str, Any] = {"episodes": 150, "num_envs": 4, "train_slots": 20, "ota_slots": 20,
                                   "eval_episodes": 3, "num_small_cells": 4, "num_ues": 20, "rbs_per_block": 3,
                                   "max_blocks": 20}
"""Defaults of the HetNet run: training episodes and networks, slots per training / over-the-air episode,
evaluation episodes per policy, small cells, UEs, RBs per block and the most blocks used."""


class RunInterrupted(Exception):
    """Ctrl-C stopped training after the episode or slot in flight; ``summary`` says where and how to resume."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(f"interrupted after episode {summary['episodes']}")
        self.summary = summary


class RunController:
    """What both run families share: the run directory, the store, the radios, the calibration and Ctrl-C.

    Subclasses implement :meth:`execute` (train, evaluate, summarise) with the helpers here.
    """

    def __init__(self, run: RunDirectory, resolved: dict[str, Any], *, resume: bool, store_path: str | None,
                 cfg: Any, show_progress: bool, lines: ProgressLines) -> None:
        self.run = run
        self.resolved = resolved
        self.resume = resume
        self.store_path = store_path
        self.cfg = cfg
        self.show_progress = show_progress
        self.lines = lines
        self.flag = StopFlag()
        self.started = time.perf_counter()

    def calibration(self, radios: dict[str, Any], store: Any, recalibrate: bool,
                    max_age_s: float) -> CalibrationRecord:
        """The run's calibration record: the one it recorded (resumed runs), else a stored one that measured these
        units or a fresh one; a new choice is recorded in the resolved config and ``calibration.json``."""
        if self.resolved.get("calibration_id") is not None:
            record = store.calibration(int(self.resolved["calibration_id"])).record()
        else:
            record, choice = calibrate_or_reuse(
                self.resolved["radios"], radios, store, CalibrationSettings(lo_hz=self.resolved["lo_hz"]),
                recalibrate=recalibrate, max_age_s=max_age_s, out_dir=None, show_progress=self.show_progress)
            self.resolved.update(calibration_id=record.id, calibration_reused=choice.reused,
                                 calibration_choice=choice.as_dict())
        self.run.write_calibration(record)
        return record

    def interrupted(self, store: Any, episodes: int) -> RunInterrupted:
        store.set_run_status(self.run.run_id, "interrupted")
        return RunInterrupted({"run": self.run.run_id, "run_dir": str(self.run.path), "interrupted": True,
                               "episodes": episodes, "resume": f"testbed run --resume {self.run.path}"})

    @contextlib.contextmanager
    def status_on_failure(self, store: Any):
        """Record the run as interrupted (Ctrl-C twice) or failed (anything else) when the block raises."""
        try:
            yield
        except RunInterrupted:
            raise
        except KeyboardInterrupt:
            store.set_run_status(self.run.run_id, "interrupted")
            raise
        except BaseException:
            store.set_run_status(self.run.run_id, "failed")
            raise


# ---- link adaptation (DQN) ------------------------------------------------------------------------------------------

def twin_config_from(values: dict[str, Any]) -> Any:
    """A :class:`twin.config.DTNConfig` from a ``[twin]`` table (lists become tuples); an unknown key is refused
    (exit 2) naming the allowed ones."""
    from twin.config import DTNConfig

    known = {f.name for f in dataclasses.fields(DTNConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadInput(f"[twin] key(s) {unknown} unknown; allowed: {sorted(known)}")
    return DTNConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def build_trainer(dqn_values: dict[str, Any], twin_values: dict[str, Any], physical: dict[str, Any],
                  out_dir: Path | None = None, agent: str = "madrl", *, radios: dict[str, Any] | None = None,
                  radio_names: list[str] | None = None, calibration: CalibrationRecord | None = None,
                  ota_slots: int | None = None, flag: StopFlag | None = None) -> tuple[Any, Any]:
    """The continual trainer (:class:`agents.continual.ContinualTrainer`) of a link-adaptation run and its twin's
    config.

    ``physical["kind"] == "analytic"``: the analytic physical network with phi ``physical["phi"]``, stepping as many
    networks as the twin so that a physical episode carries as much experience as a twin episode (the paper's
    1 : Z_k - 1 ratio of the two sources). ``"ota"``: the radios (``radio_names``: APs..., device) through
    :class:`testbed.ota.OtaNetwork`, with the twin calibrated by ``calibration``: its SNR capped where the weakest
    AP radio's full power ends when it hears the links co-located, as the OTA runner renders them.
    ``agent="sadrl"``: one centralised agent over the joint action.
    """
    from agents.continual import ContinualTrainer
    from agents.dqn import DQNConfig
    from agents.sadrl import JointActionView
    from testbed.ota import OtaNetwork
    from twin.calibration_record import from_calibration
    from twin.network import AnalyticPhysical, LinkAdaptationNetwork
    from twin.phi import AnalyticPhiProbe

    config = DQNConfig.from_mapping(dqn_values)
    twin_config = twin_config_from(twin_values)
    if calibration is not None:
        twin_config = from_calibration(calibration, twin_config)
    if physical["kind"] == "analytic":
        twin = LinkAdaptationNetwork(twin_config, batch_size=config.num_envs)
        network: Any = AnalyticPhiProbe(AnalyticPhysical(physical["phi"], twin_config, batch_size=config.num_envs),
                                        seed=config.seed + 3)
    else:
        snr_ref = _snr_reference(calibration, radio_names)
        if twin_config.interference == "colocated" and twin_config.max_snr_db is None:
            twin_config = twin_config.with_updates(max_snr_db=min(snr_ref.values()))
        twin = LinkAdaptationNetwork(twin_config, batch_size=config.num_envs)
        network = OtaNetwork(twin_config.with_updates(slots_per_episode=ota_slots), radios, radio_names[:-1],
                             radio_names[-1], snr_ref, numerology_name=calibration.numerology,
                             lo_hz=calibration.lo_hz, should_stop=flag)
    view = (JointActionView(twin_config.num_devices, twin_config.num_actions, twin_config.observation_size)
            if agent == "sadrl" else None)
    return ContinualTrainer(config, twin, network, view=view, out_dir=out_dir), twin_config


def _build_link_adaptation(resolved: dict[str, Any], radios: dict[str, Any] | None,
                           calibration: CalibrationRecord | None, flag: StopFlag) -> tuple[Any, Any]:
    """The continual trainer (twin + physical network) of a ``testbed run`` and the twin's config."""
    return build_trainer(resolved["dqn"], resolved["twin"], resolved["physical"], radios=radios,
                         radio_names=resolved["radios"], calibration=calibration, ota_slots=resolved["ota_slots"],
                         flag=flag)


def _snr_reference(calibration: CalibrationRecord, names: list[str]) -> dict[str, float]:
    try:
        return calibration.snr_reference_db(names[:-1], names[-1])
    except ValueError as e:
        raise BadInput(str(e)) from None


def _evaluate_link_adaptation(policy: Any, network: Any, twin_config: Any, episodes: int, seed: int,
                              show_progress: bool = False, episode_values: dict[str, list[float]] | None = None,
                              ota_throughput: dict[str, float] | None = None,
                              not_acquired: dict[str, int] | None = None) -> dict[str, float]:
    """Greedy evaluation of the policy and the baselines on the same network with the same deployments: mean reward
    per slot by label, in the twin's units (sum over links of the twin's nominal rate of the chosen MCS x the share
    of its code blocks that decoded, Mbit/s of the twin's RRBs). ``episode_values`` receives each label's
    per-episode values; ``ota_throughput``, over the air, each label's delivered throughput in real units
    (information bits of CRC-passed blocks per second of air time, Mbit/s); ``not_acquired``, over the air, each
    label's transmitter-slots that the device radio found ("no sync") but did not acquire: outcomes of the
    decisions, delivering nothing, not faults (:attr:`testbed.ota.RadioSlots.no_sync_is_outcome`)."""
    from agents.baselines import MaxPowerCQIPolicy, OllaPolicy, RandomPolicy
    from agents.dqn import evaluate_policy

    candidates = (("policy", policy), ("maxp-3gpp-cqi", MaxPowerCQIPolicy(twin_config.num_power_levels)),
                  ("olla", OllaPolicy(twin_config.num_power_levels, code_block_bits=twin_config.packet_bits)),
                  ("random", RandomPolicy(twin_config.num_actions, seed=seed)))
    over_the_air = hasattr(network, "no_sync_is_outcome")
    if over_the_air:
        network.no_sync_is_outcome = True  # each policy pays for the slots its decisions made unacquirable
    out = {}
    for label, candidate in progress(candidates, total=len(candidates), desc="evaluate", enabled=show_progress):
        bits_before, air_before = getattr(network, "delivered_bits_total", 0), getattr(network, "air_time_s_total", 0.0)
        missed_before = getattr(network, "slots_not_acquired", 0)
        result = evaluate_policy(candidate, network, episodes, seed)
        out[label] = result.mean_reward
        air = getattr(network, "air_time_s_total", 0.0) - air_before
        if ota_throughput is not None and air > 0:
            ota_throughput[label] = (network.delivered_bits_total - bits_before) / air / 1e6
        if not_acquired is not None and over_the_air:
            not_acquired[label] = network.slots_not_acquired - missed_before
        if episode_values is not None:
            episode_values[label] = list(result.episode_rewards)
    return out


def _sinr_pairs(store: Any, run_id: str) -> list[tuple[float, float]]:
    """(twin-predicted, measured) SINR in dB of every stored OTA link-slot of the run that has both."""
    pairs = []
    for row in store.experiences(run_id):
        m = row["measured"] or {}
        predicted, measured = m.get("twin_sinr_db"), m.get("sinr_db")
        if predicted is not None and measured is not None and math.isfinite(predicted) and math.isfinite(measured):
            pairs.append((float(predicted), float(measured)))
    return pairs


def _sinr_summary(pairs: list[tuple[float, float]]) -> dict[str, float] | None:
    if not pairs:
        return None
    errors = sorted(m - p for p, m in pairs)
    return {"link_slots": len(errors), "median_error_db": errors[len(errors) // 2],
            "median_abs_error_db": sorted(abs(e) for e in errors)[len(errors) // 2]}


class LinkAdaptationController(RunController):
    """``testbed run`` with ``--policy dqn``: calibrate, train the shared DQN in the twin with OTA episodes every
    Z_k and phi tracking, evaluate against MaxP-3GPP-CQI, OLLA and random (over the air, or on the analytic
    network with ``--physical analytic``)."""

    @staticmethod
    def new_config(names: list[str], physical: dict[str, Any], run_id: str, *, episodes: int | None,
                   ota_every: int | None, ota_slots: int | None, eval_episodes: int | None, reward: str | None,
                   discount: float | None, twin_view: str | None, twin_exploration: float | None,
                   replay_capacity: int | None, seed: int | None, config_path: str | None,
                   sim_config: str | None) -> dict[str, Any]:
        """The resolved configuration of a new run (``config.json``): :data:`RUN_DEFAULTS` and :data:`RUN_DQN`
        where an option is None; ``names`` empty with the analytic physical network."""
        learner = {k: v for k, v in (("epsilon_end", twin_exploration), ("replay_capacity", replay_capacity))
                   if v is not None}
        dqn = {**RUN_DQN, **learner, "episodes": episodes or RUN_DEFAULTS["episodes"],
               "ota_every": RUN_DEFAULTS["ota_every"] if ota_every is None else ota_every,
               "num_envs": RUN_DEFAULTS["num_envs"], "seed": 0 if seed is None else seed, "checkpoint_every": 1,
               "sync_phi": True, "physical_max_epsilon": 0.1, "reward": reward or "link",
               "discount": RUN_DEFAULTS["discount"] if discount is None else discount,
               "twin_context": "mirror" if physical["kind"] == "ota" else "independent"}
        # Over the air every device is rendered on the one device radio: the twin that trains for it hears the
        # links the same way (see twin.DTNConfig.interference).
        twin = {"interference": twin_view or "colocated"} if physical["kind"] == "ota" else {}
        return {"radios": names, "physical": physical, "policy": "dqn", "dqn": dqn, "twin": twin,
                "ota_slots": ota_slots or RUN_DEFAULTS["ota_slots"],
                "eval_episodes": RUN_DEFAULTS["eval_episodes"] if eval_episodes is None else eval_episodes,
                "run_id": run_id, "calibration_id": None, "config_path": config_path, "sim_config": sim_config,
                "versions": versions(), "command": sys.argv}

    def execute(self, recalibrate: bool, max_age_s: float) -> dict[str, Any]:
        """Run (or resume) the whole loop; returns the summary (also written to ``summary.json``).

        Raises:
            RunInterrupted: Ctrl-C during training (the run is resumable).
        """
        from testbed.inventory import open_radios
        from testbed.ota import OtaInterrupted
        from testbed.report_html import t_interval
        from testbed.run_report import link_adaptation_report
        from testbed.store import Store

        resolved, run = self.resolved, self.run
        with contextlib.ExitStack() as stack:
            store = stack.enter_context(Store(self.store_path))
            radios = (stack.enter_context(open_radios(resolved["radios"], self.cfg, seed=resolved["dqn"]["seed"]))
                      if resolved["radios"] else None)
            calibration = self.calibration(radios, store, recalibrate, max_age_s) if radios is not None else None
            trainer, twin_config = _build_link_adaptation(resolved, radios, calibration, self.flag)
            trainer.out_dir = run.path
            resolved["dqn"] = trainer.config.as_dict()
            resolved["twin_resolved"] = dataclasses.asdict(twin_config)
            if self.resume:
                trainer.load_checkpoint(run.checkpoint)
                run.truncate_metrics(trainer.episode)
                run.register(store, resolved, resolved.get("calibration_id"), resume=True)
                store.delete_experiences_after(run.run_id, trainer.episode)
            else:
                run.clear_metrics()
                run.register(store, resolved, resolved.get("calibration_id"), resume=False)
            run.write_config(resolved)
            ota = trainer.physical if resolved["physical"]["kind"] == "ota" else None
            if not run.checkpoint.exists():
                trainer.save_checkpoint(run.checkpoint)  # a radio that fails in the first episode rolls back here
            outages: list[dict[str, Any]] = []
            ota_seconds = self._train(trainer, ota, store, outages)
            policy = trainer.policy()
            policy.save(run / run.POLICY)
            evaluation: dict[str, float] = {}
            episode_values: dict[str, list[float]] = {}
            ota_throughput: dict[str, float] = {}
            not_acquired: dict[str, int] = {}
            eval_seconds = 0.0
            if resolved["eval_episodes"]:
                self.lines.stage(f"evaluating the policy and 3 baselines, {resolved['eval_episodes']} episode(s) each")
                t0 = time.perf_counter()
                with self.flag.installed():
                    try:
                        evaluation = _evaluate_link_adaptation(
                            policy, trainer.physical.context_network, twin_config, resolved["eval_episodes"],
                            resolved["dqn"]["seed"] + 10_000, show_progress=self.show_progress,
                            episode_values=episode_values, ota_throughput=ota_throughput,
                            not_acquired=not_acquired)
                    except OtaInterrupted:
                        evaluation = {}
                    except RadioFault as e:
                        evaluation = {}
                        outages.append({"episode": "evaluation", "error": f"{type(e).__name__}: {e}"})
                        click.echo(f"radio fault during the evaluation ({e}); no over-the-air comparison", err=True)
                    finally:
                        if ota is not None:
                            ota.close()
                eval_seconds = time.perf_counter() - t0
                run.write_json(run.EVALUATION, evaluation)
            store.set_run_status(run.run_id, "finished")
            sinr_pairs = _sinr_pairs(store, run.run_id)
        elapsed = time.perf_counter() - self.started
        metrics = run.read_metrics()
        summary = {
            "run": run.run_id, "run_dir": str(run.path), "episodes": trainer.episode,
            "ota_episodes": sum(1 for m in metrics if m["source"] == "physical"),
            "physical": resolved["physical"], "radios": resolved["radios"],
            "calibration_id": resolved.get("calibration_id"),
            "calibration_reused": resolved.get("calibration_reused"),
            "calibration_choice": resolved.get("calibration_choice"), "seconds": elapsed,
            "ota_seconds_this_call": ota_seconds + eval_seconds,
            "ota_share": (ota_seconds + eval_seconds) / elapsed if elapsed > 0 else 0.0,
            "evaluation": evaluation,
            "evaluation_ci95": {label: t_interval(episode_values[label]) for label in evaluation},
            "evaluation_ota_throughput_mbps": {label: ota_throughput[label] for label in evaluation
                                               if label in ota_throughput},
            "evaluation_ota_slots_not_acquired": {label: not_acquired[label] for label in evaluation
                                                  if label in not_acquired},
            "beats_maxp": (evaluation["policy"] > evaluation["maxp-3gpp-cqi"]) if evaluation else None,
            "last_phi": next((m["ota/measured_phi"] for m in reversed(metrics)
                              if m.get("ota/measured_phi") is not None), None),
            "policy_path": str(run / run.POLICY),
            "radio_outages": outages,
            "ota_sinr": _sinr_summary(sinr_pairs),
        }
        self.lines.stage("writing the report")
        summary["report"] = str(run.write_report(link_adaptation_report(run.path, summary, metrics, calibration,
                                                                        sinr_pairs)))
        run.write_json(run.SUMMARY, summary)
        return summary

    def _train(self, trainer: Any, ota: Any, store: Any, outages: list[dict[str, Any]]) -> float:
        """Episodes up to the configured count, checkpointed after each once the store has it; returns the seconds
        spent over the air. A radio fault rolls back to the checkpoint and training goes on in the twin while the
        radios are probed with backoff."""
        from testbed.ota import OtaInterrupted

        run = self.run
        first = trainer.episode
        ota_seconds = 0.0
        phi_now: float | None = None
        backoff, next_probe = RETRY_FIRST_S, 0.0
        trainer.out_dir = None  # the loop checkpoints after the store has the episode
        self.lines.stage(f"training: episodes {first + 1}..{trainer.config.episodes}, "
                         + (f"one in {trainer.config.ota_every} over the air" if trainer.config.ota_every else
                            "none over the air") if first < trainer.config.episodes else "training already done")
        interrupted = False
        with self.flag.installed(), self.status_on_failure(store):
            try:
                bar = progress(range(first + 1, trainer.config.episodes + 1), total=trainer.config.episodes - first,
                               desc="run", enabled=self.show_progress)
                for episode in bar:
                    if ota is not None and not trainer.physical_available and time.monotonic() >= next_probe:
                        if ota.probe():
                            trainer.physical_available = True
                            backoff = RETRY_FIRST_S
                            outages[-1]["back_at_episode"] = episode
                            click.echo(f"radios answer again; over-the-air episodes resume at episode {episode}",
                                       err=True)
                        else:
                            next_probe = time.monotonic() + backoff
                            backoff = min(2 * backoff, RETRY_MAX_S)
                    is_ota = trainer.is_physical_episode(episode) and trainer.physical_available
                    t0 = time.perf_counter()
                    try:
                        played = trainer.run(until_episode=episode)
                    except RadioFault as e:
                        if ota is None:
                            raise
                        # The episode in flight is lost: back to the last checkpoint, then keep training in the
                        # twin while the radios are retried with backoff.
                        ota.close()
                        ota.drain()
                        trainer.load_checkpoint(run.checkpoint)
                        trainer.physical_available = False
                        next_probe = time.monotonic() + backoff
                        backoff = min(2 * backoff, RETRY_MAX_S)
                        outages.append({"episode": episode, "error": f"{type(e).__name__}: {e}"})
                        click.echo(f"radio fault in over-the-air episode {episode} ({e}); training continues in "
                                   f"the twin, retrying the radios", err=True)
                        is_ota = False
                        played = trainer.run(until_episode=episode)
                    if is_ota:
                        ota_seconds += time.perf_counter() - t0
                    run.append_metrics(played)
                    if ota is not None and is_ota:
                        ota.end_episode()
                        rows, kpms = ota.drain()
                        store.add_experiences(run.run_id, episode, rows)
                        store.add_kpms([{**k, "episode": episode} for k in kpms], run.run_id)
                    trainer.save_checkpoint(run.checkpoint)
                    reward_now = played[-1].get("charts/episode_reward") if played else None
                    phi_now = next((m["ota/measured_phi"] for m in reversed(played)
                                    if m.get("ota/measured_phi") is not None), phi_now)
                    share = ota_seconds / max(time.perf_counter() - self.started, 1e-9)
                    if reward_now is not None and hasattr(bar, "set_postfix"):
                        bar.set_postfix(reward=f"{reward_now:.3f}", phi="-" if phi_now is None else f"{phi_now:+.3f}",
                                        ota=f"{100 * share:.0f}%", refresh=False)
                    self.lines.episode(episode, reward_now, phi_now, share, is_ota)
                    if self.flag.stop:
                        interrupted = True
                        break
            except OtaInterrupted:
                interrupted = True
            finally:
                trainer.out_dir = run.path
                if ota is not None:
                    ota.close()
        if interrupted:
            raise self.interrupted(store, trainer.episode)
        return ota_seconds


# ---- joint association and scheduling (MADDQN-DMADDPG) -------------------------------------------------------------

def _hetnet_over_the_air(network: Any, settings: dict[str, Any], calibration: CalibrationRecord,
                         radios: dict[str, Any], names: list[str], should_stop: Any) -> Any:
    """The :class:`testbed.ota_hetnet.HetNetOta` of ``network`` on the radios, with the calibration's link model,
    SNR references, numerology and carrier."""
    from testbed.ota_hetnet import HetNetOta
    from twin.calibration_record import from_calibration
    from twin.config import DTNConfig

    link_model = from_calibration(calibration, DTNConfig())
    return HetNetOta(network.with_updates(slots_per_episode=settings["ota_slots"]), link_model, radios, names[:-1],
                     names[-1], _snr_reference(calibration, names), numerology_name=calibration.numerology,
                     rbs_per_block=settings["rbs_per_block"], lo_hz=calibration.lo_hz, should_stop=should_stop)


def _hetnet_candidates(policy: Any, network: Any, seed: int) -> dict[str, Any]:
    """The trained policy and the baselines it is compared with, by label."""
    from agents.baselines import RandomHetNetPolicy, WMMSEPolicy

    return {"policy": policy, "wmmse-ssa": WMMSEPolicy(),
            "random": RandomHetNetPolicy(network.num_bs, network.num_blocks, seed)}


def _hetnet_eval_seeds(seed: int, episodes: int) -> list[int]:
    """Deployment seeds of the over-the-air evaluation (disjoint from the training episodes' seeds)."""
    return [20_000 + 1000 * seed + e for e in range(episodes)]


def episode_throughputs(records: list[dict[str, Any]], seeds: list[int], slots: int) -> dict[str, list[float]]:
    """Per policy, each evaluation episode's ``ota_throughput_mbps`` (the mean over its ``slots`` slots of the sum
    over UEs, real Mbit/s), from the UE-slot records of :func:`testbed.ota_hetnet.evaluate_over_the_air`."""
    sums: dict[str, dict[int, float]] = {}
    for r in records:
        per_seed = sums.setdefault(r["policy"], {seed: 0.0 for seed in seeds})
        per_seed[r["seed"]] = per_seed.get(r["seed"], 0.0) + float(r["ota_throughput_mbps"])
    return {label: [per_seed[seed] / slots for seed in seeds] for label, per_seed in sums.items()}


class _Stopped(Exception):
    """Ctrl-C during HetNet training: raised after the episode in flight is checkpointed."""


class HetNetController(RunController):
    """``testbed run --policy maddqn-dmaddpg``: calibrate, size the HetNet to the carrier (one macro BS + K small BSs,
    N UEs, as many blocks of 3 RBs as the numerology holds), train MADDQN-DMADDPG on B twin HetNets, evaluate it
    over the air against WMMSE + strongest-signal association and random decisions (:mod:`testbed.ota_hetnet`)."""

    @staticmethod
    def new_config(names: list[str], run_id: str, seed: int, config_path: str | None,
                   sim_config: str | None) -> dict[str, Any]:
        """The resolved configuration of a new HetNet run (the network and learner are added once the carrier's
        numerology is known from the calibration)."""
        return {"radios": names, "policy": "maddqn-dmaddpg", "run_id": run_id, "seed": seed,
                "settings": dict(HETNET_DEFAULTS), "calibration_id": None, "config_path": config_path,
                "sim_config": sim_config, "versions": versions(), "command": sys.argv}

    def save_checkpoint(self, learner: Any, history: Any) -> None:
        """Learner state and training history (as plain data), written atomically."""
        self.run.save_checkpoint({"learner": learner.state_dict(), "history": dataclasses.asdict(history)})

    def execute(self, recalibrate: bool, max_age_s: float) -> dict[str, Any]:
        """Run (or resume) the whole loop; returns the summary (also written to ``summary.json``); a summary with
        ``interrupted`` true was stopped during the evaluation (resumable).

        Raises:
            RunInterrupted: Ctrl-C during training (the run is resumable).
        """
        from agents.marl import MADDQNDMADDPG, MADDQNDMADDPGConfig, TrainingHistory, config_from_mapping, train
        from radio.ofdm import numerology
        from testbed.inventory import open_radios
        from testbed.ota import OtaInterrupted
        from testbed.ota_hetnet import evaluate_over_the_air
        from testbed.report_html import t_interval
        from testbed.run_report import hetnet_report
        from testbed.store import Store
        from twin.hetnet import HetNetConfig

        resolved, run = self.resolved, self.run
        names, seed, settings = resolved["radios"], resolved["seed"], resolved["settings"]
        # Read (or refuse) the checkpoint before any radio opens or the store changes.
        saved = run.load_checkpoint() if self.resume else None
        with contextlib.ExitStack() as stack:
            store = stack.enter_context(Store(self.store_path))
            radios = stack.enter_context(open_radios(names, self.cfg, seed=seed))
            calibration = self.calibration(radios, store, recalibrate, max_age_s)
            if self.resume:
                network = HetNetConfig(**resolved["hetnet"])
                learner_config = config_from_mapping(MADDQNDMADDPGConfig, resolved["learner"])
            else:
                blocks = min(settings["max_blocks"], numerology(calibration.numerology).n_rb // settings["rbs_per_block"])
                network = HetNetConfig(num_small_cells=settings["num_small_cells"], num_ues=settings["num_ues"],
                                       num_subchannels=blocks, slots_per_episode=settings["train_slots"])
                learner_config = MADDQNDMADDPGConfig()
            ota = _hetnet_over_the_air(network, settings, calibration, radios, names, self.flag)
            resolved.update(hetnet=dict(vars(network)), learner=dict(vars(learner_config)),
                            link_model=vars(ota.link_model), snr_ref_db=ota.snr_ref_db)
            learner = MADDQNDMADDPG(network, learner_config, seed)
            history = TrainingHistory()
            if saved is not None:
                learner.load_state_dict(saved["learner"])
                history = TrainingHistory(**saved["history"])
                run.truncate_metrics(len(history.returns))
            else:
                run.clear_metrics()
            run.register(store, resolved, calibration.id, resume=self.resume)
            run.write_config(resolved)
            history = self._train(learner, history, network, settings, seed, store, train)
            policy = learner.policy()
            policy.save(run / run.POLICY)
            candidates = _hetnet_candidates(policy, network, seed)
            seeds = _hetnet_eval_seeds(seed, settings["eval_episodes"])
            evaluation: dict[str, Any] = {}
            records: list[dict[str, Any]] = []
            interrupted, outage = False, None
            eval_started = time.perf_counter()
            if seeds:
                self.lines.stage(f"evaluating the policy and 2 baselines over the air, {len(seeds)} episode(s) each")
                total = len(candidates) * len(seeds) * settings["ota_slots"]
                slot_ticks = iter(progress(range(total), total=total, desc="evaluate over the air",
                                           enabled=self.show_progress))
                ota.no_sync_is_outcome = True  # each policy pays for the slots its decisions made unacquirable
                with self.flag.installed(), self.status_on_failure(store):
                    try:
                        evaluation = evaluate_over_the_air(candidates, ota, seeds, records=records,
                                                           on_slot=lambda: next(slot_ticks, None))
                    except OtaInterrupted:
                        interrupted = True
                    except RadioFault as e:
                        outage = f"{type(e).__name__}: {e}"
                        click.echo(f"radio fault during the over-the-air evaluation ({e}); no comparison", err=True)
                    finally:
                        ota.close()
            eval_seconds = time.perf_counter() - eval_started
            run.write_json(run.EVALUATION, evaluation)
            with open(run / "ota_records.jsonl", "w", encoding="utf-8") as stream:
                import json

                for row in records:
                    stream.write(json.dumps(row) + "\n")
            store.add_kpms([{"name": f"ota/{label}/{key}", "value": value} for label, m in evaluation.items()
                            for key, value in m.items() if isinstance(value, (int, float)) and math.isfinite(value)],
                           run.run_id)
            store.set_run_status(run.run_id, "interrupted" if interrupted else "finished")
        summary = {
            "run": run.run_id, "run_dir": str(run.path), "policy": "maddqn-dmaddpg", "radios": names,
            "episodes": len(history.returns), "calibration_id": calibration.id,
            "calibration_reused": resolved["calibration_reused"],
            "calibration_choice": resolved.get("calibration_choice"),
            "seconds": time.perf_counter() - self.started, "training_seconds": history.seconds,
            "ota_seconds": eval_seconds, "interrupted": interrupted, "radio_outage": outage, "evaluation": evaluation,
            "beats_wmmse": (evaluation["policy"]["ota_throughput_mbps"]
                            > evaluation["wmmse-ssa"]["ota_throughput_mbps"]) if evaluation else None,
            "ofdm_slots": ota.ofdm_slots, "policy_path": str(run / run.POLICY),
        }
        per_episode = episode_throughputs(records, seeds, settings["ota_slots"]) if evaluation else {}
        summary["evaluation_ci95"] = {label: t_interval(per_episode[label]) for label in evaluation}
        summary["report"] = str(run.write_report(hetnet_report(run.path, summary, run.read_metrics(), records,
                                                               calibration)))
        run.write_json(run.SUMMARY, summary)
        return summary

    def _train(self, learner: Any, history: Any, network: Any, settings: dict[str, Any], seed: int, store: Any,
               train: Any) -> Any:
        """Training episodes up to ``settings["episodes"]``, each checkpointed; returns the training history."""
        done = len(history.returns)
        bar = progress(range(done, settings["episodes"]), total=max(settings["episodes"] - done, 0), desc="train",
                       enabled=self.show_progress)
        ticks = iter(bar)
        self.lines.stage(f"training in the HetNet twin: episodes {done + 1}..{settings['episodes']}"
                         if done < settings["episodes"] else "training already done")

        def on_episode(i: int, trained: Any) -> None:
            self.run.append_metrics([{"episode": i + 1, "source": "twin", **trained.metrics[-1]}])
            self.save_checkpoint(learner, trained)
            next(ticks, None)
            ret = trained.metrics[-1].get("charts/return")
            if ret is not None and hasattr(bar, "set_postfix"):
                bar.set_postfix(ret=f"{ret:.3f}", refresh=False)
            self.lines.episode(i + 1, ret, None, 0.0, False)
            if self.flag.stop:
                raise _Stopped

        with self.flag.installed(), self.status_on_failure(store):
            try:
                if done < settings["episodes"] and not history.stopped_early:
                    history = train(learner, network, settings["episodes"], settings["num_envs"], seed,
                                    on_episode=on_episode, history=history)
            except _Stopped:
                raise self.interrupted(store, len(history.returns)) from None
        return history


# ---- evaluation of a finished run ------------------------------------------------------------------------------------

def evaluate_run(run: RunDirectory, resolved: dict[str, Any], names: list[str] | None, episodes: int,
                 seed: int | None, store_path: str | None, cfg: Any, show_progress: bool) -> dict[str, Any]:
    """``testbed eval``: the run's policy and its baselines again, on the run's radios (with the run's calibration)
    or on ``names`` (calibrated, or a recent record that measured them), at the run's carrier; or on the run's
    analytic network. Returns the result (evaluation by label and its 95 % intervals).

    Raises:
        click.ClickException: Ctrl-C stopped the evaluation (nothing is compared).
    """
    from agents.registry import load_policy
    from testbed.inventory import open_radios
    from testbed.ota import OtaInterrupted
    from testbed.ota_hetnet import evaluate_over_the_air
    from testbed.report_html import t_interval
    from testbed.store import Store
    from twin.hetnet import HetNetConfig

    policy = load_policy(run / run.POLICY)
    hetnet = resolved.get("policy") == "maddqn-dmaddpg"
    own = names is None or names == resolved["radios"]
    if not own:
        resolved = {**resolved, "radios": names, "calibration_id": None}
        if not hetnet:
            resolved["physical"] = {"kind": "ota"}
    flag = StopFlag()
    run_seed = resolved["seed"] if hetnet else resolved["dqn"]["seed"]
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(store_path))
        radios = (stack.enter_context(open_radios(resolved["radios"], cfg, seed=run_seed + 1))
                  if resolved["radios"] else None)
        calibration = None
        if radios is not None:
            calibration = _evaluation_calibration(resolved, radios, store, show_progress)
        with flag.installed():
            if hetnet:
                network = HetNetConfig(**resolved["hetnet"])
                ota = _hetnet_over_the_air(network, resolved["settings"], calibration, radios, resolved["radios"],
                                           flag)
                ota.no_sync_is_outcome = True
                seeds = _hetnet_eval_seeds(run_seed if seed is None else seed, episodes)
                records: list[dict[str, Any]] = []
                try:
                    evaluation = evaluate_over_the_air(_hetnet_candidates(policy, network, run_seed), ota, seeds,
                                                       records=records)
                except OtaInterrupted:
                    raise click.ClickException("evaluation interrupted; nothing was compared") from None
                finally:
                    ota.close()
                per_episode = episode_throughputs(records, seeds, resolved["settings"]["ota_slots"])
                return {"run": str(run.path), "radios": resolved["radios"], "policy": "maddqn-dmaddpg",
                        "episodes": episodes, "calibration_id": calibration.id, "evaluation": evaluation,
                        "evaluation_ci95": {label: t_interval(per_episode[label]) for label in evaluation}}
            trainer, twin_config = _build_link_adaptation(resolved, radios, calibration, flag)
            episode_values: dict[str, list[float]] = {}
            ota_throughput: dict[str, float] = {}
            not_acquired: dict[str, int] = {}
            try:
                evaluation = _evaluate_link_adaptation(
                    policy, trainer.physical.context_network, twin_config, episodes,
                    (run_seed + 20_000) if seed is None else seed, show_progress=show_progress,
                    episode_values=episode_values, ota_throughput=ota_throughput, not_acquired=not_acquired)
            except OtaInterrupted:
                raise click.ClickException("evaluation interrupted; nothing was compared") from None
            finally:
                if hasattr(trainer.physical, "close"):
                    trainer.physical.close()
    return {"run": str(run.path), "radios": resolved["radios"], "physical": resolved["physical"],
            "episodes": episodes, "evaluation": evaluation,
            "evaluation_ci95": {label: t_interval(values) for label, values in episode_values.items()},
            "evaluation_ota_throughput_mbps": ota_throughput, "evaluation_ota_slots_not_acquired": not_acquired}


def _evaluation_calibration(resolved: dict[str, Any], radios: dict[str, Any], store: Any,
                            show_progress: bool) -> CalibrationRecord:
    """The record an evaluation uses: the run's own (on its radios), else a recent or fresh one of these radios at
    the run's carrier; nothing in the run directory changes."""
    if resolved.get("calibration_id") is not None:
        return store.calibration(int(resolved["calibration_id"])).record()
    record, _ = calibrate_or_reuse(resolved["radios"], radios, store, CalibrationSettings(lo_hz=resolved["lo_hz"]),
                                   recalibrate=False, max_age_s=24 * 3600.0, out_dir=None,
                                   show_progress=show_progress)
    return record
