"""The pipeline's stages and how a resource's status maps onto one (pure functions)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from acgs_operator.conditions import find


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


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    found = find((obj.get("status") or {}).get("conditions"), type_)
    return dict(found) if found is not None else None


def _fresh(obj: dict[str, Any]) -> bool:
    """The status describes the current generation (not a previous spec)."""
    status = obj.get("status") or {}
    return status.get("observedGeneration") == (obj.get("metadata") or {}).get("generation")


def training_view(obj: dict[str, Any] | None) -> View:
    """A TrainingJob's stage: done when it Succeeded and is Compliant; failed when Failed or non-compliant."""
    if obj is None:
        return View(State.PENDING, "not created")
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if not _fresh(obj):
        return View(State.PENDING, phase)
    progress = status.get("progress") or {}
    percent = progress.get("percent")
    if phase == "Succeeded":
        compliant = condition(obj, "Compliant") or {}
        metrics, compliance = status.get("metrics") or {}, status.get("compliance") or {}
        summary = f"accuracy {_fmt(metrics.get('accuracy'))}, compliance {_fmt(compliance.get('score'))}"
        if compliant.get("status") == "True":
            return View(State.DONE, summary, 100.0)
        return View(State.FAILED, f"{summary}; gate failed: {compliant.get('message') or 'not compliant'}", 100.0)
    if phase == "Failed":
        failed = condition(obj, "Failed") or {}
        message = (failed.get("message") or "").splitlines()
        return View(State.FAILED, f"{failed.get('reason', 'Failed')}: {message[0] if message else ''}".rstrip(": "))
    if phase in ("Pending", "Suspended"):
        submitted = condition(obj, "Submitted") or {}
        return View(State.PENDING, submitted.get("message") or phase)
    if progress:
        loss = progress.get("loss")
        detail = f"{phase}: epoch {progress.get('epoch')}/{progress.get('totalEpochs')}, step {progress.get('step')}"
        if loss is not None:
            detail += f", loss {loss:.4f}"
        return View(State.RUNNING, detail, percent)
    return View(State.RUNNING, phase, 0.0)


def deployment_view(obj: dict[str, Any] | None) -> View:
    """A ModelDeployment's stage: done when Ready; failed when Blocked or Failed (with the reason)."""
    if obj is None:
        return View(State.PENDING, "not created")
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if not _fresh(obj):
        return View(State.PENDING, phase)
    if phase == "Ready":
        return View(State.DONE, f"Ready at {status.get('url', '?')}", 100.0)
    if phase in ("Blocked", "Failed"):
        cond = condition(obj, "CompliancePassed" if phase == "Blocked" else "Ready") or {}
        first = (cond.get("message") or "").splitlines()
        return View(State.FAILED, f"{phase} ({cond.get('reason', '?')}): {first[0] if first else ''}".rstrip(": "))
    replicas = status.get("replicas") or {}
    detail = phase
    if replicas:
        detail += f": {replicas.get('ready', 0)}/{replicas.get('desired', '?')} replicas ready"
    return View(State.RUNNING, detail)


def constitution_view(obj: dict[str, Any] | None) -> View:
    if obj is None:
        return View(State.PENDING, "not created")
    status = obj.get("status") or {}
    valid = condition(obj, "Valid")
    if not _fresh(obj) or valid is None:
        return View(State.RUNNING, "compiling")
    if valid.get("status") == "True":
        return View(State.DONE, f"Valid, hash {status.get('hash')}", 100.0)
    return View(State.FAILED, f"not Valid: {valid.get('message', '')}")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"
