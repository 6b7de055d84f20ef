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

Modules: :mod:`~testbed.repro.hetnet.plan` (profiles, schemes, the jobs of each experiment),
:mod:`~testbed.repro.hetnet.run` (one job, all jobs, decision costs, the jobs' files),
:mod:`~testbed.repro.hetnet.summarise` (statistics, p-values, targets), :mod:`~testbed.repro.hetnet.render`
(figures, Markdown, ``hetnet_results.json``). Their public names are re-exported here.
"""

from __future__ import annotations

from testbed.repro.hetnet.plan import (ABLATIONS, CLASSICAL, EXPERIMENTS, FAIRNESS, FULL, LEARNED, PAPER, QUICK,
                                       SIZE_AGNOSTIC, Profile, eval_seeds, plan, quick_overrides)
from testbed.repro.hetnet.render import (NAMES, RESULTS_BEGIN, RESULTS_END, plot_figures, render_markdown,
                                         write_results)
from testbed.repro.hetnet.run import (clear_jobs, decision_cost, load_jobs, load_saved, run_all, run_job,
                                      save_job)
from testbed.repro.hetnet.summarise import OVERALL_METRICS, paired_p_value, summarise, training_efficiency

__all__ = ["ABLATIONS", "CLASSICAL", "EXPERIMENTS", "FAIRNESS", "FULL", "LEARNED", "NAMES", "OVERALL_METRICS", "PAPER",
           "QUICK", "RESULTS_BEGIN", "RESULTS_END", "SIZE_AGNOSTIC", "Profile", "clear_jobs", "decision_cost",
           "eval_seeds", "load_jobs", "load_saved", "paired_p_value", "plan", "plot_figures",
           "quick_overrides", "render_markdown", "run_all", "run_job", "save_job", "summarise", "training_efficiency",
           "write_results"]
