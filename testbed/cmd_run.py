"""``testbed run`` and ``testbed eval``: their options, checks and console output.

The loop itself (calibrate -> twin -> train with OTA every Z_k -> phi tracking -> evaluate -> report) is
:mod:`testbed.controller`; the run directory's files are :class:`testbed.rundir.RunDirectory`
(docs/run-directory.md has the schema).

Ctrl-C stops after the slot in flight, with the transmitters off, and exits 130 (a second Ctrl-C aborts at once,
also 130); ``--resume RUN`` continues from the last checkpoint (also after SIGKILL), dropping the in-flight
episode's metrics and stored experiences. A finished run resumed does nothing unless ``--reevaluate``. One process
at a time works in a run directory (:class:`testbed.rundir.RunLock`); the carrier (``--lo``, else ``[defaults]
lo_hz``) is checked against the TX guard before the directory is created.
``--physical analytic:phi=X`` runs the same loop against the analytic physical network, without radios.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from testbed.cliutil import (EXIT_INTERRUPTED, BadInput, emit, handle_errors, json_option, parse_physical,
                             single_thread_torch, store_option)
from testbed.controller import RUN_DEFAULTS, RUN_DQN, HetNetController, LinkAdaptationController, RunInterrupted
from testbed.inventory import load_config, parse_radio_list, radio_options
from testbed.rundir import (ProgressLines, RunDirectory, check_planned_transmissions, finished_at, finished_message,
                            resume_conflicts, run_carrier)

__all__ = ["eval_command", "run"]

POLICIES = ("dqn", "maddqn-dmaddpg")
"""``dqn``: link adaptation; ``maddqn-dmaddpg``: joint association and scheduling (:mod:`testbed.controller`)."""
HETNET_OPTIONS = ("--radios, --episodes, --eval-episodes, --ota-slots, --run-dir, --seed, --resume, --recalibrate, "
                  "--calibration-max-age")
"""The options ``--policy maddqn-dmaddpg`` uses."""


def _radio_names(radio_list: str) -> list[str]:
    names = parse_radio_list(radio_list)
    if len(set(names)) != len(names) or len(names) < 2:
        raise BadInput(f"--radios {radio_list!r}; allowed: two or more different radios (APs..., device)")
    return names


def _refuse_resume_conflicts(recorded: dict[str, Any], resume: str, *, policy: str | None, radio_list: str | None,
                             physical_spec: str | None, ota_every: int | None, ota_slots: int | None,
                             reward: str | None, discount: float | None, seed: int | None, run_dir: str | None,
                             lo_hz: float | None, recalibrate: bool, twin_view: str | None = None,
                             twin_exploration: float | None = None, replay_capacity: int | None = None) -> None:
    """Exit 2 naming every option given with ``--resume`` whose value differs from what the run recorded: a resumed
    run keeps its learner, radios, carrier and calibration (``--episodes`` and ``--eval-episodes`` may change)."""
    hetnet = recorded.get("policy") == "maddqn-dmaddpg"
    dqn = recorded.get("dqn") or {}
    given: dict[str, tuple[Any, Any]] = {
        "--policy": (policy, recorded.get("policy", "dqn")),
        "--radios": (parse_radio_list(radio_list) if radio_list else None, recorded.get("radios")),
        "--run-dir": (str(Path(run_dir).resolve()) if run_dir else None, str(Path(resume).resolve())),
        "--seed": (seed, recorded.get("seed") if hetnet else dqn.get("seed")),
        "--lo": (lo_hz, RunDirectory(resume).recorded_carrier(recorded) if recorded.get("radios") else None),
        "--recalibrate": (True if recalibrate else None, f"calibration {recorded.get('calibration_id')}"),
    }
    if not hetnet:
        given.update({
            "--physical": (parse_physical(physical_spec) if physical_spec else None, recorded.get("physical")),
            "--ota-every": (ota_every, dqn.get("ota_every")),
            "--ota-slots": (ota_slots, recorded.get("ota_slots")),
            "--reward": (reward, dqn.get("reward", "link")),
            "--discount": (discount, dqn.get("discount")),
            "--twin-view": (twin_view, (recorded.get("twin") or {}).get("interference", "geometric")),
            "--twin-exploration": (twin_exploration, dqn.get("epsilon_end")),
            "--replay-capacity": (replay_capacity, dqn.get("replay_capacity")),
        })
    conflicts = resume_conflicts(given)
    if conflicts:
        raise BadInput(f"--resume {resume}: {'; '.join(conflicts)}: a resumed run keeps its learner, radios, carrier "
                       f"and calibration; start a new run to change them (allowed with --resume: --episodes, "
                       f"--eval-episodes{', --ota-slots' if hetnet else ''}, --reevaluate)")


def resumable_on_abort(command: Any) -> Any:
    """A second Ctrl-C (or one before the stop flag is installed) ends the command with exit 130 and, when the run
    directory holds a resumable run, the command that continues it (instead of click's bare "Aborted!")."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            directory = click.get_current_context().meta.get("testbed.run_dir")
            if directory is not None and (Path(directory) / "config.json").exists():
                click.echo(f"aborted; continue with: testbed run --resume {directory}", err=True)
            else:
                click.echo("aborted before the run started; nothing to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


@click.command("run")
@click.option("--radios", "radio_list", default=None,
              help="Comma-separated radios; the last one is the device (receiver), the others AP radios.")
@click.option("--episodes", type=int, default=None, help=f"Z: training episodes (default {RUN_DEFAULTS['episodes']}).")
@click.option("--ota-every", "ota_every", type=int, default=None,
              help=f"Z_k: every Z_k-th episode runs over the air (default {RUN_DEFAULTS['ota_every']}; 0: never).")
@click.option("--policy", type=click.Choice(POLICIES), default=None,
              help="dqn (default): link adaptation (DTN); maddqn-dmaddpg: joint association and scheduling (HetNet).")
@click.option("--physical", "physical_spec", default=None,
              help="analytic:phi=X runs the loop against the analytic physical network, without radios.")
@click.option("--run-dir", "run_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/run-<time>).")
@click.option("--resume", "resume", type=click.Path(file_okay=False), default=None,
              help="Continue the run in this directory from its last checkpoint (a finished run: nothing to do).")
@click.option("--reevaluate", is_flag=True,
              help="With --resume of a finished run: evaluate its policy again and rewrite summary and report.")
@click.option("--lo", "lo_hz", type=float, default=None,
              help="Carrier frequency, Hz (default: [defaults] lo_hz of the config, else 2.45e9).")
@click.option("--recalibrate", is_flag=True, help="Calibrate even if a recent record exists.")
@click.option("--calibration-max-age", "max_age_h", type=float, default=24.0, show_default=True,
              help="Reuse a calibration record younger than this (hours).")
@click.option("--eval-episodes", "eval_episodes", type=int, default=None,
              help=f"OTA evaluation episodes per policy (default {RUN_DEFAULTS['eval_episodes']}; 0: none).")
@click.option("--ota-slots", "ota_slots", type=int, default=None,
              help=f"Slots of an over-the-air episode (default {RUN_DEFAULTS['ota_slots']}).")
@click.option("--reward", type=click.Choice(["link", "shared"]), default=None,
              help="What each link's agent learns from: its own goodput (link, the default), or the network's sum "
                   "(shared, the paper's).")
@click.option("--discount", type=float, default=None,
              help=f"gamma of the TD targets (default {RUN_DEFAULTS['discount']}: myopic; the paper's 0.9).")
@click.option("--twin-view", type=click.Choice(["colocated", "geometric"]), default=None,
              help="How the twin that trains for an over-the-air run hears interference: colocated (default: as the "
                   "one device radio hears the rendered links) or geometric (eq. 14, the paper's view).")
@click.option("--twin-exploration", type=float, default=None,
              help=f"Final exploration rate of twin episodes (default {RUN_DQN['epsilon_end']}; the paper's 0.01).")
@click.option("--replay-capacity", type=int, default=None,
              help=f"Replay memory in transitions (default {RUN_DQN['replay_capacity']:,}; the paper's 5,000).")
@click.option("--seed", type=int, default=None, help="Seed of the whole run (default 0).")
@store_option
@radio_options
@json_option
@handle_errors
@resumable_on_abort
def run(radio_list: str | None, episodes: int | None, ota_every: int | None, policy: str | None,
        physical_spec: str | None, run_dir: str | None, resume: str | None, reevaluate: bool, lo_hz: float | None,
        recalibrate: bool, max_age_h: float, eval_episodes: int | None, ota_slots: int | None, reward: str | None,
        discount: float | None, twin_view: str | None, twin_exploration: float | None, replay_capacity: int | None,
        seed: int | None, store_path: str | None, config_path: str | None, sim_config: str | None,
        as_json: bool) -> None:
    """Calibrate, train in the twin with OTA episodes every Z_k, evaluate over the air, report (resumable).

    With --policy maddqn-dmaddpg: calibrate, train joint association and scheduling in the HetNet twin, compare it
    with WMMSE + SSA over the air, report.

    Exit codes: 0 done (or a finished run resumed: nothing to do), 2 bad input (also: the run directory is in use
    by another process, or the TX guard forbids the run's carrier or gain), 3 radio fault, 130 interrupted by
    Ctrl-C (resume with --resume DIR).
    """
    single_thread_torch()
    _check_ranges(episodes=episodes, ota_every=ota_every, eval_episodes=eval_episodes, ota_slots=ota_slots,
                  max_age_h=max_age_h, discount=discount, twin_exploration=twin_exploration,
                  replay_capacity=replay_capacity)
    if twin_view is not None and physical_spec is not None:
        raise BadInput(f"--twin-view {twin_view}: only for runs on radios (--physical analytic keeps eq. 14's "
                       f"geometric view)")
    if reevaluate and not resume:
        raise BadInput("--reevaluate: only with --resume DIR (it evaluates a finished run again)")
    recorded: dict[str, Any] | None = None
    if resume:
        if not RunDirectory(resume).has_config():
            raise BadInput(f"--resume {resume}: no config.json there to continue")
        recorded = RunDirectory(resume).read_config()
        _refuse_resume_conflicts(recorded, resume, policy=policy, radio_list=radio_list, physical_spec=physical_spec,
                                 ota_every=ota_every, ota_slots=ota_slots, reward=reward, discount=discount,
                                 seed=seed, run_dir=run_dir, lo_hz=lo_hz, recalibrate=recalibrate,
                                 twin_view=twin_view, twin_exploration=twin_exploration,
                                 replay_capacity=replay_capacity)
        policy = recorded.get("policy", "dqn")
        when = finished_at(Path(resume))
        if when is not None and not reevaluate:
            message = finished_message(Path(resume), when)
            emit({"run_dir": resume, "finished": True, "finished_at": when, "nothing_to_do": True}, as_json,
                 lambda r: click.echo(message))
            if as_json:
                click.echo(message, err=True)
            return
    policy = policy or "dqn"
    if policy == "maddqn-dmaddpg":
        given = [flag for flag, value in (("--physical", physical_spec), ("--ota-every", ota_every),
                                          ("--discount", discount), ("--reward", reward),
                                          ("--twin-view", twin_view), ("--twin-exploration", twin_exploration),
                                          ("--replay-capacity", replay_capacity))
                 if value is not None and not (flag == "--reward" and value == "link")]
        if resume:
            given += [flag for flag, value in (("--run-dir", run_dir), ("--seed", seed)) if value is not None]
        if given:
            raise BadInput(f"{', '.join(given)}: not used by --policy maddqn-dmaddpg (it trains in the HetNet twin and "
                           f"is evaluated over the air{'; a resumed run keeps its own' if resume else ''}); allowed "
                           f"with it: {HETNET_OPTIONS}")
        if not radio_list and not resume:
            raise BadInput("--radios is required with --policy maddqn-dmaddpg (e.g. --radios sim0,sim1)")
        run, resolved = _hetnet_config(radio_list, run_dir, recorded, resume, seed, config_path, sim_config)
        for key, value in (("episodes", episodes), ("eval_episodes", eval_episodes), ("ota_slots", ota_slots)):
            if value is not None:
                resolved["settings"][key] = value
        total_episodes = resolved["settings"]["episodes"]
    else:
        run, resolved = _link_adaptation_config(radio_list, run_dir, recorded, resume, episodes, ota_every,
                                                physical_spec, lo_hz, ota_slots, eval_episodes, reward, discount,
                                                twin_view, twin_exploration, replay_capacity, seed, config_path,
                                                sim_config)
        total_episodes = resolved["dqn"]["episodes"]
    cfg = _check_carrier(resolved, run, resume, lo_hz)
    run.enter()
    if not resume and (run / (run.CONFIG if policy == "maddqn-dmaddpg" else run.CHECKPOINT)).exists():
        raise BadInput(f"--run-dir {run.path} already holds a run; use --resume {run.path} or another directory")
    lines = ProgressLines(total_episodes)
    lines.stage(f"run {run.path}: " + (f"opening {','.join(resolved['radios'])} and their calibration"
                                       if resolved["radios"] else "analytic physical network, no radios"))
    family = HetNetController if policy == "maddqn-dmaddpg" else LinkAdaptationController
    controller = family(run, resolved, resume=bool(resume), store_path=store_path, cfg=cfg,
                        show_progress=not as_json and sys.stderr.isatty(), lines=lines)
    try:
        summary = controller.execute(recalibrate, max_age_h * 3600)
    except RunInterrupted as stopped:
        if as_json:
            emit(stopped.summary, as_json)
        click.echo(f"interrupted after episode {stopped.summary['episodes']}; continue with: "
                   f"{stopped.summary['resume']}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    emit(summary, as_json, _print_hetnet_summary if policy == "maddqn-dmaddpg" else _print_summary)
    if summary.get("interrupted"):
        sys.exit(EXIT_INTERRUPTED)


def _check_ranges(**values: Any) -> None:
    """Exit 2 naming the first option outside its range."""
    for name, low in (("episodes", 1), ("ota_every", 0), ("eval_episodes", 0), ("ota_slots", 1), ("max_age_h", 0)):
        value = values[name]
        if value is not None and value < low:
            flag = "--calibration-max-age" if name == "max_age_h" else "--" + name.replace("_", "-")
            raise BadInput(f"{flag} {value}; allowed: a number >= {low}")
    if values["discount"] is not None and not 0.0 <= values["discount"] < 1.0:
        raise BadInput(f"--discount {values['discount']}; allowed: 0 <= gamma < 1")
    if values["twin_exploration"] is not None and not 0.0 <= values["twin_exploration"] <= 1.0:
        raise BadInput(f"--twin-exploration {values['twin_exploration']}; allowed: 0 <= epsilon <= 1")
    if values["replay_capacity"] is not None and not 64 <= values["replay_capacity"] <= 10_000_000:
        raise BadInput(f"--replay-capacity {values['replay_capacity']}; allowed: 64 (one batch) to 10,000,000 "
                       f"transitions")


def _link_adaptation_config(radio_list: str | None, run_dir: str | None, recorded: dict[str, Any] | None,
                            resume: str | None, episodes: int | None, ota_every: int | None,
                            physical_spec: str | None, lo_hz: float | None, ota_slots: int | None,
                            eval_episodes: int | None, reward: str | None, discount: float | None,
                            twin_view: str | None, twin_exploration: float | None, replay_capacity: int | None,
                            seed: int | None, config_path: str | None,
                            sim_config: str | None) -> tuple[RunDirectory, dict[str, Any]]:
    """The run directory and resolved config of a link-adaptation run (new, or the recorded one resumed)."""
    if resume:
        run = RunDirectory(resume)
        if not run.checkpoint.exists():
            raise BadInput(f"--resume {resume}: no config.json and checkpoint.pt there to continue")
        resolved = recorded
        if episodes is not None:
            resolved["dqn"]["episodes"] = episodes
    else:
        physical = parse_physical(physical_spec) if physical_spec is not None else None
        if physical is None:
            if not radio_list:
                raise BadInput("--radios is required (e.g. --radios sim0,sim1), or --physical analytic:phi=X")
            names = _radio_names(radio_list)
            physical = {"kind": "ota"}
        else:
            if radio_list:
                raise BadInput("--physical runs without radios; give either --radios or --physical")
            if lo_hz is not None:
                raise BadInput("--lo: --physical runs without radios (no carrier); give --lo with --radios")
            names = []
        run = RunDirectory(run_dir) if run_dir else RunDirectory.new_default()
        resolved = LinkAdaptationController.new_config(
            names, physical, run.path.name, episodes=episodes, ota_every=ota_every, ota_slots=ota_slots,
            eval_episodes=eval_episodes, reward=reward, discount=discount, twin_view=twin_view,
            twin_exploration=twin_exploration, replay_capacity=replay_capacity, seed=seed, config_path=config_path,
            sim_config=sim_config)
    if eval_episodes is not None:
        resolved["eval_episodes"] = eval_episodes
    return run, resolved


def _hetnet_config(radio_list: str | None, run_dir: str | None, recorded: dict[str, Any] | None,
                   resume: str | None, seed: int | None, config_path: str | None,
                   sim_config: str | None) -> tuple[RunDirectory, dict[str, Any]]:
    """The run directory and resolved config of a HetNet run (new, or the recorded one resumed)."""
    names = _radio_names(radio_list) if radio_list else None
    if resume:
        if names is not None and names != recorded["radios"]:
            raise BadInput(f"--radios {','.join(names)}: the run being resumed uses {','.join(recorded['radios'])}")
        return RunDirectory(resume), recorded
    run = RunDirectory(run_dir) if run_dir else RunDirectory.new_default()
    return run, HetNetController.new_config(names, run.path.name, 0 if seed is None else seed, config_path,
                                            sim_config)


def _check_carrier(resolved: dict[str, Any], run: RunDirectory, resume: str | None, lo_hz: float | None) -> Any:
    """The radios' config (None without radios), after the run's carrier (recorded, else ``--lo`` or the config's)
    is checked against the TX guard for every radio; the carrier goes into ``resolved["lo_hz"]``."""
    if not resolved["radios"]:
        return None
    cfg = load_config(resolved.get("config_path"), resolved.get("sim_config"))
    for n in resolved["radios"]:
        cfg.entry(n)
    if resume:
        carrier, source = run.recorded_carrier(resolved), "the run's recorded carrier"
    else:
        carrier, source = run_carrier(lo_hz, cfg)
    resolved["lo_hz"] = carrier
    check_planned_transmissions(cfg, resolved["radios"], carrier, source)
    return cfg


def _print_summary(s: dict[str, Any]) -> None:
    where = "over the air" if s["physical"]["kind"] == "ota" else "on the analytic network"
    click.echo(f"run {s['run']}: {s['episodes']} episodes ({s['ota_episodes']} OTA) in {s['seconds']:.0f} s")
    for label, value in s["evaluation"].items():
        ci = s["evaluation_ci95"][label]
        spread = "" if ci["low"] is None else f", 95 % CI {ci['low']:.3f} to {ci['high']:.3f}"
        delivered = s["evaluation_ota_throughput_mbps"].get(label)
        air = "" if delivered is None else f"; delivered {delivered:.3f} Mbit/s over the air"
        missed = s["evaluation_ota_slots_not_acquired"].get(label)
        air += f" ({missed} transmitter-slots not acquired, nothing delivered)" if missed else ""
        click.echo(f"  {label:<14} reward {value:.3f} twin-Mbit/s per slot ({where}, greedy; n = {ci['n']}"
                   f"{spread}){air}")
    if s["ota_sinr"]:
        click.echo(f"  measured SINR - twin's prediction: {s['ota_sinr']['median_error_db']:+.2f} dB median over "
                   f"{s['ota_sinr']['link_slots']} OTA link-slots")
    click.echo(f"report: {s['report']}")


def _print_hetnet_summary(s: dict[str, Any]) -> None:
    click.echo(f"run {s['run']}: {s['episodes']} twin episodes, over-the-air evaluation on "
               f"{', '.join(s['radios'])}, {s['seconds']:.0f} s")
    for label, m in s["evaluation"].items():
        ci = s["evaluation_ci95"][label]
        if ci["low"] is not None:
            click.echo(f"  {label:<10} over the air: 95 % CI {ci['low']:.3f} to {ci['high']:.3f} Mbit/s "
                       f"(n = {ci['n']} episodes)")
        click.echo(f"  {label:<10} {m['ota_throughput_mbps']:7.3f} Mbit/s over the air "
                   f"(credited {m['credited_twin_mbps']:.1f}, twin {m['twin_throughput_mbps']:.1f} twin units), "
                   f"Jain {m['jain']:.3f}, QoS non-compliance {m['qos_non_compliance']:.3f}")
    if s["interrupted"]:
        click.echo(f"  interrupted during the over-the-air evaluation; continue with: testbed run --resume "
                   f"{s['run_dir']}")
    click.echo(f"report: {s['report']}")


@click.command("eval")
@click.option("--run", "run_path", type=click.Path(file_okay=False, exists=True), required=True,
              help="Run directory holding policy.pt and config.json.")
@click.option("--radios", "radio_list", default=None, help="Radios to evaluate on (default: the run's).")
@click.option("--episodes", type=int, default=1, show_default=True, help="Evaluation episodes per policy.")
@click.option("--seed", type=int, default=None, help="Evaluation seed (default: the run's + 20000).")
@store_option
@radio_options
@json_option
@handle_errors
def eval_command(run_path: str, radio_list: str | None, episodes: int, seed: int | None, store_path: str | None,
                 config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """Evaluate a trained policy over the air (or on the run's analytic network) against the baselines."""
    single_thread_torch()
    from testbed.controller import evaluate_run

    run = RunDirectory(run_path)
    if not (run / run.POLICY).exists() or not run.has_config():
        raise BadInput(f"--run {run_path}: no policy.pt and config.json there (has the run finished?)")
    if episodes < 1:
        raise BadInput(f"--episodes {episodes}; allowed: an integer >= 1")
    resolved = run.read_config()
    names = _radio_names(radio_list) if radio_list else None
    cfg = None
    radios = names or resolved["radios"]
    if radios:
        cfg = load_config(config_path or resolved.get("config_path"), sim_config or resolved.get("sim_config"))
        for n in radios:
            cfg.entry(n)
        # The evaluation transmits at the run's carrier (and calibrates there when it needs a record).
        resolved["lo_hz"] = run.recorded_carrier(resolved)
        check_planned_transmissions(cfg, radios, resolved["lo_hz"], "the run's recorded carrier")
    result = evaluate_run(run, resolved, names, episodes, seed, store_path, cfg,
                          show_progress=not as_json and sys.stderr.isatty())
    emit(result, as_json, _print_hetnet_evaluation if resolved.get("policy") == "maddqn-dmaddpg"
         else _print_evaluation)


def _print_evaluation(r: dict[str, Any]) -> None:
    for k, v in r["evaluation"].items():
        click.echo(f"  {k:<14} reward {v:.3f} twin-Mbit/s per slot"
                   + (f"; delivered {r['evaluation_ota_throughput_mbps'][k]:.3f} Mbit/s over the air"
                      if k in r["evaluation_ota_throughput_mbps"] else ""))


def _print_hetnet_evaluation(r: dict[str, Any]) -> None:
    for k, m in r["evaluation"].items():
        click.echo(f"  {k:<10} {m['ota_throughput_mbps']:7.3f} Mbit/s over the air "
                   f"(credited {m['credited_twin_mbps']:.1f}, twin {m['twin_throughput_mbps']:.1f} twin units), "
                   f"Jain {m['jain']:.3f}")


# The CLI group looks commands up by name.
eval = eval_command  # noqa: A001 - the command is called "eval"
