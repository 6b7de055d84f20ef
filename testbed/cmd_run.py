"""``testbed run`` and ``testbed eval``: the hardware-in-the-loop loop and the evaluation of a trained policy.

``testbed run --radios sim0,sim1``:

1. opens the radios (the TX guard applies to every transmission); the last radio named is the device (receiver),
   the others are AP radios (see :mod:`testbed.ota` for the mapping and its limits);
2. calibrates them, or reuses the newest calibration record younger than ``--calibration-max-age`` that measured
   the same units (identity keys) at the same settings and full depth (``--recalibrate`` forces a new one); the
   console and the summary say which record was reused and why, or why younger ones were skipped;
3. builds the twin from the default twin config and the record (kappa_t, kappa_r, RB-group ACIR1/ACIR2, decoder
   gains); over the air it hears the links as the one device radio does (``interference="colocated"``) and caps a
   link's SNR where the AP radio's full power ends (``max_snr_db``), as the OTA runner renders them;
4. trains the shared DQN (Algorithm 2): twin episodes, and every Z_k-th episode an over-the-air episode with the
   current policy and bounded exploration; OTA transitions enter the replay memory (tagged physical) and the
   store; they update a running phi estimate and the twin's phi is set to it;
5. evaluates the policy over the air against MaxP-3GPP-CQI, OLLA and random;
6. writes the run directory: ``config.json`` (resolved config, versions, calibration id), ``metrics.jsonl``,
   ``checkpoint.pt`` (after every episode, atomically), ``calibration.json``, ``policy.pt``, ``evaluation.json``,
   ``summary.json`` (with ``ota_sinr``: measured minus twin-predicted SINR over the OTA link-slots, and
   ``evaluation_ci95``: each policy's per-episode values and the 95 % t-interval of their mean) and ``report.html``
   with its plots embedded and the calibration's report copied to ``calibration/`` (docs/run-directory.md has the
   schema).

Ctrl-C stops after the slot in flight, with the transmitters off, and exits 130 (a second Ctrl-C aborts at once,
also 130); ``--resume RUN`` continues from the last checkpoint (also after SIGKILL), dropping the in-flight
episode's metrics and stored experiences. A finished run resumed does nothing unless ``--reevaluate``. One process
at a time works in a run directory (:class:`testbed.rundir.RunLock`); the carrier (``--lo``, else ``[defaults]
lo_hz``) is checked against the TX guard before the directory is created.
``--physical analytic:phi=X`` runs the same loop against the analytic physical network, without radios.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import click

from radio.errors import RadioFault
from testbed.cliutil import EXIT_INTERRUPTED, BadInput, emit, handle_errors, json_option, progress
from testbed.cmd_calibrate import _value, calibrate_or_reuse, store_option
from testbed.inventory import load_config, open_radios, parse_radio_list, radio_options
from testbed.rundir import (DEFAULT_LO_HZ, ProgressLines, RunLock, check_planned_transmissions, finished_at,
                            finished_message, resume_conflicts, run_carrier)

__all__ = ["eval_command", "run"]

DEFAULTS = {"episodes": 200, "ota_every": 40, "num_envs": 8, "eval_episodes": 3, "ota_slots": 40, "discount": 0.0}
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
POLICIES = ("dqn", "maddqn-dmaddpg")
"""``dqn``: link adaptation (this module); ``maddqn-dmaddpg``: joint association and scheduling
(:mod:`testbed.cmd_run_hetnet`)."""
RETRY_FIRST_S, RETRY_MAX_S = 2.0, 60.0
"""Backoff between probes of radios that failed (seconds, doubling up to the maximum)."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("testbed", "torch", "numpy", "scipy", "sionna-no-rt", "pyzmq"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


