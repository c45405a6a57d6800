"""Kubernetes-style conditions as pure functions over plain dicts (what lives in ``status.conditions``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

Condition = dict[str, Any]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(timestamp: str | None) -> float:
    """Seconds from a Kubernetes timestamp (``2026-01-01T00:00:00Z``) to now; 0 when absent."""
    if not timestamp:
        return 0.0
    then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())


def find(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def is_true(conditions: Sequence[Condition] | None, type_: str) -> bool:
    found = find(conditions, type_)
    return bool(found and found.get("status") == "True")


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """A new list with condition ``type_`` set; ``lastTransitionTime`` moves only when the status changes."""
    value = ("True" if status else "False") if isinstance(status, bool) else status
    previous = find(conditions, type_)
    transition = previous["lastTransitionTime"] if previous and previous.get("status") == value else now
    updated: Condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        updated["observedGeneration"] = generation
    others = [dict(c) for c in conditions or () if c.get("type") != type_]
    return sorted([*others, updated], key=lambda c: str(c["type"]))
