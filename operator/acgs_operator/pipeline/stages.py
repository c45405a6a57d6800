"""The pipeline's stages and how a resource's status maps onto one (pure functions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from acgs_operator.api.v1alpha1 import ConstitutionStatus, ModelDeploymentStatus, TrainingJobStatus
from acgs_operator.conditions import find
from acgs_operator.reasons import ConditionType

S = TypeVar("S", bound=BaseModel)


class State(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (State.DONE, State.FAILED)


@dataclass(frozen=True)
class View:
    """What one poll says about a stage."""

    state: State
    detail: str = ""
    percent: float | None = None


@dataclass
class Stage:
    key: str
    title: str
    state: State = State.PENDING
    detail: str = ""
    percent: float | None = None
    started: float | None = None
    ended: float | None = None

    def update(self, view: View, now: float | None = None) -> bool:
        """Apply ``view``; True when the state changed."""
        now = time.monotonic() if now is None else now
        changed = view.state is not self.state
        if view.state is not State.PENDING and self.started is None:
            self.started = now
        if view.state.terminal and self.ended is None:
            self.ended = now
        self.state, self.detail = view.state, view.detail
        if view.percent is not None:
            self.percent = view.percent
        return changed

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def row(self) -> dict[str, Any]:
        seconds = self.seconds
        return {"stage": self.title, "key": self.key, "state": self.state.value, "detail": self.detail,
                "seconds": None if seconds is None else round(seconds, 2)}


@dataclass
class Stages:
    """Every stage, in display order."""

    items: dict[str, Stage] = field(default_factory=dict)

    def add(self, key: str, title: str) -> Stage:
        self.items[key] = Stage(key, title)
        return self.items[key]

    def __getitem__(self, key: str) -> Stage:
        return self.items[key]

    def failed(self) -> list[Stage]:
        return [s for s in self.items.values() if s.state is State.FAILED]

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.items.values()]


def status_of(obj: Mapping[str, Any] | None, model: type[S]) -> S:
    """The status of a kubectl JSON object as its v1alpha1 status model (empty when it has none)."""
    return model.model_validate((obj or {}).get("status") or {})


def _fresh(obj: Mapping[str, Any], status: ConstitutionStatus | TrainingJobStatus | ModelDeploymentStatus) -> bool:
    """The status describes the current generation (not a previous spec)."""
    return status.observed_generation == (obj.get("metadata") or {}).get("generation")


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0] if lines else ""


def training_view(obj: dict[str, Any] | None) -> View:
    """A TrainingJob's stage: done when it Succeeded and is Compliant; failed when Failed or non-compliant."""
    if obj is None:
        return View(State.PENDING, "not created")
    status = status_of(obj, TrainingJobStatus)
    phase = status.phase or "Pending"
    if not _fresh(obj, status):
        return View(State.PENDING, phase)
    progress = status.progress
    if phase == "Succeeded":
        compliant = find(status.conditions, ConditionType.COMPLIANT)
        accuracy = status.metrics.accuracy if status.metrics else None
        score = status.compliance.score if status.compliance else None
        summary = f"accuracy {_fmt(accuracy)}, compliance {_fmt(score)}"
        if compliant is not None and compliant.status == "True":
            return View(State.DONE, summary, 100.0)
        why = (compliant.message if compliant else "") or "not compliant"
        return View(State.FAILED, f"{summary}; gate failed: {why}", 100.0)
    if phase == "Failed":
        failed = find(status.conditions, ConditionType.FAILED)
        reason = (failed.reason if failed is not None else "") or "Failed"
        return View(State.FAILED, f"{reason}: {_first_line(failed.message if failed else '')}".rstrip(": "))
    if phase in ("Pending", "Suspended"):
        submitted = find(status.conditions, ConditionType.SUBMITTED)
        return View(State.PENDING, (submitted.message if submitted else "") or phase)
    if progress is not None:
        detail = f"{phase}: epoch {progress.epoch}/{progress.total_epochs}, step {progress.step}"
        if progress.loss is not None:
            detail += f", loss {progress.loss:.4f}"
        return View(State.RUNNING, detail, progress.percent)
    return View(State.RUNNING, phase, 0.0)


def deployment_view(obj: dict[str, Any] | None) -> View:
    """A ModelDeployment's stage: done when Ready; failed when Blocked or Failed (with the reason)."""
    if obj is None:
        return View(State.PENDING, "not created")
    status = status_of(obj, ModelDeploymentStatus)
    phase = status.phase or "Pending"
    if not _fresh(obj, status):
        return View(State.PENDING, phase)
    if phase == "Ready":
        return View(State.DONE, f"Ready at {status.url or '?'}", 100.0)
    if phase in ("Blocked", "Failed"):
        cond = find(status.conditions, ConditionType.COMPLIANCE_PASSED if phase == "Blocked" else ConditionType.READY)
        reason, message = (cond.reason or "?", cond.message) if cond is not None else ("?", "")
        return View(State.FAILED, f"{phase} ({reason}): {_first_line(message)}".rstrip(": "))
    detail: str = phase
    if status.replicas is not None and status.replicas.wire():
        desired = status.replicas.desired if status.replicas.desired is not None else "?"
        detail += f": {status.replicas.ready or 0}/{desired} replicas ready"
    return View(State.RUNNING, detail)


def constitution_view(obj: dict[str, Any] | None) -> View:
    if obj is None:
        return View(State.PENDING, "not created")
    status = status_of(obj, ConstitutionStatus)
    valid = find(status.conditions, ConditionType.VALID)
    if not _fresh(obj, status) or valid is None:
        return View(State.RUNNING, "compiling")
    if valid.status == "True":
        return View(State.DONE, f"Valid, hash {status.hash}", 100.0)
    return View(State.FAILED, f"not Valid: {valid.message}")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


TRANSIENT_REASONS = frozenset({"Reevaluating", "Retraining", "TrainingNotComplete", "ConstitutionChanged"})


def reevaluation_view(constitution_hash: str) -> Callable[[dict[str, Any] | None], View]:
    """A ModelDeployment after a Constitution edit: done when Ready again under ``constitution_hash``."""

    def view(obj: dict[str, Any] | None) -> View:
        if obj is None:
            return View(State.FAILED, "deleted")
        status = status_of(obj, ModelDeploymentStatus)
        compliance, run = status.compliance, status.reevaluation
        served = compliance.constitution_hash if compliance else None
        reason = (compliance.reason if compliance else None) or status.phase or "Pending"
        if status.phase == "Ready" and served == constitution_hash:
            took = f" in {run.seconds:.1f} s" if run is not None and run.seconds is not None else ""
            score = f"{compliance.score:.4f}" if compliance and compliance.score is not None else "?"
            return View(State.DONE, f"Ready under {constitution_hash}: compliance {score}, re-evaluated{took}", 100.0)
        if status.phase in ("Blocked", "Failed") and reason not in TRANSIENT_REASONS:
            return View(State.FAILED, f"{status.phase} ({reason})")
        return View(State.RUNNING, reason)

    return view
