"""``testbed run --policy maddqn-dmaddpg``: joint association and scheduling, trained in the HetNet twin, evaluated
over the air.

``testbed run --radios sim0,sim1 --policy maddqn-dmaddpg``:

1. opens the radios (the last named is the device radio, the others AP radios), calibrates them or reuses a recent
   record, exactly as the link-adaptation run does;
2. sizes the HetNet to the carrier: one macro BS + K small BSs, N UEs, as many blocks of 3 RBs as the calibrated
   numerology holds (8 on LTE 5 MHz);
3. trains MADDQN-DMADDPG on B twin HetNets (:func:`agents.marl.training.train`);
4. evaluates it over the air against WMMSE + strongest-signal association and random decisions, on the same
   deployments (:mod:`testbed.ota_hetnet`: BS -> AP radio, power split -> digital gain, co-channel UEs in
   separate OFDM slots, an MCS layer from the calibrated link model);
5. writes the run directory: ``config.json`` (resolved config, versions, calibration id), ``calibration.json``,
   ``metrics.jsonl`` (one line per training episode), ``checkpoint.pt`` (learner, optimisers, replay memory,
   generator states and history, after every episode, atomically), ``policy.pt``, ``evaluation.json``,
   ``ota_records.jsonl`` (every UE-slot played over the air), ``summary.json`` (``evaluation_ci95``: each policy's
   per-episode ``ota_throughput_mbps`` and the 95 % t-interval of their mean) and ``report.html`` (plots embedded,
   the calibration's report copied to ``calibration/``; docs/run-directory.md has the schema); the run is recorded
   in the store.

Ctrl-C stops after the episode (training) or slot (evaluation) in flight, with the transmitters off;
``testbed run --resume DIR`` continues from the last checkpoint (also after SIGKILL), bit-identically on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from testbed.cliutil import BadInput, emit, progress

HETNET_DEFAULTS: dict[str, Any] = {"episodes": 150, "num_envs": 4, "train_slots": 20, "ota_slots": 20,
                                   "eval_episodes": 3, "num_small_cells": 4, "num_ues": 20, "rbs_per_block": 3,
                                   "max_blocks": 20}
"""Defaults of the HetNet run: training episodes and networks, slots per training / over-the-air episode,
evaluation episodes per policy, small cells, UEs, RBs per block and the most blocks used."""


def _over_the_air(network: Any, settings: dict[str, Any], calibration: dict[str, Any], radios: dict[str, Any],
                  names: list[str], should_stop: Any) -> Any:
    """The :class:`testbed.ota_hetnet.HetNetOta` of ``network`` on the radios, with the calibration's link model,
    SNR references, numerology and carrier."""
    from testbed.cmd_run import _snr_reference
    from testbed.ota_hetnet import HetNetOta
    from twin.calibration_record import from_calibration
    from twin.config import DTNConfig

    meta = calibration["meta"]["settings"]
    link_model = from_calibration(calibration["results"]["twin"], DTNConfig())
    snr_ref = _snr_reference(calibration["results"], names[:-1], names[-1])
    return HetNetOta(network.with_updates(slots_per_episode=settings["ota_slots"]), link_model, radios, names[:-1],
                     names[-1], snr_ref, numerology_name=meta["numerology"], rbs_per_block=settings["rbs_per_block"],
                     lo_hz=meta["lo_hz"], should_stop=should_stop)


def _candidates(policy: Any, network: Any, seed: int) -> dict[str, Any]:
    """The trained policy and the baselines it is compared with, by label."""
    from agents.baselines import RandomHetNetPolicy, WMMSEPolicy

    return {"policy": policy, "wmmse-ssa": WMMSEPolicy(),
            "random": RandomHetNetPolicy(network.num_bs, network.num_blocks, seed)}


def _eval_seeds(seed: int, episodes: int) -> list[int]:
    """Deployment seeds of the over-the-air evaluation (disjoint from the training episodes' seeds)."""
    return [20_000 + 1000 * seed + e for e in range(episodes)]


def _episode_throughputs(records: list[dict[str, Any]], seeds: list[int], slots: int) -> dict[str, list[float]]:
    """Per policy, each evaluation episode's ``ota_throughput_mbps`` (the mean over its ``slots`` slots of the sum
    over UEs, real Mbit/s), from the UE-slot records of :func:`testbed.ota_hetnet.evaluate_over_the_air`."""
    sums: dict[str, dict[int, float]] = {}
    for r in records:
        per_seed = sums.setdefault(r["policy"], {seed: 0.0 for seed in seeds})
        per_seed[r["seed"]] = per_seed.get(r["seed"], 0.0) + float(r["ota_throughput_mbps"])
    return {label: [per_seed[seed] / slots for seed in seeds] for label, per_seed in sums.items()}


def _hetnet_report(directory: Path, summary: dict[str, Any], history: list[dict[str, Any]],
                   records: list[dict[str, Any]], calibration: dict[str, Any] | None = None) -> Path:
    """Write ``report.html`` (figures embedded, the calibration's report copied into ``calibration/``)."""
    import html

    from testbed.report_html import copy_calibration_report, figures_html, spread_rows

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from testbed.cmd_run import sinr_scatter

    figures = []
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([m["episode"] for m in history], [m["charts/return"] for m in history], ".-", ms=3)
    ax.set_xlabel("episode")
    ax.set_ylabel("return (eq. 10)")
    ax.set_title("MADDQN-DMADDPG training in the HetNet twin")
    fig.tight_layout()
    fig.savefig(directory / "training.png", dpi=90)
    plt.close(fig)
    figures.append(("training.png", "Episode return in the twin (mean over the B networks)."))
    evaluation = summary.get("evaluation") or {}
    if evaluation:
        labels = list(evaluation)
        fig, (ax_air, ax_twin) = plt.subplots(1, 2, figsize=(9, 3))
        x = range(len(labels))
        ax_air.bar(list(x), [evaluation[k]["ota_throughput_mbps"] for k in labels], 0.5)
        ax_air.set_xticks(list(x), labels)
        ax_air.set_ylabel("Mbit/s (delivered bits / air time)")
        ax_air.set_title("over the air", fontsize=9)
        ax_twin.bar([i - 0.2 for i in x], [evaluation[k]["credited_twin_mbps"] for k in labels], 0.4,
                    label="credited (measured CRC outcome)")
        ax_twin.bar([i + 0.2 for i in x], [evaluation[k]["twin_throughput_mbps"] for k in labels], 0.4,
                    label="twin Shannon, same decisions", color="tab:grey")
        ax_twin.set_xticks(list(x), labels)
        ax_twin.set_ylabel("twin units (Mbit/s of the twin's blocks)")
        ax_twin.set_title("in the twin's units", fontsize=9)
        ax_twin.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(directory / "evaluation.png", dpi=90)
        plt.close(fig)
        figures.append(("evaluation.png", "Greedy policies on the same deployments. Left: information bits of "
                                          "CRC-passed blocks per second of air time, in the carrier's real Mbit/s. "
                                          "Right, in the twin's units: what the learner is credited for the measured "
                                          "decoding outcome, and what the twin's Shannon rates give for the same "
                                          "decisions."))
    pairs = [(r["predicted_sinr_db"], r["sinr_db"]) for r in records
             if r["sinr_db"] is not None and r["predicted_sinr_db"] is not None and math.isfinite(r["sinr_db"])]
    if pairs:
        sinr_scatter(directory / "sinr.png", pairs, "predicted SINR (dB)", "over-the-air UE-slots")
        figures.append(("sinr.png", "Every UE-slot played: measured SINR against the calibrated model's prediction for "
                                    "the rendering (the twin's SINR as rendered, with the round's leakage and "
                                    "distortion)."))
    keys = ("ota_throughput_mbps", "credited_twin_mbps", "twin_throughput_mbps", "jain", "qos_non_compliance",
            "energy_efficiency", "handover_rate", "return", "bler", "sinr_error_db")
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("policy",) + keys)
    rows = "".join("<tr><td>" + html.escape(label) + "</td>" + "".join(
        f"<td>{m[k]:.3f}</td>" if isinstance(m.get(k), (int, float)) else "<td>-</td>" for k in keys) + "</tr>"
        for label, m in evaluation.items())
    imgs = figures_html(directory, figures)
    spread = summary.get("evaluation_ci95") or {}
    spread_html = ("<h3>ota_throughput_mbps over the evaluation episodes</h3><p>The mean over the episodes, its 95 % "
                   "t-interval over the n episodes, and each episode's mean over its slots (real Mbit/s).</p>"
                   + spread_rows(spread)) if spread else ""
    report = copy_calibration_report(calibration, directory)
    link = f' (<a href="{html.escape(report)}">report</a>)' if report else ""
    choice = (summary.get("calibration_choice") or {}).get("message")
    choice_html = f"<p>{html.escape(choice)}</p>" if choice else ""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>testbed run {html.escape(summary['run'])}"
            f"</title><style>body{{font-family:sans-serif;max-width:960px;margin:auto}}td,th{{padding:2px 8px}}"
            f"</style></head><body><h1>Run {html.escape(summary['run'])} (MADDQN-DMADDPG)</h1>"
            f"<p>{summary['episodes']} training episodes in the HetNet twin, evaluation over the air on "
            f"{html.escape(', '.join(summary['radios']))}; {summary['seconds']:.0f} s in all. Calibration "
            f"{summary['calibration_id']}{link}.</p>{choice_html}<h2>Evaluation over the air (means over slots)</h2>"
            f"<p>{UNITS_NOTE}</p><table><tr>{head}</tr>{rows}</table>{spread_html}<h2>Plots</h2>{imgs}"
            f"</body></html>")
    path = directory / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