class _StopFlag:
    """SIGINT sets the flag (the loop stops after the slot in flight); a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.stop

    @contextlib.contextmanager
    def installed(self) -> Iterator["_StopFlag"]:
        def handler(signum: int, frame: Any) -> None:
            if self.stop:
                raise KeyboardInterrupt
            self.stop = True
            click.echo("stopping after this slot (Ctrl-C again to abort now)", err=True)

        self._previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, self._previous)


def _snr_reference(results: dict[str, Any], ap_radios: list[str], device: str) -> dict[str, float]:
    noise = results["kappa"]["noise_term"]
    out = {}
    for ap in ap_radios:
        b = noise.get(f"{ap}->{device}")
        if b is None or b <= 0:
            raise BadInput(f"the calibration record has no noise term for {ap}->{device}; recalibrate these radios")
        out[ap] = -10 * math.log10(b)
    return out


def _build(resolved: dict[str, Any], radios: dict[str, Any] | None, calibration: dict[str, Any] | None,
           run_dir: Path, flag: _StopFlag):
    from agents.dqn import AnalyticPhiProbe, ContinualTrainer, DQNConfig
    from testbed.ota import OtaNetwork
    from twin.calibration_record import from_calibration
    from twin.config import DTNConfig
    from twin.network import AnalyticPhysical, LinkAdaptationNetwork

    base = DTNConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in resolved["twin"].items()})
    twin_config = from_calibration(calibration["results"]["twin"], base) if calibration else base
    snr_ref = None
    if resolved["physical"]["kind"] != "analytic":
        snr_ref = _snr_reference(calibration["results"], resolved["radios"][:-1], resolved["radios"][-1])
        if twin_config.interference == "colocated" and twin_config.max_snr_db is None:
            # What the weakest AP radio delivers at full power: the OTA runner caps stronger links there.
            twin_config = twin_config.with_updates(max_snr_db=min(snr_ref.values()))
    config = DQNConfig.from_mapping(resolved["dqn"])
    twin = LinkAdaptationNetwork(twin_config, batch_size=config.num_envs)
    if resolved["physical"]["kind"] == "analytic":
        physical: Any = AnalyticPhiProbe(AnalyticPhysical(resolved["physical"]["phi"], twin_config,
                                                          batch_size=config.num_envs), seed=config.seed + 3)
    else:
        names = resolved["radios"]
        ap, device = names[:-1], names[-1]
        physical = OtaNetwork(twin_config.with_updates(slots_per_episode=resolved["ota_slots"]), radios, ap, device,
                              snr_ref,
                              numerology_name=calibration["meta"]["settings"]["numerology"],
                              lo_hz=calibration["meta"]["settings"]["lo_hz"], should_stop=flag)
    return ContinualTrainer(config, twin, physical, out_dir=None), twin_config


def _calibration(resolved: dict[str, Any], radios: dict[str, Any], store: Any, recalibrate: bool, max_age_s: float,
                 quiet: bool) -> tuple[dict[str, Any], bool]:
    """The run's calibration record (the one it used before, when it has one), else a recent one or a fresh one."""
    from calibration.session import CalibrationSettings

    if resolved.get("calibration_id") is not None:
        row = store.calibration(int(resolved["calibration_id"]))
        return {"id": row.id, "results": row.results, "notes": row.notes, "meta": row.meta}, True
    return calibrate_or_reuse(resolved["radios"], radios, store,
                              CalibrationSettings(lo_hz=resolved.get("lo_hz", DEFAULT_LO_HZ)), recalibrate=recalibrate,
                              max_age_s=max_age_s, out_dir=None, show_progress=not quiet)


def _truncate_metrics(path: Path, last_episode: int) -> None:
    """Keep the lines of episodes up to ``last_episode``; a line torn by a kill mid-write is dropped too."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            episode = json.loads(line).get("episode", 0)
        except ValueError:
            continue
        if episode <= last_episode:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _delivered_html(summary: dict[str, Any]) -> str:
    """The evaluation's delivered throughput in real units, beside the reward in twin units (over the air only)."""
    delivered = summary.get("evaluation_ota_throughput_mbps") or {}
    if not delivered:
        return ""
    import html

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{summary['evaluation'][k]:.3f}</td><td>{v:.3f}</td>"
                   f"<td>{summary['evaluation'][k] / v if v > 0 else float('nan'):.2f}</td></tr>"
                   for k, v in delivered.items())
    return ("<h3>Delivered over the air</h3><p>Information bits of CRC-passed code blocks per second of air time, in "
            "the carrier's real Mbit/s, beside the reward in twin units and their ratio (the mapping: twin RRB "
            "symbol rate and nominal MCS rates against the REs a slot really carries).</p><table><tr><th>policy</th>"
            "<th>reward, twin units</th><th>delivered, Mbit/s</th><th>twin units per delivered Mbit/s</th></tr>"
            + rows + "</table>")


def _evaluate(policy: Any, network: Any, twin_config: Any, episodes: int, seed: int,
              show_progress: bool = False, episode_values: dict[str, list[float]] | None = None,
              ota_throughput: dict[str, float] | None = None) -> dict[str, float]:
    """Greedy evaluation of the policy and the baselines on the same network with the same deployments: mean reward
    per slot by label, in the twin's units (sum over links of the twin's nominal rate of the chosen MCS x the share
    of its code blocks that decoded, Mbit/s of the twin's RRBs). ``episode_values`` receives each label's
    per-episode values; ``ota_throughput``, over the air, each label's delivered throughput in real units
    (information bits of CRC-passed blocks per second of air time, Mbit/s)."""
    from agents.baselines import MaxPowerCQIPolicy, OllaPolicy, RandomPolicy
    from agents.dqn import evaluate_policy

    candidates = (("policy", policy), ("maxp-3gpp-cqi", MaxPowerCQIPolicy(twin_config.num_power_levels)),
                  ("olla", OllaPolicy(twin_config.num_power_levels, code_block_bits=twin_config.packet_bits)),
                  ("random", RandomPolicy(twin_config.num_actions, seed=seed)))
    out = {}
    for label, candidate in progress(candidates, total=len(candidates), desc="evaluate", enabled=show_progress):
        bits_before, air_before = getattr(network, "delivered_bits_total", 0), getattr(network, "air_time_s_total", 0.0)
        result = evaluate_policy(candidate, network, episodes, seed)
        out[label] = result.mean_reward
        air = getattr(network, "air_time_s_total", 0.0) - air_before
        if ota_throughput is not None and air > 0:
            ota_throughput[label] = (network.delivered_bits_total - bits_before) / air / 1e6
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


