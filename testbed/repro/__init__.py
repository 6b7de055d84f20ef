"""Reproductions of the seed papers' experiments with our twin (``testbed repro dtn|hetnet``).

Each paper is a subpackage split the same way: ``plan`` (budgets, run definitions, the experiment grid), ``run``
(the jobs, executed through :mod:`agents.jobs`, and their files on disk), ``summarise`` (statistics over seeds and
the paper's targets) and ``render`` (plots, the paper's section of docs/RESULTS.md and its JSON of numbers).
:mod:`testbed.repro.results_page` writes one marked section of the shared results page.

* :mod:`testbed.repro.dtn`: DTN continual-DRL link adaptation (Figs. 5-8, Table 4);
* :mod:`testbed.repro.hetnet`: joint user association and channel scheduling (MADDQN-DMADDPG) on the HetNet twin.
"""