UNITS_NOTE = (
    "ota_throughput_mbps is what the air delivered: information bits of CRC-passed code blocks per second of air "
    "time (every OFDM slot a twin slot took, its rounds included), in the carrier's real Mbit/s. credited_twin_mbps "
    "is what the learner is credited, in the twin's units: time share x the twin's block bandwidth x log2(M) x code "
    "rate x the fraction of code blocks whose CRC passed over the air; twin_throughput_mbps is the twin's Shannon "
    "rate for the same decisions, in the same units. Jain, QoS, energy efficiency and the return are the twin's "
    "formulas on the credited throughputs.")
"""How the run's three throughputs relate (report and console)."""


class _Stopped(Exception):
    """Ctrl-C during training: raised after the episode in flight is checkpointed."""


def _save_checkpoint(path: Path, learner: Any, history: Any) -> None:
    """Learner state and training history (as plain data), written atomically as a tensors-only checkpoint (a kill
    mid-write leaves the previous checkpoint)."""
    import dataclasses

    from agents.checkpoint import atomic_save

    atomic_save({"learner": learner.state_dict(), "history": dataclasses.asdict(history)}, path)


def run_hetnet(names: list[str] | None, *, episodes: int | None, eval_episodes: int | None, ota_slots: int | None,
               run_dir: str | None, seed: int, recalibrate: bool, max_age_s: float, store_path: str | None,
               config_path: str | None, sim_config: str | None, as_json: bool, resume: str | None = None,
               lo_hz: float | None = None) -> None:
    """The ``--policy maddqn-dmaddpg`` run (module docstring). ``resume``: a run directory to continue from its last
    checkpoint (training, then the evaluation); ``names`` is then the run's. ``lo_hz``: the carrier (Hz; None:
    ``[defaults] lo_hz`` of the config, else 2.45 GHz), checked against the TX guard before anything starts."""
    from agents.checkpoint import load_checkpoint
    from agents.marl import MADDQNDMADDPG, MADDQNDMADDPGConfig, TrainingHistory, train
    from calibration.session import CalibrationSettings
    from radio.errors import RadioFault
    from radio.ofdm import numerology
    from testbed.cmd_calibrate import calibrate_or_reuse
    from testbed.cliutil import EXIT_INTERRUPTED
    from testbed.cmd_run import _recorded_carrier, _StopFlag, _truncate_metrics, _versions
    from testbed.inventory import load_config, open_radios
    from testbed.ota import OtaInterrupted
    from testbed.ota_hetnet import evaluate_over_the_air
    from testbed.report_html import t_interval
    from testbed.rundir import ProgressLines, RunLock, check_planned_transmissions, run_carrier
    from testbed.store import Store
    from twin.hetnet import HetNetConfig

    if resume:
        directory = Path(resume)
        resolved = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if names is not None and names != resolved["radios"]:
            raise BadInput(f"--radios {','.join(names)}: the run being resumed uses {','.join(resolved['radios'])}")
        names, seed, settings = resolved["radios"], resolved["seed"], resolved["settings"]
        config_path, sim_config = resolved.get("config_path"), resolved.get("sim_config")
        # Read (or refuse) the checkpoint before any radio opens or the store changes.
        saved = load_checkpoint(directory / "checkpoint.pt") if (directory / "checkpoint.pt").exists() else None
    else:
        saved = None
        settings = dict(HETNET_DEFAULTS)
        directory = Path(run_dir) if run_dir else Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    for key, value in (("episodes", episodes), ("eval_episodes", eval_episodes), ("ota_slots", ota_slots)):
        if value is not None:
            settings[key] = value
    cfg = load_config(config_path, sim_config)
    for n in names:
        cfg.entry(n)
    if resume:
        carrier, source = _recorded_carrier(resolved, directory), "the run's recorded carrier"
    else:
        carrier, source = run_carrier(lo_hz, cfg)
    check_planned_transmissions(cfg, names, carrier, source)
    started = time.perf_counter()
    flag = _StopFlag()
    directory.mkdir(parents=True, exist_ok=True)
    click.get_current_context().with_resource(RunLock(directory))
    click.get_current_context().meta["testbed.run_dir"] = directory
    if not resume and (directory / "config.json").exists():
        raise BadInput(f"--run-dir {directory} already holds a run; use --resume {directory} or another directory")
    lines = ProgressLines(settings["episodes"])
    lines.stage(f"run {directory}: opening {','.join(names)} and their calibration")
    checkpoint = directory / "checkpoint.pt"
    metrics_path = directory / "metrics.jsonl"
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(store_path))
        radios = stack.enter_context(open_radios(names, cfg, seed=seed))
        if resume:
            row = store.calibration(int(resolved["calibration_id"]))
            calibration = {"id": row.id, "results": row.results, "notes": row.notes, "meta": row.meta}
            reused, choice = resolved["calibration_reused"], resolved.get("calibration_choice")
            network = HetNetConfig(**resolved["hetnet"])
            learner_config = MADDQNDMADDPGConfig(**resolved["learner"])
            run_id = resolved["run_id"]
        else:
            calibration, reused = calibrate_or_reuse(names, radios, store, CalibrationSettings(lo_hz=carrier),
                                                     recalibrate=recalibrate, max_age_s=max_age_s, out_dir=None,
                                                     show_progress=not as_json)
            choice = calibration.pop("reuse", None)
            (directory / "calibration.json").write_text(json.dumps(calibration, indent=1, default=float),
                                                        encoding="utf-8")
            n_rb = numerology(calibration["meta"]["settings"]["numerology"]).n_rb
            blocks = min(settings["max_blocks"], n_rb // settings["rbs_per_block"])
            network = HetNetConfig(num_small_cells=settings["num_small_cells"], num_ues=settings["num_ues"],
                                   num_subchannels=blocks, slots_per_episode=settings["train_slots"])
            learner_config = MADDQNDMADDPGConfig()
            run_id = directory.name
            base, k = run_id, 1
            while store.run(run_id) is not None:
                k += 1
                run_id = f"{base}-{k}"
        ota = _over_the_air(network, settings, calibration, radios, names, flag)
        resolved = {"radios": names, "policy": "maddqn-dmaddpg", "run_id": run_id, "seed": seed,
                    "settings": settings, "hetnet": dict(vars(network)), "learner": dict(vars(learner_config)),
                    "link_model": vars(ota.link_model), "snr_ref_db": ota.snr_ref_db,
                    "calibration_id": calibration["id"], "calibration_reused": reused,
                    "calibration_choice": choice, "lo_hz": carrier, "config_path": config_path,
                    "sim_config": sim_config, "versions": _versions(), "command": sys.argv}
        (directory / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True, default=str),
                                               encoding="utf-8")
        learner = MADDQNDMADDPG(network, learner_config, seed)
        history = TrainingHistory()
        if saved is not None:
            learner.load_state_dict(saved["learner"])
            history = TrainingHistory(**saved["history"])
            _truncate_metrics(metrics_path, len(history.returns))
        else:
            metrics_path.unlink(missing_ok=True)
        # A run killed between writing config.json and recording itself is recorded when it resumes.
        if store.run(run_id) is None:
            store.create_run(run_id, str(directory.resolve()), resolved, calibration["id"])
        else:
            store.set_run_status(run_id, "running")
        done = len(history.returns)
        bar = progress(range(done, settings["episodes"]), total=max(settings["episodes"] - done, 0), desc="train",
                       enabled=not as_json and sys.stderr.isatty())
        ticks = iter(bar)

        lines.stage(f"training in the HetNet twin: episodes {done + 1}..{settings['episodes']}"
                    if done < settings["episodes"] else "training already done")

        def on_episode(i: int, trained: Any) -> None:
            with open(metrics_path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps({"episode": i + 1, "source": "twin", **trained.metrics[-1]}) + "\n")
            _save_checkpoint(checkpoint, learner, trained)
            next(ticks, None)
            ret = trained.metrics[-1].get("charts/return")
            if ret is not None and hasattr(bar, "set_postfix"):
                bar.set_postfix(ret=f"{ret:.3f}", refresh=False)
            lines.episode(i + 1, ret, None, 0.0, False)
            if flag.stop:
                raise _Stopped

        interrupted, outage = False, None
        with flag.installed():
            try:
                if done < settings["episodes"] and not history.stopped_early:
                    history = train(learner, network, settings["episodes"], settings["num_envs"], seed,
                                    on_episode=on_episode, history=history)
            except _Stopped:
                interrupted = True
            except KeyboardInterrupt:
                store.set_run_status(run_id, "interrupted")
                raise
            except BaseException:
                store.set_run_status(run_id, "failed")
                raise
        if interrupted:
            store.set_run_status(run_id, "interrupted")
            summary = {"run": run_id, "run_dir": str(directory), "interrupted": True,
                       "episodes": len(history.returns), "resume": f"testbed run --resume {directory}"}
            if as_json:
                emit(summary, as_json)
            click.echo(f"interrupted after episode {summary['episodes']}; continue with: {summary['resume']}",
                       err=True)
            sys.exit(EXIT_INTERRUPTED)
        policy = learner.policy()
        policy.save(directory / "policy.pt")
        candidates = _candidates(policy, network, seed)
        seeds = _eval_seeds(seed, settings["eval_episodes"])
        evaluation: dict[str, Any] = {}
        records: list[dict[str, Any]] = []
        eval_started = time.perf_counter()
        if seeds:
            lines.stage(f"evaluating the policy and 2 baselines over the air, {len(seeds)} episode(s) each")
            total = len(candidates) * len(seeds) * settings["ota_slots"]
            slot_bar = progress(range(total), total=total, desc="evaluate over the air",
                                enabled=not as_json and sys.stderr.isatty())
            slot_ticks = iter(slot_bar)
            with flag.installed():
                try:
                    evaluation = evaluate_over_the_air(candidates, ota, seeds, records=records,
                                                       on_slot=lambda: next(slot_ticks, None))
                except OtaInterrupted:
                    interrupted = True
                except RadioFault as e:
                    outage = f"{type(e).__name__}: {e}"
                    click.echo(f"radio fault during the over-the-air evaluation ({e}); no comparison", err=True)
                except BaseException:
                    store.set_run_status(run_id, "failed")
                    raise
                finally:
                    ota.close()
        eval_seconds = time.perf_counter() - eval_started
        (directory / "evaluation.json").write_text(json.dumps(evaluation, indent=2), encoding="utf-8")
        with open(directory / "ota_records.jsonl", "w", encoding="utf-8") as stream:
            for row in records:
                stream.write(json.dumps(row) + "\n")
        kpms = [{"name": f"ota/{label}/{key}", "value": value} for label, m in evaluation.items()
                for key, value in m.items() if isinstance(value, (int, float)) and math.isfinite(value)]
        store.add_kpms(kpms, run_id)
        store.set_run_status(run_id, "interrupted" if interrupted else "finished")
    elapsed = time.perf_counter() - started
    history_rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines()
                    if line.strip()] if metrics_path.exists() else []
    summary = {
        "run": run_id, "run_dir": str(directory), "policy": "maddqn-dmaddpg", "radios": names,
        "episodes": len(history.returns), "calibration_id": calibration["id"], "calibration_reused": reused,
        "calibration_choice": choice,
        "seconds": elapsed, "training_seconds": history.seconds, "ota_seconds": eval_seconds,
        "interrupted": interrupted, "radio_outage": outage, "evaluation": evaluation,
        "beats_wmmse": (evaluation["policy"]["ota_throughput_mbps"] > evaluation["wmmse-ssa"]["ota_throughput_mbps"])
        if evaluation else None,
        "ofdm_slots": ota.ofdm_slots, "policy_path": str(directory / "policy.pt"),
    }
    if evaluation:
        per_episode = _episode_throughputs(records, seeds, settings["ota_slots"])
        summary["evaluation_ci95"] = {label: t_interval(per_episode[label]) for label in evaluation}
    else:
        summary["evaluation_ci95"] = {}
    summary["report"] = str(_hetnet_report(directory, summary, history_rows, records, calibration))
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")

    def human(s: dict[str, Any]) -> None:
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

    emit(summary, as_json, human)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)


