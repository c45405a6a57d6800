"""Kubernetes-style conditions as pure functions over :class:`~acgs_operator.api.v1alpha1.Condition` models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from acgs_operator.api.v1alpha1 import Condition

ConditionStatus = Literal["True", "False", "Unknown"]
MAX_MESSAGE = 4096

__all__ = ["Condition", "find", "is_true", "now_iso", "seconds_since", "set_condition"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(timestamp: str | None) -> float:
    """Seconds from a Kubernetes timestamp (``2026-01-01T00:00:00Z``) to now; 0 when absent."""
    if not timestamp:
        return 0.0
    then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())


def find(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or () if c.type == type_), None)


def is_true(conditions: Sequence[Condition] | None, type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """A new list with condition ``type_`` set; ``lastTransitionTime`` moves only when the status changes."""
    value: ConditionStatus = ("True" if status else "False") if isinstance(status, bool) else status
    previous = find(conditions, type_)
    transition = previous.last_transition_time if previous and previous.status == value else now
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:MAX_MESSAGE],
        last_transition_time=transition,
        observed_generation=generation,
    )
    others = [c for c in conditions or () if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)