def sinr_scatter(path: Path, pairs: list[tuple[float, float]], xlabel: str, title: str) -> None:
    """PNG of measured SINR against a prediction (dB), with the diagonal: ``pairs`` are (predicted, measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([p for p, _ in pairs], [m for _, m in pairs], ".", ms=3, alpha=0.5)
    low, high = min(min(p, m) for p, m in pairs), max(max(p, m) for p, m in pairs)
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("measured SINR (dB)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _report(run_dir: Path, summary: dict[str, Any], calibration: dict[str, Any] | None,
            sinr_pairs: list[tuple[float, float]] | None = None) -> Path:
    """Write ``report.html`` (figures embedded, the calibration's report copied into ``calibration/``)."""
    import html

    from testbed.report_html import copy_calibration_report, figures_html, spread_rows

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    figures = []
    twin_m = [m for m in metrics if m["source"] == "twin"]
    ota_m = [m for m in metrics if m["source"] == "physical"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([m["episode"] for m in twin_m], [m["charts/episode_reward"] for m in twin_m], ".", ms=3, label="twin")
    ax.plot([m["episode"] for m in ota_m], [m["charts/episode_reward"] for m in ota_m], "o-", label="over the air")
    ax.set_xlabel("episode")
    ax.set_ylabel("sum goodput per slot (Mbit/s)")
    ax.set_title("training: twin and over-the-air episodes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "training.png", dpi=90)
    plt.close(fig)
    figures.append(("training.png", "Episode reward in the twin and over the air (the OTA versus twin throughput)."))
    phis = [(m["episode"], m["ota/measured_phi"]) for m in ota_m if m.get("ota/measured_phi") is not None]
    if phis:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([p[0] for p in phis], [p[1] for p in phis], "o-")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("episode")
        ax.set_ylabel("running phi")
        ax.set_title("phi measured over the air against the calibrated twin")
        fig.tight_layout()
        fig.savefig(run_dir / "phi.png", dpi=90)
        plt.close(fig)
        figures.append(("phi.png", "Running phi estimate after each OTA episode (the twin is set to it)."))
    if sinr_pairs:
        sinr_scatter(run_dir / "sinr.png", sinr_pairs, "twin-predicted SINR (dB)", "over-the-air link-slots")
        figures.append(("sinr.png", "Each link-slot of the OTA training episodes: measured SINR against what the twin "
                                    "(phi = 0) predicted for it: the twin's fidelity on these radios."))
    evaluation = summary.get("evaluation") or {}
    if evaluation:
        fig, ax = plt.subplots(figsize=(6, 3))
        labels = list(evaluation)
        ax.bar(labels, [evaluation[k] for k in labels], color=["tab:green"] + ["tab:grey"] * (len(labels) - 1))
        ax.set_ylabel("reward per slot (twin units)")
        ax.set_title("evaluation " + ("over the air" if summary["physical"]["kind"] != "analytic" else "(analytic)"))
        fig.tight_layout()
        fig.savefig(run_dir / "evaluation.png", dpi=90)
        plt.close(fig)
        figures.append(("evaluation.png", "Greedy policy against the baselines on the same physical network."))
    cal_html = "<p>No calibration (analytic physical network).</p>"
    if calibration:
        r = calibration["results"]
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_value(v))}</td></tr>"
                       for k, v in r["twin"].items())

        def db_cell(point: dict[str, Any], key: str) -> str:
            # An ACLR above what the receiving radio can resolve is only known as a lower bound.
            if point.get(key) is not None:
                return f"{point[key]:.1f}"
            bound = point.get(key.replace("_db", "_measured_db"))
            return f"&gt; {bound:.1f} (analyser limited)" if bound is not None else "n/a"

        aclr = "".join(
            f"<tr><td>{html.escape(pair)}</td><td>{db_cell(top, 'aclr1_db')}</td><td>{db_cell(top, 'acir1_db')}"
            f"</td></tr>"
            for pair, pts in r["aclr"].items() for top in [max(pts, key=lambda p: p["channel_power_dbfs"])])
        phi = r.get("phi") or {}
        report = copy_calibration_report(calibration, run_dir)
        choice = (summary.get("calibration_choice") or {}).get("message")
        cal_html = (f"<p>Calibration {calibration['id']}"
                    + (f' (<a href="{html.escape(report)}">report</a>)' if report else
                       " (its report is no longer in the store)")
                    + f"; phi against the nominal model {phi.get('value', float('nan')):.3f}.</p>"
                    + (f"<p>{html.escape(choice)}</p>" if choice else "")
                    + f"<table><tr><th>twin parameter</th><th>value</th></tr>{rows}</table>"
                    f"<table><tr><th>pair</th><th>ACLR1 dB</th><th>ACIR1 dB</th></tr>{aclr}</table>")
    spread = summary.get("evaluation_ci95") or {}
    ev = (spread_rows(spread) if spread else
          "<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in evaluation.items())
          + "</table>")
    imgs = figures_html(run_dir, figures)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>testbed run {html.escape(summary['run'])}"
            f"</title><style>body{{font-family:sans-serif;max-width:960px;margin:auto}}td,th{{padding:2px 8px}}"
            f"</style></head><body><h1>Run {html.escape(summary['run'])}</h1>"
            f"<p>{summary['episodes']} episodes ({summary['ota_episodes']} over the air) in {summary['seconds']:.0f} s; "
            f"OTA share of wall time {100 * summary['ota_share']:.0f} %."
            + (f" Measured SINR minus the twin's prediction: {summary['ota_sinr']['median_error_db']:+.2f} dB median "
               f"({summary['ota_sinr']['median_abs_error_db']:.2f} dB median absolute) over "
               f"{summary['ota_sinr']['link_slots']} OTA link-slots." if summary.get("ota_sinr") else "")
            + "</p>"
            f"<h2>Evaluation (mean reward per slot, twin units)</h2>"
            f"<p>Per policy: the mean over the evaluation episodes, the 95 % t-interval of that mean over the "
            f"n episodes, and each episode's mean over its slots. The reward is in the twin's units: the sum over "
            f"the links of the twin's nominal rate of the chosen MCS (Mbit/s of a twin RRB) times the share of its "
            f"code blocks whose CRC passed over the air.</p>{ev}{_delivered_html(summary)}"
            f"<h2>Calibration used</h2>{cal_html}<h2>Plots</h2>{imgs}</body></html>")
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _recorded_carrier(resolved: dict[str, Any], directory: Path) -> float:
    """The carrier (Hz) a run recorded; a run recorded without one used its calibration record's."""
    if resolved.get("lo_hz") is not None:
        return float(resolved["lo_hz"])
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        calibration = json.loads((directory / "calibration.json").read_text(encoding="utf-8"))
        return float(calibration["meta"]["settings"]["lo_hz"])
    return DEFAULT_LO_HZ


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
        "--lo": (lo_hz, _recorded_carrier(recorded, Path(resume)) if recorded.get("radios") else None),
        "--recalibrate": (True if recalibrate else None, f"calibration {recorded.get('calibration_id')}"),
    }
    if not hetnet:
        given.update({
            "--physical": (_parse_physical(physical_spec), recorded.get("physical")),
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


def _resumable_on_abort(command: Any) -> Any:
    """A second Ctrl-C (or one before the stop flag is installed) ends the command with exit 130 and, when the run
    directory holds a resumable run, the command that continues it (instead of click's bare "Aborted!")."""
    import functools

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


def _parse_physical(spec: str | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    from testbed.cmd_train import parse_physical

    return parse_physical(spec)


@click.command("run")
@click.option("--radios", "radio_list", default=None,
              help="Comma-separated radios; the last one is the device (receiver), the others AP radios.")
@click.option("--episodes", type=int, default=None, help=f"Z: training episodes (default {DEFAULTS['episodes']}).")
@click.option("--ota-every", "ota_every", type=int, default=None,
              help=f"Z_k: every Z_k-th episode runs over the air (default {DEFAULTS['ota_every']}; 0: never).")
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
              help=f"OTA evaluation episodes per policy (default {DEFAULTS['eval_episodes']}; 0: none).")
@click.option("--ota-slots", "ota_slots", type=int, default=None,
              help=f"Slots of an over-the-air episode (default {DEFAULTS['ota_slots']}).")
@click.option("--reward", type=click.Choice(["link", "shared"]), default=None,
              help="What each link's agent learns from: its own goodput (link, the default), or the network's sum "
                   "(shared, the paper's).")
@click.option("--discount", type=float, default=None,
              help=f"gamma of the TD targets (default {DEFAULTS['discount']}: myopic; the paper's 0.9).")
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
@_resumable_on_abort
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
    from testbed.cliutil import single_thread_torch

    single_thread_torch()
    from testbed.store import Store

    for name, value, low in (("--episodes", episodes, 1), ("--ota-every", ota_every, 0),
                             ("--eval-episodes", eval_episodes, 0), ("--ota-slots", ota_slots, 1),
                             ("--calibration-max-age", max_age_h, 0)):
        if value is not None and value < low:
            raise BadInput(f"{name} {value}; allowed: a number >= {low}")
    if discount is not None and not 0.0 <= discount < 1.0:
        raise BadInput(f"--discount {discount}; allowed: 0 <= gamma < 1")
    if twin_exploration is not None and not 0.0 <= twin_exploration <= 1.0:
        raise BadInput(f"--twin-exploration {twin_exploration}; allowed: 0 <= epsilon <= 1")
    if replay_capacity is not None and not 64 <= replay_capacity <= 10_000_000:
        raise BadInput(f"--replay-capacity {replay_capacity}; allowed: 64 (one batch) to 10,000,000 transitions")
    if twin_view is not None and physical_spec is not None:
        raise BadInput(f"--twin-view {twin_view}: only for runs on radios (--physical analytic keeps eq. 14's "
                       f"geometric view)")
    if reevaluate and not resume:
        raise BadInput("--reevaluate: only with --resume DIR (it evaluates a finished run again)")
    recorded: dict[str, Any] | None = None
    if resume:
        if not (Path(resume) / "config.json").exists():
            raise BadInput(f"--resume {resume}: no config.json there to continue")
        recorded = json.loads((Path(resume) / "config.json").read_text(encoding="utf-8"))
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
    reward = reward or "link"
    if policy == "maddqn-dmaddpg":
        given = [flag for flag, value in (("--physical", physical_spec), ("--ota-every", ota_every),
                                          ("--discount", discount), ("--reward", reward if reward != "link" else None),
                                          ("--twin-view", twin_view), ("--twin-exploration", twin_exploration),
                                          ("--replay-capacity", replay_capacity))
                 if value is not None]
        if resume:
            given += [flag for flag, value in (("--run-dir", run_dir), ("--seed", seed)) if value is not None]
        if given:
            raise BadInput(f"{', '.join(given)}: not used by --policy maddqn-dmaddpg (it trains in the HetNet twin and "
                           f"is evaluated over the air{'; a resumed run keeps its own' if resume else ''}); allowed "
                           f"with it: --radios, --episodes, --eval-episodes, --ota-slots, --run-dir, --seed, --resume, "
                           f"--recalibrate, --calibration-max-age")
        names = None
        if radio_list:
            names = parse_radio_list(radio_list)
            if len(set(names)) != len(names) or len(names) < 2:
                raise BadInput(f"--radios {radio_list!r}; allowed: two or more different radios (APs..., device)")
        elif not resume:
            raise BadInput("--radios is required with --policy maddqn-dmaddpg (e.g. --radios sim0,sim1)")
        if resume and not (Path(resume) / "config.json").exists():
            raise BadInput(f"--resume {resume}: no config.json there to continue")
        from testbed.cmd_run_hetnet import run_hetnet

        run_hetnet(names, episodes=episodes, eval_episodes=eval_episodes, ota_slots=ota_slots, run_dir=run_dir,
                   seed=0 if seed is None else seed, recalibrate=recalibrate, max_age_s=max_age_h * 3600,
                   store_path=store_path, config_path=config_path, sim_config=sim_config, as_json=as_json,
                   resume=resume, lo_hz=lo_hz)
        return
    if resume:
        directory = Path(resume)
        if not (directory / "checkpoint.pt").exists():
            raise BadInput(f"--resume {resume}: no config.json and checkpoint.pt there to continue")
        resolved = recorded
        if episodes is not None:
            resolved["dqn"]["episodes"] = episodes
    else:
        physical = _parse_physical(physical_spec)
        if physical is None:
            if not radio_list:
                raise BadInput("--radios is required (e.g. --radios sim0,sim1), or --physical analytic:phi=X")
            names = parse_radio_list(radio_list)
            if len(set(names)) != len(names) or len(names) < 2:
                raise BadInput(f"--radios {radio_list!r}; allowed: two or more different radios (APs..., device)")
            physical = {"kind": "ota"}
        else:
            if radio_list:
                raise BadInput("--physical runs without radios; give either --radios or --physical")
            if lo_hz is not None:
                raise BadInput("--lo: --physical runs without radios (no carrier); give --lo with --radios")
            names = []
        directory = Path(run_dir) if run_dir else Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
        learner = {k: v for k, v in (("epsilon_end", twin_exploration), ("replay_capacity", replay_capacity))
                   if v is not None}
        dqn = {**RUN_DQN, **learner, "episodes": episodes or DEFAULTS["episodes"],
               "ota_every": DEFAULTS["ota_every"] if ota_every is None else ota_every,
               "num_envs": DEFAULTS["num_envs"], "seed": 0 if seed is None else seed, "checkpoint_every": 1,
               "sync_phi": True, "physical_max_epsilon": 0.1, "reward": reward,
               "discount": DEFAULTS["discount"] if discount is None else discount,
               "twin_context": "mirror" if physical["kind"] == "ota" else "independent"}
        # Over the air every device is rendered on the one device radio: the twin that trains for it hears the
        # links the same way (see twin.DTNConfig.interference).
        twin = {"interference": twin_view or "colocated"} if physical["kind"] == "ota" else {}
        resolved = {"radios": names, "physical": physical, "policy": policy, "dqn": dqn, "twin": twin,
                    "ota_slots": ota_slots or DEFAULTS["ota_slots"],
                    "eval_episodes": DEFAULTS["eval_episodes"] if eval_episodes is None else eval_episodes,
                    "run_id": directory.name, "calibration_id": None, "config_path": config_path,
                    "sim_config": sim_config, "versions": _versions(), "command": sys.argv}
    if eval_episodes is not None:
        resolved["eval_episodes"] = eval_episodes
    flag = _StopFlag()
    cfg = load_config(resolved.get("config_path"), resolved.get("sim_config")) if resolved["radios"] else None
    for n in resolved["radios"]:
        cfg.entry(n)
    if cfg is not None:
        if resume:
            carrier, source = _recorded_carrier(resolved, directory), "the run's recorded carrier"
        else:
            carrier, source = run_carrier(lo_hz, cfg)
        resolved["lo_hz"] = carrier
        check_planned_transmissions(cfg, resolved["radios"], carrier, source)
    directory.mkdir(parents=True, exist_ok=True)
    click.get_current_context().with_resource(RunLock(directory))
    click.get_current_context().meta["testbed.run_dir"] = directory
    if not resume and (directory / "checkpoint.pt").exists():
        raise BadInput(f"--run-dir {directory} already holds a run; use --resume {directory} or another directory")
    lines = ProgressLines(resolved["dqn"]["episodes"])
    lines.stage(f"run {directory}: " + (f"opening {','.join(resolved['radios'])} and their calibration"
                                        if resolved["radios"] else "analytic physical network, no radios"))
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(store_path))
        radios = (stack.enter_context(open_radios(resolved["radios"], cfg, seed=resolved["dqn"]["seed"]))
                  if resolved["radios"] else None)
        calibration = None
        if radios is not None:
            calibration, reused = _calibration(resolved, radios, store, recalibrate, max_age_h * 3600, as_json)
            if resolved.get("calibration_id") is None:
                resolved["calibration_id"] = calibration["id"]
                resolved["calibration_reused"] = reused
                resolved["calibration_choice"] = calibration.pop("reuse", None)
            (directory / "calibration.json").write_text(json.dumps(calibration, indent=1, default=float),
                                                        encoding="utf-8")
        trainer, twin_config = _build(resolved, radios, calibration, directory, flag)
        trainer.out_dir = directory
        resolved["dqn"] = trainer.config.as_dict()
        resolved["twin_resolved"] = dataclasses.asdict(twin_config)
        checkpoint = directory / "checkpoint.pt"
        run_id = resolved["run_id"]
        if resume:
            trainer.load_checkpoint(checkpoint)
            _truncate_metrics(directory / "metrics.jsonl", trainer.episode)
            store.delete_experiences_after(run_id, trainer.episode)
            store.set_run_status(run_id, "running")
        else:
            (directory / "metrics.jsonl").unlink(missing_ok=True)
            # The id is the directory's name; a directory of the same name elsewhere already using it gets -2, -3...
            base, n = run_id, 1
            while (row := store.run(run_id)) is not None and row["run_dir"] != str(directory.resolve()):
                n += 1
                run_id = f"{base}-{n}"
            resolved["run_id"] = run_id
            if row is None:
                store.create_run(run_id, str(directory.resolve()), resolved, resolved.get("calibration_id"))
            else:
                # An earlier start in this directory died before its first checkpoint: keep nothing of it.
                store.delete_experiences_after(run_id, 0)
                store.set_run_status(run_id, "running")
        (directory / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True, default=str),
                                               encoding="utf-8")
        ota = trainer.physical if resolved["physical"]["kind"] == "ota" else None
        ota_seconds = 0.0
        interrupted = False
        from testbed.ota import OtaInterrupted

        first = trainer.episode
        phi_now: float | None = None
        if not checkpoint.exists():
            trainer.save_checkpoint(checkpoint)  # a radio that fails in the first episode rolls back to here
        outages: list[dict[str, Any]] = []
        backoff, next_probe = RETRY_FIRST_S, 0.0
        trainer.out_dir = None  # the loop below checkpoints after the store has the episode
        lines.stage(f"training: episodes {first + 1}..{trainer.config.episodes}, "
                    + (f"one in {trainer.config.ota_every} over the air" if trainer.config.ota_every else
                       "none over the air") if first < trainer.config.episodes else "training already done")
        with flag.installed():
            try:
                bar = progress(range(first + 1, trainer.config.episodes + 1), total=trainer.config.episodes - first,
                               desc="run", enabled=not as_json and sys.stderr.isatty())
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
                        trainer.load_checkpoint(checkpoint)
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
                    with open(directory / "metrics.jsonl", "a", encoding="utf-8") as stream:
                        for m in played:
                            stream.write(json.dumps(m) + "\n")
                    if ota is not None and is_ota:
                        ota.end_episode()
                        rows, kpms = ota.drain()
                        store.add_experiences(run_id, episode, rows)
                        store.add_kpms([{**k, "episode": episode} for k in kpms], run_id)
                    trainer.save_checkpoint(checkpoint)
                    reward_now = played[-1].get("charts/episode_reward") if played else None
                    phi_now = next((m["ota/measured_phi"] for m in reversed(played)
                                    if m.get("ota/measured_phi") is not None), phi_now)
                    share = ota_seconds / max(time.perf_counter() - started, 1e-9)
                    if reward_now is not None and hasattr(bar, "set_postfix"):
                        bar.set_postfix(reward=f"{reward_now:.3f}", phi="-" if phi_now is None else f"{phi_now:+.3f}",
                                        ota=f"{100 * share:.0f}%", refresh=False)
                    lines.episode(episode, reward_now, phi_now, share, is_ota)
                    if flag.stop:
                        interrupted = True
                        break
            except OtaInterrupted:
                interrupted = True
            except KeyboardInterrupt:
                store.set_run_status(run_id, "interrupted")
                raise
            except BaseException:
                store.set_run_status(run_id, "failed")
                raise
            finally:
                trainer.out_dir = directory
                if ota is not None:
                    ota.close()
        if interrupted:
            store.set_run_status(run_id, "interrupted")
            summary = {"run": run_id, "run_dir": str(directory), "interrupted": True, "episodes": trainer.episode,
                       "resume": f"testbed run --resume {directory}"}
            if as_json:
                emit(summary, as_json)
            click.echo(f"interrupted after episode {summary['episodes']}; continue with: {summary['resume']}",
                       err=True)
            sys.exit(EXIT_INTERRUPTED)
        policy_obj = trainer.policy()
        policy_obj.save(directory / "policy.pt")
        evaluation: dict[str, float] = {}
        episode_values: dict[str, list[float]] = {}
        ota_throughput: dict[str, float] = {}
        eval_seconds = 0.0
        if resolved["eval_episodes"]:
            lines.stage(f"evaluating the policy and 3 baselines, {resolved['eval_episodes']} episode(s) each")
            t0 = time.perf_counter()
            network = trainer.physical.context_network
            with flag.installed():
                try:
                    evaluation = _evaluate(policy_obj, network, twin_config, resolved["eval_episodes"],
                                           resolved["dqn"]["seed"] + 10_000,
                                           show_progress=not as_json and sys.stderr.isatty(),
                                           episode_values=episode_values, ota_throughput=ota_throughput)
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
            (directory / "evaluation.json").write_text(json.dumps(evaluation, indent=2), encoding="utf-8")
        store.set_run_status(run_id, "finished")
        sinr_pairs = _sinr_pairs(store, run_id)
    from testbed.report_html import t_interval

    elapsed = time.perf_counter() - started
    metrics = [json.loads(line) for line in (directory / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    summary = {
        "run": run_id, "run_dir": str(directory), "episodes": trainer.episode,
        "ota_episodes": sum(1 for m in metrics if m["source"] == "physical"),
        "physical": resolved["physical"], "radios": resolved["radios"], "calibration_id": resolved.get("calibration_id"),
        "calibration_reused": resolved.get("calibration_reused"),
        "calibration_choice": resolved.get("calibration_choice"), "seconds": elapsed,
        "ota_seconds_this_call": ota_seconds + eval_seconds,
        "ota_share": (ota_seconds + eval_seconds) / elapsed if elapsed > 0 else 0.0,
        "evaluation": evaluation,
        "evaluation_ci95": {label: t_interval(episode_values[label]) for label in evaluation},
        "evaluation_ota_throughput_mbps": {label: ota_throughput[label] for label in evaluation
                                           if label in ota_throughput},
        "beats_maxp": (evaluation["policy"] > evaluation["maxp-3gpp-cqi"]) if evaluation else None,
        "last_phi": next((m["ota/measured_phi"] for m in reversed(metrics) if m.get("ota/measured_phi") is not None),
                         None),
        "policy_path": str(directory / "policy.pt"),
        "radio_outages": outages,
        "ota_sinr": _sinr_summary(sinr_pairs),
    }
    lines.stage("writing the report")
    summary["report"] = str(_report(directory, summary, calibration, sinr_pairs))
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")

    def human(s: dict[str, Any]) -> None:
        where = "over the air" if s["physical"]["kind"] == "ota" else "on the analytic network"
        click.echo(f"run {s['run']}: {s['episodes']} episodes ({s['ota_episodes']} OTA) in {s['seconds']:.0f} s")
        for label, value in s["evaluation"].items():
            ci = s["evaluation_ci95"][label]
            spread = "" if ci["low"] is None else f", 95 % CI {ci['low']:.3f} to {ci['high']:.3f}"
            delivered = s["evaluation_ota_throughput_mbps"].get(label)
            air = "" if delivered is None else f"; delivered {delivered:.3f} Mbit/s over the air"
            click.echo(f"  {label:<14} reward {value:.3f} twin-Mbit/s per slot ({where}, greedy; n = {ci['n']}"
                       f"{spread}){air}")
        if s["ota_sinr"]:
            click.echo(f"  measured SINR - twin's prediction: {s['ota_sinr']['median_error_db']:+.2f} dB median over "
                       f"{s['ota_sinr']['link_slots']} OTA link-slots")
        click.echo(f"report: {s['report']}")

    emit(summary, as_json, human)


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
    from testbed.cliutil import single_thread_torch

    single_thread_torch()
    from agents.policy import load_policy
    from testbed.store import Store

    directory = Path(run_path)
    if not (directory / "policy.pt").exists() or not (directory / "config.json").exists():
        raise BadInput(f"--run {run_path}: no policy.pt and config.json there (has the run finished?)")
    if episodes < 1:
        raise BadInput(f"--episodes {episodes}; allowed: an integer >= 1")
    resolved = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if radio_list:
        names = parse_radio_list(radio_list)
        if len(set(names)) != len(names) or len(names) < 2:
            raise BadInput(f"--radios {radio_list!r}; allowed: two or more different radios (APs..., device)")
    if resolved.get("policy") == "maddqn-dmaddpg":
        from testbed.cmd_run_hetnet import eval_hetnet

        eval_hetnet(directory, resolved, names if radio_list else None, episodes, seed, store_path, config_path,
                    sim_config, as_json)
        return
    if radio_list:
        resolved["radios"] = names
        resolved["physical"] = {"kind": "ota"}
        resolved["calibration_id"] = None
    policy_obj = load_policy(directory / "policy.pt")
    flag = _StopFlag()
    cfg = load_config(config_path or resolved.get("config_path"), sim_config or resolved.get("sim_config")) \
        if resolved["radios"] else None
    for n in resolved["radios"]:
        cfg.entry(n)
    if cfg is not None:
        # The evaluation transmits at the run's carrier (and calibrates there when it needs a record).
        resolved["lo_hz"] = _recorded_carrier(resolved, directory)
        check_planned_transmissions(cfg, resolved["radios"], resolved["lo_hz"], "the run's recorded carrier")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(store_path))
        radios = stack.enter_context(open_radios(resolved["radios"], cfg, seed=resolved["dqn"]["seed"] + 1)) \
            if resolved["radios"] else None
        calibration = None
        if radios is not None:
            calibration, _ = _calibration(resolved, radios, store, False, 24 * 3600, as_json)
        trainer, twin_config = _build(resolved, radios, calibration, directory, flag)
        network = trainer.physical.context_network
        from testbed.ota import OtaInterrupted

        episode_values: dict[str, list[float]] = {}
        ota_throughput: dict[str, float] = {}
        with flag.installed():
            try:
                evaluation = _evaluate(policy_obj, network, twin_config, episodes,
                                       (resolved["dqn"]["seed"] + 20_000) if seed is None else seed,
                                       show_progress=not as_json and sys.stderr.isatty(),
                                       episode_values=episode_values, ota_throughput=ota_throughput)
            except OtaInterrupted:
                raise click.ClickException("evaluation interrupted; nothing was compared") from None
            finally:
                if hasattr(trainer.physical, "close"):
                    trainer.physical.close()
    from testbed.report_html import t_interval

    result = {"run": str(directory), "radios": resolved["radios"], "physical": resolved["physical"],
              "episodes": episodes, "evaluation": evaluation,
              "evaluation_ci95": {label: t_interval(values) for label, values in episode_values.items()},
              "evaluation_ota_throughput_mbps": ota_throughput}
    emit(result, as_json, lambda r: [click.echo(
        f"  {k:<14} reward {v:.3f} twin-Mbit/s per slot"
        + (f"; delivered {r['evaluation_ota_throughput_mbps'][k]:.3f} Mbit/s over the air"
           if k in r["evaluation_ota_throughput_mbps"] else "")) for k, v in r["evaluation"].items()])


# The CLI group looks commands up by name.
eval = eval_command  # noqa: A001 - the command is called "eval"
