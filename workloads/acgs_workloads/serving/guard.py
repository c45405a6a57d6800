"""The runtime guard: a served decision never violates a critical principle of the constitution.

For a batch of model decisions the guard asks the Rego engine once (the constitution's evaluator). Rows whose
decision violates a critical principle get a replacement: for the governance components the next more
cautious decision that is clean (``escalate``, then ``deny``), for other components the most probable class
that is clean; the candidates of all such rows are evaluated in one more query. Rows for which no
candidate is clean are marked ``final == -1``; the service refuses them
(:class:`~acgs_workloads.serving.errors.NoCompliantDecision`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from acgs_workloads.constitution.evaluator import Violations

GOVERNANCE_FALLBACK = ("escalate", "deny")
DecisionsFn = Callable[[np.ndarray, np.ndarray], list[dict[str, Any]]]


class Evaluator(Protocol):
    """What the guard needs of :class:`~acgs_workloads.constitution.ConstitutionEvaluator` (tests pass fakes)."""

    severity: dict[str, str]

    def evaluate(self, decisions: Sequence[dict[str, Any]]) -> list[Violations]: ...


class ViolationReport(BaseModel):
    principle: str
    severity: str
    messages: list[str]


class GuardReport(BaseModel):
    """What the runtime guard found for one response."""

    overridden: bool = Field(description="The model's decision violated a critical principle and was replaced.")
    original_decision: str | None = Field(default=None, description="The model's decision (when overridden).")
    violations: list[ViolationReport] = Field(
        default_factory=list, description="Violations of the model's decision (all severities)."
    )
    remaining: list[ViolationReport] = Field(
        default_factory=list, description="Non-critical violations of the served decision, if any."
    )


@dataclass
class GuardedRow:
    final: int  # class index served (-1: no compliant decision)
    report: GuardReport
    critical: list[str] = field(default_factory=list)  # critical principles the original decision violated


def reports(found: Violations, severity: dict[str, str]) -> list[ViolationReport]:
    return [
        ViolationReport(principle=pid, severity=severity.get(pid, "major"), messages=list(msgs))
        for pid, msgs in sorted(found.items())
    ]


def critical_of(found: Violations, severity: dict[str, str]) -> list[str]:
    return sorted(pid for pid in found if severity.get(pid) == "critical")


def candidate_order(classes: Sequence[str], original: int, probabilities: np.ndarray) -> list[int]:
    """Replacement classes to try, best first (never the original)."""
    if all(label in classes for label in GOVERNANCE_FALLBACK):
        ordered = [classes.index(label) for label in GOVERNANCE_FALLBACK]
        return [c for c in ordered if c != original]
    probs = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probs, kind="stable").tolist()
    # classes the model masks out (probability 0) are not valid answers for this request
    return [int(c) for c in order if int(c) != original and probs[int(c)] > 0.0]


def guard_batch(
    evaluator: Evaluator,
    classes: Sequence[str],
    decisions_for: DecisionsFn,
    predicted: np.ndarray,
    probabilities: np.ndarray,
) -> list[GuardedRow]:
    """Guard the decisions ``predicted`` (class indices) of a batch.

    ``decisions_for(rows, classes)`` returns the Rego ``input`` decision of request ``rows[i]`` with class
    ``classes[i]`` (so candidates can be built for any row).
    """
    n = int(predicted.shape[0])
    rows = np.arange(n)
    found = evaluator.evaluate(decisions_for(rows, predicted))
    out: list[GuardedRow] = []
    pending: list[int] = []
    for i in range(n):
        crit = critical_of(found[i], evaluator.severity)
        report = GuardReport(overridden=False, violations=reports(found[i], evaluator.severity))
        if not crit:
            report.remaining = report.violations
        out.append(GuardedRow(final=int(predicted[i]), report=report, critical=crit))
        if crit:
            pending.append(i)
    if not pending:
        return out
    cand_rows: list[int] = []
    cand_classes: list[int] = []
    for i in pending:
        for c in candidate_order(classes, int(predicted[i]), probabilities[i]):
            cand_rows.append(i)
            cand_classes.append(c)
    cand_found = evaluator.evaluate(decisions_for(np.array(cand_rows), np.array(cand_classes))) if cand_rows else []
    chosen: dict[int, tuple[int, Violations]] = {}
    for row, cls, viol in zip(cand_rows, cand_classes, cand_found, strict=True):
        if row not in chosen and not critical_of(viol, evaluator.severity):
            chosen[row] = (cls, viol)
    for i in pending:
        guarded = out[i]
        guarded.report.overridden = True
        guarded.report.original_decision = classes[int(predicted[i])]
        if i in chosen:
            cls, viol = chosen[i]
            guarded.final = cls
            guarded.report.remaining = reports(viol, evaluator.severity)
        else:
            guarded.final = -1
    return out
