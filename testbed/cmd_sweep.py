"""``testbed sweep FILE.toml``: a grid of ``testbed train`` runs (every combination x every seed is one job), run
on the local process pool or a Ray cluster, saved job by job in the store, summarised (console, JSON, CSV) and
plotted (a metric against a swept parameter, mean and 95 % confidence interval over the seeds).

The file::

    [sweep]
    name = "example"          # optional (default: the file's stem): jobs are saved under this name
    seeds = [0, 1, 2]         # every grid point is trained with each seed
    metric = "eval_policy_mbps"   # optional: the plotted metric (one of METRICS)
    x = "ota_every"           # optional: the plotted parameter (default: the first grid key)
    baselines = ["maxp-3gpp-cqi", "olla", "random"]   # optional: evaluated beside the policy (default all)

    [base]                    # options every job shares (the keys of [grid], one value each)
    episodes = 20
    [base.twin]
    num_aps = 2

    [grid]                    # each key a list of values
    ota_every = [0, 5]
    physical = ["analytic:phi=0.0", "analytic:phi=0.9"]
    "twin.kappa_t" = [0.05, 0.15]

Option keys: ``episodes``, ``ota_every``, ``physical``, ``num_envs``, ``eval_episodes``, ``agent``, every learner
setting of :class:`agents.dqn.DQNConfig` (``learning_rate``, ``discount``, ...), and ``twin.FIELD`` for the twin's
:class:`twin.config.DTNConfig` (a ``[base.twin]`` table in ``[base]``). Only twin / analytic training and evaluation
are distributed: radio-bound work (``--radios``) stays on the host that owns the radios, so ``radios`` is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from agents.jobs import EXECUTOR_FORMS
from testbed.cliutil import BadInput, emit, handle_errors, json_option
from testbed.cliutil import PHYSICAL_FORMS, parse_physical

__all__ = ["METRICS", "SweepPlan", "load_sweep", "summarise", "sweep", "train_job"]

METRICS: tuple[str, ...] = ("eval_policy_mbps", "eval_maxp_3gpp_cqi_mbps", "eval_olla_mbps", "eval_random_mbps",
                            "final_episode_reward_mbps", "physical_episodes", "last_measured_phi")
"""What every job returns (besides its time): greedy mean reward per slot on the physical network of the trained
policy and of the baselines (Mbit/s), the last training episode's reward, the physical episodes played and the last
phi measured over them."""

_RUN_OPTIONS: dict[str, str] = {
    "episodes": "an integer >= 1",
    "ota_every": "an integer >= 0 (0: twin only, 1: physical only)",
    "physical": PHYSICAL_FORMS,
    "num_envs": "an integer >= 1",
    "eval_episodes": "an integer >= 1",
    "agent": "madrl or sadrl",
}
_NOT_SWEPT = {"seed": "list the seeds in [sweep] seeds", "checkpoint_every": "sweep jobs keep no checkpoints",
              "device": "sweep jobs run on CPU"}
_RADIO_KEYS = ("radios", "radio")
_RADIO_REFUSAL = ("sweeps over --radios are refused: radio-bound work stays on the host that owns the radios (use "
                  "testbed run --radios there); only twin / analytic training and evaluation are distributed")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SWEEP_KEYS = ("name", "seeds", "metric", "x", "baselines")
BASELINES: tuple[str, ...] = ("maxp-3gpp-cqi", "olla", "random")
"""Baselines a sweep can evaluate beside each trained policy (OLLA loads Sionna's BLER tables once per worker
process: seconds)."""


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A validated sweep file."""

    name: str
    source: str
    seeds: tuple[int, ...]
    metric: str
    x: str
    baselines: tuple[str, ...]
    base: dict[str, Any]
    """Fixed options (``twin.FIELD`` keys flattened)."""
    grid: dict[str, list[Any]]
    """Swept options, in file order."""

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values (the first key varies slowest)."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def jobs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(job key, job config)`` of every point x seed: the config holds the resolved ``testbed train``
        settings (``dqn``, ``twin``, ``physical``, ``agent``, ``eval_episodes``) and, for the summary, the grid
        ``point`` and ``seed``."""
        from agents.jobs import job_key

        out = []
        for point in self.points():
            for seed in self.seeds:
                run = {**resolve_run({**self.base, **point}, seed), "baselines": list(self.baselines)}
                out.append((job_key(run), {**run, "point": point, "seed": seed}))
        return out


def _allowed_keys() -> dict[str, str]:
    from agents.dqn import DQNConfig
    from twin.config import DTNConfig

    allowed = dict(_RUN_OPTIONS)
    for f in dataclasses.fields(DQNConfig):
        if f.name not in allowed and f.name not in _NOT_SWEPT:
            allowed[f.name] = f"a value of the learner's {f.name} (type of {f.default!r})"
    for f in dataclasses.fields(DTNConfig):
        allowed[f"twin.{f.name}"] = f"a value of the twin's {f.name}"
    return allowed


def _refuse_radios(where: str, keys: Sequence[str]) -> None:
    for key in keys:
        if key.split(".")[-1] in _RADIO_KEYS:
            raise BadInput(f"{where} key {key!r}: {_RADIO_REFUSAL}")


def _check_value(where: str, key: str, value: Any) -> None:
    """Check one option's value on its own (the combinations are checked by building their configs)."""
    def integer(low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise BadInput(f"{where} {key} = {value!r}; allowed: {_RUN_OPTIONS[key]}")

    if key in ("episodes", "num_envs", "eval_episodes"):
        integer(1)
    elif key == "ota_every":
        integer(0)
    elif key == "agent":
        if value not in ("madrl", "sadrl"):
            raise BadInput(f"{where} agent = {value!r}; allowed: {_RUN_OPTIONS['agent']}")
    elif key == "physical":
        if not isinstance(value, str) or not value.strip().startswith("analytic"):
            raise BadInput(f"{where} physical = {value!r}; allowed: {PHYSICAL_FORMS} (radio-bound physical "
                           "networks are not swept: " + _RADIO_REFUSAL.split(": ", 1)[1] + ")")
        try:
            parse_physical(value)
        except BadInput:
            raise BadInput(f"{where} physical = {value!r}; allowed: {PHYSICAL_FORMS}") from None
    else:
        _check_type(where, key, value)


def _check_type(where: str, key: str, value: Any) -> None:
    from agents.dqn import DQNConfig
    from twin.config import DTNConfig

    config, name = (DTNConfig, key[5:]) if key.startswith("twin.") else (DQNConfig, key)
    default = next(f for f in dataclasses.fields(config) if f.name == name)
    reference = default.default if default.default is not dataclasses.MISSING else None
    ok = True
    if isinstance(reference, bool):
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(reference, str):
        ok = isinstance(value, str)
    elif isinstance(reference, tuple):
        ok = isinstance(value, list)
    if not ok:
        kind = type(reference).__name__ if reference is not None else "value"
        shown = "list" if kind == "tuple" else kind
        raise BadInput(f"{where} {key} = {value!r}; allowed: a {shown} (default {reference!r})")


def resolve_run(options: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The ``testbed train`` config of one job: options (``twin.FIELD`` keys for the twin) and the seed ->
    ``{"dqn", "twin", "physical", "agent", "eval_episodes"}`` (plain JSON)."""
    dqn: dict[str, Any] = {"checkpoint_every": 0, "seed": seed}
    twin: dict[str, Any] = {}
    physical = parse_physical("analytic")
    agent, eval_episodes = "madrl", 3
    for key, value in options.items():
        if key.startswith("twin."):
            twin[key[5:]] = value
        elif key == "physical":
            physical = parse_physical(value)
        elif key == "agent":
            agent = value
        elif key == "eval_episodes":
            eval_episodes = value
        else:
            dqn[key] = value
    return {"dqn": dqn, "twin": twin, "physical": physical, "agent": agent, "eval_episodes": eval_episodes}


def load_sweep(path: str | os.PathLike[str]) -> SweepPlan:
    """Read and validate a sweep file.

    Raises:
        BadInput: unreadable or invalid TOML, an unknown key, a value of the wrong kind or range, a radio key; the
            message names the key and what is allowed.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"sweep file {path}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"sweep file {path}: not valid TOML ({e})") from None
    _refuse_radios("sweep file", list(data))
    unknown = sorted(set(data) - {"sweep", "base", "grid"})
    if unknown:
        raise BadInput(f"sweep file {path}: table(s) {unknown} unknown; allowed: [sweep], [base], [grid]")
    head = data.get("sweep", {})
    base_in = data.get("base", {})
    grid_in = data.get("grid", {})
    for table, value in (("[sweep]", head), ("[base]", base_in), ("[grid]", grid_in)):
        if not isinstance(value, dict):
            raise BadInput(f"sweep file {path}: {table} must be a table")
    _refuse_radios("[sweep]", list(head))
    bad = sorted(set(head) - set(_SWEEP_KEYS))
    if bad:
        raise BadInput(f"[sweep] key(s) {bad} unknown; allowed: {', '.join(_SWEEP_KEYS)}")

    # [base] may hold a [base.twin] table; flatten it to twin.FIELD keys like the grid's.
    base: dict[str, Any] = {}
    for key, value in base_in.items():
        if key == "twin" and isinstance(value, dict):
            base.update({f"twin.{k}": v for k, v in value.items()})
        else:
            base[key] = value
    grid: dict[str, Any] = {}
    for key, value in grid_in.items():
        if key == "twin" and isinstance(value, dict):   # a [grid.twin] table
            grid.update({f"twin.{k}": v for k, v in value.items()})
        else:
            grid[key] = value
    allowed = _allowed_keys()
    for where, table in (("[base]", base), ("[grid]", grid)):
        _refuse_radios(where, list(table))
        for key in table:
            if key in _NOT_SWEPT:
                raise BadInput(f"{where} key {key!r} cannot be set: {_NOT_SWEPT[key]}")
            if key not in allowed:
                raise BadInput(f"{where} key {key!r} unknown; allowed: {', '.join(sorted(allowed))}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise BadInput(f"[grid] {key} = {values!r}; allowed: a non-empty list of values")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise BadInput(f"[grid] {key} = {values!r}: a value is listed twice; allowed: distinct values")
        for value in values:
            _check_value("[grid]", key, value)
    both = sorted(set(base) & set(grid))
    if both:
        raise BadInput(f"key(s) {both} are in both [base] and [grid]; allowed: each key in one of them")
    for key, value in base.items():
        _check_value("[base]", key, value)
    if not grid:
        raise BadInput(f"sweep file {path}: [grid] is empty; allowed: one or more keys, each with a list of values")

    seeds = head.get("seeds")
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds)):
        raise BadInput(f"[sweep] seeds = {seeds!r}; allowed: a non-empty list of distinct integers >= 0")
    name = head.get("name", file.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"[sweep] name = {name!r}; allowed: 1-64 letters, digits, '_', '-', '.'")
    metric = head.get("metric", METRICS[0])
    if metric not in METRICS:
        raise BadInput(f"[sweep] metric = {metric!r}; allowed: {', '.join(METRICS)}")
    x = head.get("x", next(iter(grid)))
    if x not in grid:
        raise BadInput(f"[sweep] x = {x!r}; allowed: a key of [grid] ({', '.join(grid)})")
    baselines = head.get("baselines", list(BASELINES))
    if (not isinstance(baselines, list) or any(b not in BASELINES for b in baselines)
            or len(set(baselines)) != len(baselines)):
        raise BadInput(f"[sweep] baselines = {baselines!r}; allowed: a list of distinct names from "
                       f"{', '.join(BASELINES)}")
    wanted = {"eval_maxp_3gpp_cqi_mbps": "maxp-3gpp-cqi", "eval_olla_mbps": "olla", "eval_random_mbps": "random"}
    if metric in wanted and wanted[metric] not in baselines:
        raise BadInput(f"[sweep] metric = {metric!r} needs {wanted[metric]!r} in baselines; allowed baselines: "
                       f"{', '.join(BASELINES)}")
    plan = SweepPlan(name, str(file), tuple(seeds), metric, x, tuple(baselines), base, grid)
    _check_combinations(plan)
    return plan


def _check_combinations(plan: SweepPlan) -> None:
    """Build the learner's and the twin's configs of every grid point, so that a value that is wrong only next to
    another (``num_rrbs`` not a multiple of ``num_aps``) is bad input now rather than a failed job later."""
    from agents.dqn import DQNConfig
    from twin.config import DTNConfig

    for point in plan.points():
        run = resolve_run({**plan.base, **point}, plan.seeds[0])
        try:
            DQNConfig.from_mapping(run["dqn"])
            twin = DTNConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in run["twin"].items()})
        except (ValueError, TypeError) as e:
            raise BadInput(f"grid point {json.dumps(point)}: {e}") from None
        if run["agent"] == "sadrl" and twin.num_devices > 3:
            raise BadInput(f"grid point {json.dumps(point)}: agent = 'sadrl' with twin.num_devices = "
                           f"{twin.num_devices}; allowed: sadrl with num_devices <= 3")


