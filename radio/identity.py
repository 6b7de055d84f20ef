"""A stable key for a radio's identity: what a stored calibration is matched against before it is reused.

A radio's :meth:`~radio.base.Radio.identity` names the unit (a Pluto's or USRP's serial, a remote server's radio,
a simulated radio's parameters) along with how it was reached this time (URI, endpoint, session). The key keeps
the first and drops the second, so the same unit plugged into another port keeps its key, and another unit under
the same name gets another one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

__all__ = ["NON_IDENTIFYING_FIELDS", "UNIT_FIELDS", "identity_key"]

NON_IDENTIFYING_FIELDS = frozenset({"uri", "endpoint", "session", "faults", "first_seen", "last_seen"})
"""Identity fields that say how or when a radio was reached (address, connection, injected test faults), not which
unit it is; left out of the key at every nesting level."""

UNIT_FIELDS = frozenset({"serial", "server"})
"""Identity fields that name the unit itself. One present but empty means the unit could not be identified (a
Pluto whose IIO context reports no serial, a remote server that sent no identity): no key, so nothing stored is
ever matched to it."""


def _identifying(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _identifying(v) for k, v in value.items() if k not in NON_IDENTIFYING_FIELDS}
    if isinstance(value, (list, tuple)):
        return [_identifying(v) for v in value]
    return value


def _unidentified(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any((k in UNIT_FIELDS and v in (None, "")) or _unidentified(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_unidentified(v) for v in value)
    return False


def identity_key(identity: Mapping[str, Any]) -> str | None:
    """sha256 (64 hex digits) of the canonical JSON of ``identity`` without :data:`NON_IDENTIFYING_FIELDS`; ``None``
    when a :data:`UNIT_FIELDS` entry is present but empty (the unit cannot be told from another of its kind)."""
    if _unidentified(identity):
        return None
    canonical = json.dumps(_identifying(identity), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
