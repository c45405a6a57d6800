"""Kubernetes events with typed reasons.

Posted through ``kopf.event`` so they do not depend on ``settings.posting.level``, which is kept at
WARNING to keep kopf's own per-object log lines ("Handler succeeded") out of ``kubectl get events``.
"""

from __future__ import annotations

import kopf

from acgs_operator.reasons import Reason

_MAX_MESSAGE = 1024


def normal(body: kopf.Body, reason: Reason, message: str) -> None:
    kopf.event(body, type="Normal", reason=reason.value, message=message[:_MAX_MESSAGE])


def warning(body: kopf.Body, reason: Reason, message: str) -> None:
    kopf.event(body, type="Warning", reason=reason.value, message=message[:_MAX_MESSAGE])