# ------------------------------------------------------------------------------------------------------------------
# One job (runs in a worker process, maybe on another host)
# ------------------------------------------------------------------------------------------------------------------

def train_job(config: Mapping[str, Any]) -> dict[str, Any]:
    """Train one ``testbed train`` configuration in the twin against the analytic physical network and evaluate
    the greedy policy and the baselines there. A pure function of ``config`` (its seed included).

    Returns:
        The :data:`METRICS` (Mbit/s per slot for the ``eval_*`` and reward ones; None for a baseline not asked
        for); no wall-clock time, so that the result depends on the config alone (the store keeps the job's time).
    """
    import torch

    from agents.baselines import MaxPowerCQIPolicy, OllaPolicy, RandomPolicy
    from agents.dqn import evaluate_policy
    from testbed.controller import build_trainer

    torch.set_num_threads(1)
    trainer, _ = build_trainer(config["dqn"], config["twin"], config["physical"], None, config["agent"])
    trainer.run()
    twin_config = trainer.twin.config
    network = trainer.physical.context_network
    episodes = int(config["eval_episodes"])
    eval_seed = trainer.config.seed + 10_000
    baselines = config.get("baselines", BASELINES)
    candidates = {"eval_policy_mbps": lambda: trainer.policy(),
                  "eval_maxp_3gpp_cqi_mbps": lambda: MaxPowerCQIPolicy(twin_config.num_power_levels),
                  "eval_olla_mbps": lambda: OllaPolicy(twin_config.num_power_levels,
                                                       code_block_bits=twin_config.packet_bits),
                  "eval_random_mbps": lambda: RandomPolicy(twin_config.num_actions, seed=eval_seed)}
    chosen = {"eval_policy_mbps": True, "eval_maxp_3gpp_cqi_mbps": "maxp-3gpp-cqi" in baselines,
              "eval_olla_mbps": "olla" in baselines, "eval_random_mbps": "random" in baselines}
    out: dict[str, Any] = {name: float(evaluate_policy(make(), network, episodes, eval_seed).mean_reward)
                           if chosen[name] else None for name, make in candidates.items()}
    played = [m for m in trainer.history if not m.get("calibration")]
    measured = [m["ota/measured_phi"] for m in played if m.get("ota/measured_phi") is not None]
    out.update(final_episode_reward_mbps=float(played[-1]["charts/episode_reward"]) if played else None,
               physical_episodes=sum(m["source"] == "physical" for m in played),
               last_measured_phi=float(measured[-1]) if measured else None)
    return out


