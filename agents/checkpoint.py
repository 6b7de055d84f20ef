"""Checkpoint files: atomic writes and the process's random-number-generator states.

A checkpoint is one ``torch.save`` file of plain containers and tensors (loadable with
``weights_only=True``). It is written to a temporary file in the destination directory, flushed to disk
and renamed over the destination, so a crash at any moment leaves either the previous checkpoint or the
new one, never a truncated file (:func:`atomic_write`, which run directories and saved jobs use too).

Run directories may come from elsewhere, and unpickling a file can run any code it names. So every
checkpoint and policy file is read with torch's weights-only unpickler, which builds containers, numbers,
strings and tensors and refuses anything else (:class:`UnsafeCheckpointError`), and :func:`atomic_save`
refuses to write anything the reader would refuse.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

__all__ = ["UnsafeCheckpointError", "atomic_save", "atomic_write", "capture_rng_states", "check_tensors_only",
           "load_checkpoint", "restore_rng_states"]

_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.Size, torch.dtype,
                 torch.device)
"""What the weights-only unpickler rebuilds besides dicts, lists, tuples and sets."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint or policy file that is not a tensors-only checkpoint: loading it would mean unpickling
    arbitrary objects (and running whatever code they name), so it is refused."""


def check_tensors_only(obj: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first value of ``obj`` (by its key path) that a weights-only load would refuse.

    Allowed: None, bool, int, float, complex, str, bytes, tensors, ``torch.Size``/``dtype``/``device``, and
    dicts, lists, tuples and sets of those.
    """
    if isinstance(obj, _PLAIN_LEAVES):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_tensors_only(key, f"{where} key {key!r}")
            check_tensors_only(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for i, value in enumerate(obj):
            check_tensors_only(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds only plain "
                    f"containers, numbers, strings and tensors (store it as plain data, e.g. dataclasses.asdict)")


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically (:func:`atomic_write`).

    ``obj`` must pass :func:`check_tensors_only` (TypeError otherwise, before anything is written), so that
    :func:`load_checkpoint` can read the file back.

    Returns:
        The destination path.
    """
    path = Path(path)
    check_tensors_only(obj, path.name)
    return atomic_write(path, lambda stream: torch.save(obj, stream))


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
    """Create ``path`` (and its directory) whole or not at all: ``write`` fills a temporary file beside it, which
    is flushed to disk and renamed over ``path``, and the rename is made durable; a crash at any moment leaves the
    previous file or the new one, never part of one.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(directory)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save` (on CPU, without executing pickled code).

    Raises:
        UnsafeCheckpointError: the file holds anything but plain containers, numbers, strings and tensors (e.g.
            a pickled object whose unpickling would run code), or is no torch file at all. Nothing in it is run.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        why = (f"it names {found.group(1)}, which unpickling would import and call" if found
               else "it is not a file torch's weights-only loader can read")
        raise UnsafeCheckpointError(f"{path} is not a tensors-only checkpoint ({why}); refused without loading it. "
                                    f"Only files holding plain containers, numbers, strings and tensors are "
                                    f"loaded, as this testbed writes them") from None


def capture_rng_states() -> dict[str, Any]:
    """The global generators of Python, numpy and torch (CPU, and CUDA when present), as plain data."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_states` returned."""
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])
