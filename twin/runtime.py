"""One place for the twin's device, floating-point dtype and seeding.

Every tensor a twin object creates lives on :func:`device` with :func:`dtype` unless the caller
passes its own. Changing them with :func:`configure` affects objects built afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["RuntimeConfig", "configure", "device", "dtype", "make_generator", "seed_everything"]


@dataclass
class RuntimeConfig:
    """Process-wide defaults of the twin."""

    device: str = "cpu"
    """Torch device every twin tensor is created on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...)."""
    dtype: torch.dtype = torch.float32
    """Real floating-point dtype of the twin's tensors; complex fading uses the matching complex dtype."""


_RUNTIME = RuntimeConfig()


def configure(device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> RuntimeConfig:
    """Set the default device and/or dtype; returns the resulting configuration."""
    if device is not None:
        _RUNTIME.device = str(device)
    if dtype is not None:
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a real floating-point dtype, got {dtype}")
        _RUNTIME.dtype = dtype
    return _RUNTIME


def device() -> torch.device:
    """The default torch device of the twin."""
    return torch.device(_RUNTIME.device)


def dtype() -> torch.dtype:
    """The default real floating-point dtype of the twin."""
    return _RUNTIME.dtype


def make_generator(seed: int | None, on: torch.device | None = None) -> torch.Generator:
    """A torch generator on ``on`` (default device) seeded with ``seed``; a fresh random seed when ``None``."""
    gen = torch.Generator(device=on if on is not None else device())
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    gen.manual_seed(int(seed))
    return gen


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (for code that draws from them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