# ------------------------------------------------------------------------------------------------------------------
# Summary, files, plot
# ------------------------------------------------------------------------------------------------------------------

def _mean_ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and half-width of the 95 % confidence interval of the mean (Student t; None with fewer than 2)."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    from scipy import stats

    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * spread / math.sqrt(len(values)))


def summarise(plan: SweepPlan, results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per grid point: its values, the seeds done, and each metric's mean and 95 % CI over those seeds.

    Args:
        results: job key -> the job's metrics (jobs missing or failed are simply not counted).
    """
    rows = []
    planned = plan.jobs()
    for point in plan.points():
        done = [(config["seed"], results[key]) for key, config in planned
                if config["point"] == point and key in results]
        row: dict[str, Any] = {"point": point, "seeds_done": [seed for seed, _ in done]}
        for metric in METRICS:
            mean, half = _mean_ci95([r.get(metric) for _, r in done])
            row[metric] = {"mean": mean, "ci95": half}
        rows.append(row)
    return rows


def _write_csv(path: Path, plan: SweepPlan, rows: Sequence[Mapping[str, Any]]) -> None:
    header = [*plan.grid, "seeds_done"] + [f"{m}_{part}" for m in METRICS for part in ("mean", "ci95")]
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row["point"][k] for k in plan.grid] + [len(row["seeds_done"])]
                            + ["" if row[m][part] is None else repr(row[m][part]) for m in METRICS
                               for part in ("mean", "ci95")])


def _x_value(key: str, value: Any) -> float | None:
    """A swept value as a number for the plot's x axis (phi of an analytic physical network), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if key == "physical":
        phi = parse_physical(value)["phi"]
        return None if phi is None else float(phi)
    return None


def plot(plan: SweepPlan, rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """PNG of ``plan.metric`` against ``plan.x``: one line per combination of the other swept keys, the mean over
    seeds with its 95 % confidence interval as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, metric = plan.x, plan.metric
    x_values = plan.grid[x_key]
    numeric = [_x_value(x_key, v) for v in x_values]
    positions = numeric if all(v is not None for v in numeric) else list(range(len(x_values)))
    others = [k for k in plan.grid if k != x_key]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[str, list[tuple[float, float | None, float | None]]] = {}
    for row in rows:
        label = ", ".join(f"{k}={row['point'][k]}" for k in others) or metric
        position = positions[x_values.index(row["point"][x_key])]
        series.setdefault(label, []).append((position, row[metric]["mean"], row[metric]["ci95"]))
    # Series side by side at each x, so that their error bars do not hide one another.
    span = (max(positions) - min(positions)) or 1.0
    for index, (label, points) in enumerate(series.items()):
        points = sorted(p for p in points if p[1] is not None)
        if not points:
            continue
        dodge = (index - (len(series) - 1) / 2) * 0.012 * span
        ax.errorbar([p[0] + dodge for p in points], [p[1] for p in points],
                    yerr=[0.0 if p[2] is None else p[2] for p in points], marker="o", capsize=3, label=label)
    if positions != numeric:
        ax.set_xticks(positions, [str(v) for v in x_values])
    ax.set_xlabel("phi" if x_key == "physical" and positions == numeric else x_key)
    ax.set_ylabel(metric)
    ax.set_title(f"sweep {plan.name}: mean and 95 % CI over {len(plan.seeds)} seeds")
    ax.grid(alpha=0.3)
    if len(series) > 1 or others:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------------------------

@click.command("sweep")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--executor", default="local", show_default=True, help=f"Where the jobs run: {EXECUTOR_FORMS}.")
@click.option("--workers", type=int, default=None,
              help="Local processes, or the CPUs of a Ray instance started for the sweep (default: the CPU count; "
                   "a cluster joined with ray:auto / ray:HOST:PORT uses all of its CPUs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where summary.json, summary.csv and the plot go (default runs/sweep-NAME).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
              help="Context store (default $TESTBED_STORE, else the user's data directory).")
@click.option("--fresh", is_flag=True, help="Run every job again (default: only the jobs not saved yet).")
@json_option
@handle_errors
def sweep(file: str, executor: str, workers: int | None, out_dir: str | None, store_path: str | None, fresh: bool,
          as_json: bool) -> None:
    """Train every combination of a TOML grid of `testbed train` options x seeds, summarise and plot them.

    Each finished job is saved in the store at once: a killed sweep, run again, runs only the missing jobs. A
    failed job is reported with its config and traceback, the others go on; the exit code is then 1."""
    from agents.jobs import JobProgress, failure_summary, import_ray, parse_executor, run_jobs, Job
    from testbed.store import Store

    spec = parse_executor(executor)
    if workers is not None and workers < 1:
        raise BadInput(f"--workers {workers}; allowed: an integer >= 1")
    plan = load_sweep(file)
    if spec.kind == "ray":
        import_ray()
    planned = plan.jobs()
    out = Path(out_dir) if out_dir else Path("runs") / f"sweep-{plan.name}"
    with Store(store_path) as store:
        if fresh:
            store.delete_sweep_jobs(plan.name, [key for key, _ in planned])
        saved = store.sweep_jobs(plan.name)
        results = {key: saved[key]["result"] for key, _ in planned
                   if key in saved and saved[key]["status"] == "done"}
        todo = [Job(key, train_job, (config,), config,
                    ", ".join(f"{k}={v}" for k, v in config["point"].items()) + f", seed={config['seed']}")
                for key, config in planned if key not in results]

        def finished(job: Job, result: dict[str, Any], seconds: float) -> None:
            store.save_sweep_job(plan.name, job.key, job.config, status="done", result=result, seconds=seconds)
            results[job.key] = result

        def failed(failure: Any) -> None:
            store.save_sweep_job(plan.name, failure.key, failure.config, status="failed",
                                 error=f"{failure.error}\n{failure.traceback}")
            click.echo(failure.describe(), err=True)

        report = run_jobs(todo, spec, workers=workers or os.cpu_count() or 1, on_result=finished, on_failure=failed,
                          progress=JobProgress(f"sweep {plan.name}"))

    rows = summarise(plan, results)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "sweep": plan.name, "file": plan.source, "executor": str(spec), "out": str(out),
        "jobs": len(planned), "jobs_run": len(todo), "jobs_kept": len(planned) - len(todo),
        "failed": [{"key": f.key, "label": f.label, "error": f.error} for f in report.failures],
        "seconds": report.seconds, "seeds": list(plan.seeds), "grid": plan.grid, "base": plan.base,
        "metric": plan.metric, "x": plan.x, "points": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
    _write_csv(out / "summary.csv", plan, rows)
    summary["plot"] = str(plot(plan, rows, out / f"{plan.metric}_vs_{plan.x.replace('.', '_')}.png"))

    def human(result: dict[str, Any]) -> None:
        click.echo(f"sweep {result['sweep']}: {result['jobs_run']} jobs run, {result['jobs_kept']} kept, "
                   f"{len(result['failed'])} failed ({result['executor']}, {result['seconds']:.1f} s)")
        keys = list(plan.grid)
        by_baseline = {"maxp-3gpp-cqi": "eval_maxp_3gpp_cqi_mbps", "olla": "eval_olla_mbps",
                       "random": "eval_random_mbps"}
        shown = list(dict.fromkeys([plan.metric, *(by_baseline[b] for b in plan.baselines)]))
        click.echo("  ".join([*(f"{k:>14}" for k in keys), "seeds", *(f"{m:>26}" for m in shown)]))
        for row in result["points"]:
            cells = [f"{str(row['point'][k]):>14}" for k in keys] + [f"{len(row['seeds_done']):>5}"]
            for m in shown:
                mean, half = row[m]["mean"], row[m]["ci95"]
                text = "-" if mean is None else f"{mean:.3f}" + ("" if half is None else f" ± {half:.3f}")
                cells.append(f"{text:>26}")
            click.echo("  ".join(cells))
        click.echo(f"wrote {result['out']}/summary.json, summary.csv and {result['plot']}")

    emit(summary, as_json, human)
    if report.failures:
        click.echo(f"Error: {failure_summary(report.failures, len(todo))}; the others are saved: the same command "
                   "runs only the failed and missing jobs.", err=True)
        sys.exit(1)
