"""What every ``testbed`` command shares: ``--json`` output, exit codes, progress bars.

Exit codes (DESIGN.md section 9): 0 success, 2 bad input (the message names the bad value and the allowed one),
3 radio/hardware fault, 130 interrupted by Ctrl-C and resumable (as shells report SIGINT), 1 anything else.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from typing import Any, Callable, Iterable, TypeVar

import click
import numpy as np

from radio.errors import RadioConfigError, RadioFault, RecordingError, TxGuardRefused

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_RADIO_FAULT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
"""Ctrl-C stopped the work and it can be continued (``testbed run --resume DIR``)."""

T = TypeVar("T")


class BadInput(click.ClickException):
    """A user error the CLI reports with exit code 2."""

    exit_code = EXIT_BAD_INPUT


def store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--store PATH`` (default ``$TESTBED_STORE``, else the user's data directory)."""
    return click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
                        envvar="TESTBED_STORE",
                        help="SQLite context store (default: $TESTBED_STORE, else ~/.local/share/testbed/).")(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one machine-readable JSON object on stdout as the last line.")(f)


def to_jsonable(obj: Any) -> Any:
    """numpy scalars/arrays, dataclasses with as_dict, NaN/inf (as null) -> plain JSON types."""
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        return to_jsonable(obj.as_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    return obj


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Print ``result``: as one JSON line when ``--json``, else with ``human`` (or as indented JSON)."""
    if as_json:
        click.echo(json.dumps(to_jsonable(result), sort_keys=True))
    elif human is not None:
        human(result)
    else:
        click.echo(json.dumps(to_jsonable(result), indent=2, sort_keys=True))


def handle_errors(f: Callable[..., T]) -> Callable[..., T]:
    """Map the project's exceptions to exit codes with a one-line message on stderr."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except TxGuardRefused as e:
            _fail(str(e), EXIT_BAD_INPUT)
        except (RadioConfigError, RecordingError) as e:
            _fail(str(e), EXIT_BAD_INPUT)
        except RadioFault as e:
            _fail(f"radio fault: {e}", EXIT_RADIO_FAULT)
        except ValueError as e:
            _fail(str(e), EXIT_BAD_INPUT)
        raise AssertionError("unreachable")

    return wrapper


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


PHYSICAL_FORMS = "analytic or analytic:phi=X with X a number > -1 (e.g. analytic:phi=0.4)"
"""The accepted forms of ``--physical``, quoted in error messages."""

_PHYSICAL_PATTERN = re.compile(r"^analytic(?::phi=(?P<phi>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?$")


def parse_physical(spec: str) -> dict[str, Any]:
    """Parse ``--physical``: ``analytic`` (phi from the twin config) or ``analytic:phi=X``.

    Returns:
        ``{"kind": "analytic", "phi": float | None}``.

    Raises:
        BadInput: the spec is malformed (the message names it and the allowed forms).
    """
    match = _PHYSICAL_PATTERN.match(spec.strip())
    if match is None:
        raise BadInput(f"--physical {spec!r}; allowed: {PHYSICAL_FORMS}")
    phi = match.group("phi")
    if phi is not None and float(phi) <= -1.0:
        raise BadInput(f"--physical {spec!r}: phi={phi} must be > -1; allowed: {PHYSICAL_FORMS}")
    return {"kind": "analytic", "phi": None if phi is None else float(phi)}


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterable[T]:
    """A tqdm progress bar on stderr (so ``--json`` stdout stays clean); silent when not a terminal."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled or None, file=sys.stderr, leave=False)


def single_thread_torch() -> None:
    """One intra-op thread for torch (``$TESTBED_TORCH_THREADS`` overrides): the twin's and agents' tensors are
    small, and on a busy machine a second thread makes every step wait for another core to come free."""
    import os

    import torch

    threads = os.environ.get("TESTBED_TORCH_THREADS", "1")
    try:
        count = int(threads)
        if count < 1:
            raise ValueError
    except ValueError:
        raise BadInput(f"TESTBED_TORCH_THREADS={threads!r}; allowed: an integer >= 1") from None
    torch.set_num_threads(count)
