"""The one interface every policy (learned or classical) implements.

* ``act(observation, state=None)``: decisions for a batch of observations. ``observation`` is the
  environment's [B, N, F] float tensor; ``state`` is the environment's ``network_state()`` for
  centralised (oracle) baselines that need global channel knowledge, ``None`` for decentralised ones.
  Link-adaptation policies return [B, N] int64 joint actions; HetNet policies return a
  :class:`twin.HetNetAction`.
* ``save(path)``: writes the policy's constructor arguments and tensors to one file.
* ``Policy.load(path)`` / ``SubClass.load(path)``: rebuilds the policy saved there.
* ``for_blocks(num_blocks)``: the same policy for a HetNet with another number of sub-channel blocks.

A subclass provides ``act``, ``hyper_parameters()`` (JSON-able constructor keyword arguments) and, if it
has learned or random state, ``state_dict()`` / ``load_state_dict()``.

Every subclass registers itself when its module is imported (``__init_subclass__``), under the
``module.QualName`` its saved files name; this module imports none of them. :func:`agents.registry.load_policy`
imports every policy module of the project and loads any saved policy.
"""

from __future__ import annotations

import abc
import os
from typing import Any, ClassVar

import torch

from agents.checkpoint import atomic_save, load_checkpoint

__all__ = ["Policy"]

_REGISTRY: dict[str, type["Policy"]] = {}
"""Every subclass defined so far, by the ``module.QualName`` written in its saved files."""


class Policy(abc.ABC):
    """Base class of all policies (see the module docstring)."""

    name: ClassVar[str] = "policy"
    """Short identifier stored in saved files and used in reports."""
    needs_state: ClassVar[bool] = False
    """True for centralised baselines whose ``act`` requires the environment's ``network_state()``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls

    @abc.abstractmethod
    def act(self, observation: torch.Tensor, state: Any = None) -> Any:
        """Decisions for a batch of observations ([B, N, F] float); see the module docstring."""

    @abc.abstractmethod
    def hyper_parameters(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this policy (JSON-able values)."""

    def state_dict(self) -> dict[str, Any]:
        """Learned or random state (tensors, generator states); empty for stateless policies."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load, got keys {sorted(state)}")

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy to ``path`` atomically: a tensors-only torch file (loadable with ``weights_only=True``)
        holding class name, hyper-parameters and state. TypeError when either holds anything else."""
        atomic_save({"class": f"{type(self).__module__}.{type(self).__qualname__}", "name": self.name,
                     "hyper_parameters": self.hyper_parameters(), "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Policy":
        """Rebuild the policy saved at ``path``; on a subclass, checks the file holds that class.

        The file is read without unpickling arbitrary objects: one holding anything but plain containers,
        numbers, strings and tensors raises :class:`agents.checkpoint.UnsafeCheckpointError` (a ValueError)."""
        payload = load_checkpoint(path)
        if not isinstance(payload, dict) or not {"class", "hyper_parameters", "state"} <= set(payload):
            raise ValueError(f"{path} is not a saved policy (expected a dict with class, hyper_parameters and state)")
        saved = _REGISTRY.get(payload["class"])
        if saved is None:
            raise ValueError(f"{path}: unknown policy class {payload['class']!r} (is its module imported? "
                             f"agents.registry.load_policy imports them all)")
        if cls is not Policy and not issubclass(saved, cls):
            raise ValueError(f"{path} holds a {saved.__name__}, not a {cls.__name__}")
        policy = saved(**payload["hyper_parameters"])
        policy.load_state_dict(payload["state"])
        return policy

    def for_blocks(self, num_blocks: int) -> "Policy":
        """The same policy acting on a HetNet with ``num_blocks`` sub-channel blocks: a copy with that
        ``num_blocks`` hyper-parameter and the same state, or this policy itself when it has no such
        hyper-parameter (its decisions do not depend on the number of blocks)."""
        hyper = self.hyper_parameters()
        if "num_blocks" not in hyper:
            return self
        other = type(self)(**{**hyper, "num_blocks": num_blocks})
        other.load_state_dict(self.state_dict())
        return other

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper_parameters().items())
        return f"{type(self).__name__}({args})"
