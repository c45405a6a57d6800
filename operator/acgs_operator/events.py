"""Kubernetes events with typed reasons.

Posted through ``kopf.event`` so they do not depend on ``settings.posting.level``, which is kept at
WARNING to keep kopf's own per-object log lines ("Handler succeeded") out of ``kubectl get events``.

Pure ``decide`` functions return the events to post as :class:`Event` values; handlers post them with
:func:`post` once the status patch is in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import kopf

from acgs_operator.reasons import Reason

_MAX_MESSAGE = 1024

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    """One Kubernetes event to post on the resource."""

    type: EventType
    reason: Reason
    message: str

    @classmethod
    def normal(cls, reason: Reason, message: str) -> Event:
        return cls("Normal", reason, message)

    @classmethod
    def warning(cls, reason: Reason, message: str) -> Event:
        return cls("Warning", reason, message)


def post(body: kopf.Body, events: Iterable[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason.value, message=event.message[:_MAX_MESSAGE])


def normal(body: kopf.Body, reason: Reason, message: str) -> None:
    post(body, [Event.normal(reason, message)])


def warning(body: kopf.Body, reason: Reason, message: str) -> None:
    post(body, [Event.warning(reason, message)])