def eval_hetnet(directory: Path, resolved: dict[str, Any], names: list[str] | None, episodes: int, seed: int | None,
                store_path: str | None, config_path: str | None, sim_config: str | None, as_json: bool) -> None:
    """``testbed eval --run DIR`` of a ``--policy maddqn-dmaddpg`` run: its policy, WMMSE + SSA and random over the
    air on the run's radios (with the run's calibration) or on ``names`` (calibrated or a recent record)."""
    from agents.policy import load_policy
    from calibration.session import CalibrationSettings
    from testbed.cmd_calibrate import calibrate_or_reuse
    from testbed.cmd_run import _recorded_carrier, _StopFlag
    from testbed.inventory import load_config, open_radios
    from testbed.ota import OtaInterrupted
    from testbed.ota_hetnet import evaluate_over_the_air
    from testbed.report_html import t_interval
    from testbed.rundir import check_planned_transmissions
    from testbed.store import Store
    from twin.hetnet import HetNetConfig

    policy = load_policy(directory / "policy.pt")
    network = HetNetConfig(**resolved["hetnet"])
    settings = resolved["settings"]
    own = names is None or names == resolved["radios"]
    names = resolved["radios"] if names is None else names
    cfg = load_config(config_path or resolved.get("config_path"), sim_config or resolved.get("sim_config"))
    for n in names:
        cfg.entry(n)
    carrier = _recorded_carrier(resolved, directory)
    check_planned_transmissions(cfg, names, carrier, "the run's recorded carrier")
    flag = _StopFlag()
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(store_path))
        radios = stack.enter_context(open_radios(names, cfg, seed=resolved["seed"] + 1))
        row = store.calibration(int(resolved["calibration_id"])) if own else None
        if row is not None:
            calibration = {"id": row.id, "results": row.results, "notes": row.notes, "meta": row.meta}
        else:
            calibration, _ = calibrate_or_reuse(names, radios, store, CalibrationSettings(lo_hz=carrier),
                                                recalibrate=False, max_age_s=24 * 3600.0, out_dir=None,
                                                show_progress=not as_json)
        ota = _over_the_air(network, settings, calibration, radios, names, flag)
        seeds = _eval_seeds(resolved["seed"] if seed is None else seed, episodes)
        with flag.installed():
            try:
                records: list[dict[str, Any]] = []
                evaluation = evaluate_over_the_air(_candidates(policy, network, resolved["seed"]), ota, seeds,
                                                   records=records)
            except OtaInterrupted:
                raise click.ClickException("evaluation interrupted; nothing was compared") from None
            finally:
                ota.close()
    per_episode = _episode_throughputs(records, seeds, settings["ota_slots"])
    result = {"run": str(directory), "radios": names, "policy": "maddqn-dmaddpg", "episodes": episodes,
              "calibration_id": calibration["id"], "evaluation": evaluation,
              "evaluation_ci95": {label: t_interval(per_episode[label]) for label in evaluation}}
    emit(result, as_json, lambda r: [click.echo(
        f"  {k:<10} {m['ota_throughput_mbps']:7.3f} Mbit/s over the air "
        f"(credited {m['credited_twin_mbps']:.1f}, twin {m['twin_throughput_mbps']:.1f} twin units), "
        f"Jain {m['jain']:.3f}") for k, m in r["evaluation"].items()])
