"""Constitution: compile every principle, hash the principles, set condition Valid.

observe (compile the spec in the Rego engine) -> ``build.decide`` (pure: status model and events) -> apply.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events
from acgs_operator.api.v1alpha1 import GROUP, VERSION, ConstitutionStatus
from acgs_operator.conditions import now_iso
from acgs_operator.constitution import build
from acgs_operator.metrics import RECONCILES

PLURAL = "constitutions"


def _observe(spec: kopf.Spec) -> build.ConstitutionVerdict | build.InvalidSpec:
    try:
        return build.judge(spec)
    except ValidationError as exc:
        return build.InvalidSpec(str(exc))


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
    seen = _observe(spec)
    decision = build.decide(seen, ConstitutionStatus.model_validate(dict(status)), meta.get("generation"), now_iso())
    patch.status.update(decision.status.wire())
    events.post(body, decision.events)
    RECONCILES.labels("Constitution", decision.result).inc()
    if isinstance(seen, build.InvalidSpec):
        raise kopf.PermanentError(f"invalid Constitution spec: {seen.message}")
    logger.info("constitution %s: hash %s valid=%s", meta.get("name"), seen.hash, seen.valid)
