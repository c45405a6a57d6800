"""Constitution: compile every principle, hash the principles, set condition Valid."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events
from acgs_operator.api.v1alpha1 import GROUP, VERSION
from acgs_operator.conditions import now_iso
from acgs_operator.constitution import build
from acgs_operator.metrics import RECONCILES
from acgs_operator.reasons import Reason

PLURAL = "constitutions"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile_constitution(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    generation, conditions, now = meta.get("generation"), status.get("conditions"), now_iso()
    try:
        verdict = build.judge(spec)
    except ValidationError as exc:
        patch.status.update(build.invalid_status(str(exc), generation, conditions, now))
        events.warning(body, Reason.INVALID_SPEC, str(exc))
        RECONCILES.labels("Constitution", "invalid").inc()
        raise kopf.PermanentError(f"invalid Constitution spec: {exc}") from exc
    patch.status.update(build.status_for(verdict, generation, conditions, now))
    if verdict.valid:
        events.normal(body, Reason.COMPILED, f"{verdict.message}; hash {verdict.hash}")
    else:
        events.warning(body, Reason.COMPILE_FAILED, verdict.message)
    previous = status.get("hash")
    if previous and previous != verdict.hash:
        events.normal(body, Reason.HASH_CHANGED, f"constitution hash {previous} -> {verdict.hash}")
    logger.info("constitution %s: hash %s valid=%s", meta.get("name"), verdict.hash, verdict.valid)
    RECONCILES.labels("Constitution", "valid" if verdict.valid else "compile_failed").inc()
