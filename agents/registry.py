"""Load any saved policy: imports every policy module of the project so that its classes register.

A :class:`agents.policy.Policy` subclass registers itself when its module is imported; a saved file names the
class as ``module.QualName``. This module is the one place that knows every module defining policies, so that
:mod:`agents.policy` (their base) imports none of them.
"""

from __future__ import annotations

import os

import agents.baselines  # noqa: F401  (the classical baselines)
import agents.dqn  # noqa: F401  (DQNPolicy)
import agents.marl  # noqa: F401  (the HetNet multi-agent policies)
import agents.sadrl  # noqa: F401  (SADRLPolicy)
from agents.policy import Policy

__all__ = ["load_policy"]


def load_policy(path: str | os.PathLike) -> Policy:
    """Rebuild any policy saved with :meth:`agents.policy.Policy.save` (see :meth:`agents.policy.Policy.load`)."""
    return Policy.load(path)
