"""``testbed repro``: regenerate the seed papers' experiments with our twin and write docs/RESULTS.md.

``testbed repro hetnet`` trains MADDQN-DMADDPG, DQN-DDDPG, QMIX, MADDPG and MAPPO on the HetNet twin, evaluates
them with WMMSE + strongest-signal association and writes the second paper's tables (overall comparison,
ablations, scaling, sub-channel scarcity, robustness, the fairness weight, training efficiency, decision cost).
With ``--only`` it keeps the jobs saved beside the figures by an earlier call with the same budget.

``testbed repro dtn`` trains and evaluates the DTN link-adaptation experiments (Figs. 5-8, Table 4) against
the analytic physical network and writes its section of the results page, PNG plots and a JSON of every
number. ``--quick`` runs the same pipeline on tiny networks and budgets (a few minutes on 2 cores, for CI)
and, unless told otherwise, writes under ``runs/repro-dtn-quick/`` so that it never replaces the full
results in ``docs/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agents.jobs import EXECUTOR_FORMS
from testbed.cliutil import BadInput, emit, handle_errors, json_option

__all__ = ["repro"]

PAPERS = ("dtn", "hetnet")
"""Papers ``testbed repro`` can reproduce."""


@click.command("repro")
@click.argument("paper", metavar="PAPER")
@click.option("--quick", is_flag=True, help="Tiny networks and budgets (minutes, for CI); numbers carry no meaning.")
@click.option("--only", "only", default=None,
              help="Comma-separated experiments to run (dtn: fig5a, fig5b, fig5c, fig5d, fig6ab, fig6c, fig7a, fig7b, "
                   "fig7c, fig8, printed, reward; hetnet: overall, ablation, scaling, scarcity, robustness, "
                   "fairness); "
                   "default all.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False), default=None,
              help="Results page to update (default docs/RESULTS.md; with --quick runs/repro-PAPER-quick/RESULTS.md).")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), default=None,
              help="Where the PNG plots go (default docs/figures; with --quick next to the results page).")
@click.option("--workers", type=int, default=None, help="Training runs in parallel (default: the profile's, 2).")
@click.option("--fresh", is_flag=True,
              help="Recompute every run (default reuses the runs saved beside the figures with the same budget: "
                   "dtn always, hetnet with --only; and the jobs a killed or failed call saved).")
@click.option("--executor", default="local", show_default=True,
              help=f"Where the training jobs run: {EXECUTOR_FORMS}.")
@json_option
@handle_errors
def repro(paper: str, quick: bool, only: str | None, results_path: str | None, figures_dir: str | None,
          workers: int | None, fresh: bool, executor: str, as_json: bool) -> None:
    """Reproduce a seed paper's experiments (PAPER: dtn or hetnet) and write its section of docs/RESULTS.md.

    Every job is saved as it finishes (under runs/repro-PAPER/jobs, or PAPER-jobs beside the results page): a
    killed or failed call, run again, trains only the missing jobs."""
    from agents.jobs import import_ray, parse_executor

    if paper not in PAPERS:
        raise BadInput(f"PAPER {paper!r}; allowed: {', '.join(PAPERS)}")
    if parse_executor(executor).kind == "ray":
        import_ray()
    if paper == "hetnet":
        _repro_hetnet(quick, only, results_path, figures_dir, workers, fresh, executor, as_json)
        return
    from testbed.repro import dtn as repro_dtn
    from agents.jobs import JobProgress

    base = repro_dtn.QUICK if quick else repro_dtn.FULL
    profile, selected, results, figures, command = _common(
        "dtn", base, [e.key for e in repro_dtn.plan(base)], quick, only, results_path, figures_dir, workers)
    job_dir = _job_dir("dtn", quick, results_path, results)
    known = None
    if fresh:
        repro_dtn.clear_jobs(job_dir, profile)
    else:
        known = repro_dtn.load_raw(figures / "dtn_results.json", profile) or {"runs": {}, "baselines": {}}
        interrupted = repro_dtn.load_jobs(job_dir, profile)
        known = {part: {**known[part], **interrupted[part]} for part in ("runs", "baselines")}
    outcome = repro_dtn.run_all(profile, progress=JobProgress(f"repro dtn ({profile.name})"), only=selected,
                                known=known, executor=executor, job_dir=job_dir)
    _stop_on_failures(outcome["failures"], outcome["computed"], job_dir)
    summary = repro_dtn.write_results(outcome, results, figures, command)
    repro_dtn.clear_jobs(job_dir, profile)
    result = {
        "paper": paper,
        "profile": profile.name,
        "results": str(results),
        "figures": str(figures),
        "experiments": [e.key for e in outcome["experiments"]],
        "training_runs": len(outcome["runs"]),
        "jobs_run": outcome["computed"],
        "executor": outcome["executor"],
        "seconds": outcome["seconds"],
        "targets": {name: {"ours": value, "met": met} for name, (value, met) in summary["targets"].items()},
        "decision_time_ms": summary["decision_time_ms"],
    }

    emit(result, as_json, _human)


def _repro_hetnet(quick: bool, only: str | None, results_path: str | None, figures_dir: str | None,
                  workers: int | None, fresh: bool, executor: str, as_json: bool) -> None:
    """``testbed repro hetnet``: train, evaluate, write the HetNet section of the results page."""
    from testbed.repro import hetnet as repro_hetnet
    from agents.jobs import JobProgress

    base = repro_hetnet.QUICK if quick else repro_hetnet.FULL
    profile, selected, results, figures, command = _common(
        "hetnet", base, list(repro_hetnet.EXPERIMENTS), quick, only, results_path, figures_dir, workers)
    selected = selected or list(repro_hetnet.EXPERIMENTS)
    policies = Path("runs/repro-hetnet-quick/policies" if quick else "runs/repro-hetnet/policies")
    job_dir = _job_dir("hetnet", quick, results_path, results)
    saved = repro_hetnet.load_saved(Path(figures) / "hetnet_results.json", profile) if only and not fresh else None
    if fresh:
        repro_hetnet.clear_jobs(job_dir, profile)
    else:
        interrupted = repro_hetnet.load_jobs(job_dir, profile)
        if interrupted:
            saved = dict(saved or {"jobs": [], "experiments": [], "seconds": 0.0})
            have = {(job["scheme"], job["seed"]) for job in interrupted}
            saved["jobs"] = interrupted + [job for job in saved["jobs"] if (job["scheme"], job["seed"]) not in have]
    outcome = repro_hetnet.run_all(profile, selected, progress=JobProgress(f"repro hetnet ({profile.name})"),
                                   policy_dir=policies, saved=saved, executor=executor, job_dir=job_dir)
    _stop_on_failures(outcome["failures"], len(outcome["jobs"]) - outcome["reused"] + len(outcome["failures"]),
                      job_dir)
    summary = repro_hetnet.write_results(outcome, results, figures, command)
    repro_hetnet.clear_jobs(job_dir, profile)
    decision = summary["decision"].get("maddqn-dmaddpg", {})
    result = {
        "paper": "hetnet",
        "profile": profile.name,
        "results": str(results),
        "figures": str(figures),
        "policies": str(policies),
        "experiments": outcome["experiments"],
        "jobs_run": len(outcome["jobs"]) - outcome["reused"],
        "jobs_kept": outcome["reused"],
        "executor": outcome["executor"],
        "seconds": outcome["seconds"],
        "targets": {name: {"ours": value, "met": met} for name, (value, met) in summary["targets"].items()},
        "decision_time_ms": {str(n): cost["latency_ms"] for n, cost in decision.items()},
    }

    emit(result, as_json, _human)


def _common(paper: str, profile: Any, known: list[str], quick: bool, only: str | None, results_path: str | None,
            figures_dir: str | None, workers: int | None) -> tuple[Any, list[str] | None, Path, Path, str]:
    """What both reproductions read from the options: the profile (with ``--workers``), the experiments selected
    by ``--only`` (None: all), the results page, the figures directory and the command that regenerates them."""
    import dataclasses

    selected = None
    if only is not None:
        selected = [key.strip() for key in only.split(",") if key.strip()]
        unknown = [key for key in selected if key not in known]
        if unknown or not selected:
            raise BadInput(f"--only {only!r}; allowed: comma-separated keys from {', '.join(known)}")
    if workers is not None:
        if workers < 1:
            raise BadInput(f"--workers {workers}; allowed: an integer >= 1")
        profile = dataclasses.replace(profile, workers=workers)
    default_dir = Path(f"runs/repro-{paper}-quick") if quick else Path("docs")
    results = Path(results_path) if results_path else default_dir / "RESULTS.md"
    figures = Path(figures_dir) if figures_dir else (results.parent / "figures" if quick or results_path
                                                     else Path("docs/figures"))
    return profile, selected, results, figures, f"testbed repro {paper}" + (" --quick" if quick else "")


def _job_dir(paper: str, quick: bool, results_path: str | None, results: Path) -> Path:
    """Where the jobs of a call are saved as they finish: ``runs/repro-PAPER/jobs`` for the full profile's default
    results page, else ``PAPER-jobs`` beside the results page."""
    if not quick and results_path is None:
        return Path(f"runs/repro-{paper}/jobs")
    return results.parent / f"{paper}-jobs"


def _stop_on_failures(failures: list[Any], total: int, job_dir: Path) -> None:
    """Report failed jobs (config and traceback each) and exit 1; the finished jobs stay saved in ``job_dir``."""
    if not failures:
        return
    from agents.jobs import failure_summary

    for failure in failures:
        click.echo(failure.describe(), err=True)
    click.echo(f"Error: {failure_summary(failures, total)}; the results page is not written. The other jobs are "
               f"saved in {job_dir}: the same command runs only the missing ones.", err=True)
    sys.exit(1)


def _human(r: dict[str, Any]) -> None:
    where = f"wrote {r['results']}, plots in {r['figures']}" + (f", policies in {r['policies']}"
                                                                if "policies" in r else "")
    click.echo(f"{r['jobs_run']} jobs run in {r['seconds'] / 60:.1f} min; {where}")
    for name, target in r["targets"].items():
        click.echo(f"  [{'met' if target['met'] else 'not met'}] {name}: {target['ours']}")
