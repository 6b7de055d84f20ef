"""Reproduction of the DTN continual-DRL link-adaptation experiments with our twin (``testbed repro dtn``).

Every experiment trains the shared DQN (or SADRL) with :class:`agents.continual.ContinualTrainer` against the
analytic physical network (:class:`twin.AnalyticPhysical`, the twin's equations with a hidden phi) and
evaluates the greedy policy on that physical network. Results are the mean and the spread (standard
deviation) over the profile's seeds; classical baselines are evaluated on the same deployments.

Schemes (Fig. 5b/5c of the paper, and two of ours):

* ``physical-only``: every episode on the physical network (Z_k = 1);
* ``proposed``: Algorithm 2 as printed, a physical episode every Z_k episodes, the twin otherwise;
* ``proposed-sync``: Algorithm 2 with the testbed's controller loop, which also re-calibrates the twin's phi
  from every physical episode's measurements;
* ``twin-only``: every episode in the (uncalibrated, phi = 0) twin;
* ``twin-calibrated``: one physical episode measures phi, the twin is set to it, then twin-only training.

A :class:`Profile` fixes the budget. ``FULL`` keeps the paper's hyper-parameters, its 1 : Z_k ratio of
physical to twin episodes and its Z_k values, but plays shorter episodes on a smaller budget than the
paper's 2000 x (unstated) slots; ``QUICK`` runs the same pipeline on tiny networks and budgets so that CI
can check it in a few minutes (its numbers carry no meaning).

Modules: :mod:`~testbed.repro.dtn.plan` (profiles, :class:`RunSpec`, the experiment grid),
:mod:`~testbed.repro.dtn.run` (training runs, baselines, the jobs and their files),
:mod:`~testbed.repro.dtn.summarise` (statistics and targets), :mod:`~testbed.repro.dtn.render` (plots, Markdown,
``dtn_results.json``). Their public names are re-exported here.
"""

from __future__ import annotations

from testbed.repro.dtn.plan import (BLOCK_PHI, BLOCK_SHADOWING, COMPARISON_SCHEME, FULL, PAPER, PAPER_EPISODES, QUICK,
                                    SCHEMES, Experiment, Profile, RunSpec, plan, twin_config)
from testbed.repro.dtn.render import RESULTS_BEGIN, RESULTS_END, plot_figures, render_markdown, write_results
from testbed.repro.dtn.run import (OracleMCSPolicy, baseline_value, clear_jobs, decision_time_ms, load_jobs, load_raw,
                                   run_all, run_spec, save_job)
from testbed.repro.dtn.summarise import summarise

__all__ = ["BLOCK_PHI", "BLOCK_SHADOWING", "COMPARISON_SCHEME", "FULL", "PAPER", "PAPER_EPISODES", "QUICK",
           "RESULTS_BEGIN", "RESULTS_END", "SCHEMES", "Experiment", "OracleMCSPolicy", "Profile", "RunSpec",
           "baseline_value", "clear_jobs", "decision_time_ms", "load_jobs", "load_raw", "plan", "plot_figures",
           "render_markdown", "run_all", "run_spec", "save_job", "summarise", "twin_config", "write_results"]
