"""TrainingJob as pure functions: spec -> Ray job request, Ray job + published events -> status."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acgs_operator.api.v1alpha1 import TrainingJobSpec
from acgs_operator.conditions import Condition, set_condition
from acgs_operator.rayclient import JobInfo, JobStatus
from acgs_operator.reasons import ConditionType, Reason
from acgs_workloads.contract import (
    ConstitutionSnapshot,
    ProgressEvent,
    ResultEvent,
    TrainRunConfig,
)

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
LOG_TAIL_LINES = 25
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class RayJobRequest:
    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    config: TrainRunConfig


def submission_id(name: str, uid: str, generation: int) -> str:
    """Deterministic per resource *and* generation: a restarted operator finds the job it submitted."""
    return f"acgs-{name[:40]}-{uid.split('-')[0]}-g{generation}"


def build_ray_job(
    *,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    spec: TrainingJobSpec,
    constitution: ConstitutionSnapshot,
    artifact_root: str,
    python: str = "python",
) -> RayJobRequest:
    sid = submission_id(name, uid, generation)
    config = TrainRunConfig(
        run_id=sid,
        resource=f"{namespace}/{name}",
        component=spec.component,
        constitution=constitution,
        dataset=spec.dataset,
        model=spec.model,
        training=spec.training,
        resources=spec.resources,
        fault_tolerance=spec.fault_tolerance,
        evaluation=spec.evaluation,
        artifact_root=artifact_root,
        use_ray=True,
    )
    payload = json.dumps(config.wire(), separators=(",", ":"))
    return RayJobRequest(
        submission_id=sid,
        entrypoint=f"{python} -m acgs_workloads.train --config {shlex.quote(payload)}",
        runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1", "ACGS_RESOURCE": f"{namespace}/{name}"}},
        metadata={
            "acgs.io/kind": "TrainingJob",
            "acgs.io/resource": f"{namespace}/{name}",
            "acgs.io/uid": uid,
            "acgs.io/generation": str(generation),
            "acgs.io/component": spec.component,
        },
        config=config,
    )


def log_tail(logs: str, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a job log, bounded in lines and characters, without event lines."""
    kept = [line for line in logs.strip().splitlines() if "ACGS_EVENT " not in line][-lines:]
    return "\n".join(kept)[-chars:]


def latest(events: Sequence[ProgressEvent | ResultEvent]) -> tuple[ProgressEvent | None, ResultEvent | None]:
    progress = next((e for e in reversed(events) if isinstance(e, ProgressEvent)), None)
    result = next((e for e in reversed(events) if isinstance(e, ResultEvent)), None)
    return progress, result


def _ms_to_iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Observation:
    """What the operator saw of one generation's Ray job."""

    job: JobInfo | None
    events: Sequence[ProgressEvent | ResultEvent] = ()
    logs: str = ""
    resubmissions: int = 0  # times this generation's job was submitted again after its cluster forgot it


def observed_status(
    obs: Observation,
    *,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    dashboard_url: str,
) -> dict[str, Any]:
    """Status of a TrainingJob from its Ray job and the events the run published (pure)."""
    progress, result = latest(obs.events)
    patch: dict[str, Any] = {"observedGeneration": generation}
    conds = list(conditions or [])

    def cond(type_: ConditionType, status: bool, reason: str, message: str) -> None:
        nonlocal conds
        conds = set_condition(conds, type_, status, reason, message, generation, now)

    if obs.job is None:
        patch["phase"] = "Pending"
        patch["conditions"] = conds
        return patch

    job = obs.job
    patch["rayJob"] = {"submissionId": job.submission_id, "status": job.status.value, "dashboardUrl": dashboard_url}
    if obs.resubmissions:
        patch["rayJob"]["resubmissions"] = obs.resubmissions
    if start := _ms_to_iso(job.start_time_ms):
        patch["startTime"] = start
    if progress is not None:
        patch["progress"] = progress.progress.wire()
    cond(ConditionType.SUBMITTED, True, Reason.SUBMITTED, f"Ray job {job.submission_id} submitted")

    if job.status is JobStatus.PENDING:
        patch["phase"] = "Submitted"
    elif job.status is JobStatus.RUNNING:
        evaluating = progress is not None and progress.progress.percent >= 100.0
        patch["phase"] = "Evaluating" if evaluating else "Running"
        reason = Reason.EVALUATING if evaluating else Reason.RUNNING
        cond(ConditionType.RUNNING, True, reason, "evaluating the model" if evaluating else "training")
    elif job.status is JobStatus.SUCCEEDED and result is not None:
        patch.update(_result_fields(result))
        patch["phase"] = "Succeeded"
        patch["completionTime"] = _ms_to_iso(job.end_time_ms) or now
        cond(ConditionType.RUNNING, False, Reason.SUCCEEDED, "the Ray job finished")
        cond(ConditionType.COMPLETE, True, Reason.SUCCEEDED, _summary(result))
        cond(ConditionType.FAILED, False, Reason.SUCCEEDED, "")
        passed = result.compliance.passed and result.gates.passed
        reason = (
            Reason.COMPLIANCE_PASSED
            if passed
            else (Reason.COMPLIANCE_BELOW_THRESHOLD if not result.compliance.passed else Reason.GATES_FAILED)
        )
        message = "; ".join(result.gates.failures) or (
            f"compliance {result.compliance.score:.4f} >= {result.compliance.threshold}"
        )
        cond(ConditionType.COMPLIANT, passed, reason, message)
    else:
        reason, message = _failure(job, result, obs.logs)
        patch["phase"] = "Failed"
        patch["completionTime"] = _ms_to_iso(job.end_time_ms) or now
        cond(ConditionType.RUNNING, False, reason, message)
        cond(ConditionType.FAILED, True, reason, message)
        cond(ConditionType.COMPLETE, False, reason, "the job did not complete")
    patch["conditions"] = conds
    return patch


def _failure(job: JobInfo, result: ResultEvent | None, logs: str) -> tuple[Reason, str]:
    if job.status is JobStatus.SUCCEEDED:  # exited 0 but published no result
        return Reason.NO_RESULT, "the Ray job succeeded without publishing a result; log tail:\n" + log_tail(logs)
    if job.status is JobStatus.STOPPED:
        return Reason.RAY_JOB_STOPPED, f"the Ray job was stopped outside ACGS: {job.message}"
    return Reason.RAY_JOB_FAILED, f"{job.message}\nlog tail:\n{log_tail(logs)}".strip()


def _result_fields(result: ResultEvent) -> dict[str, Any]:
    return {
        "metrics": result.metrics.wire(),
        "compliance": result.compliance.wire(),
        "model": result.model.wire(),
        "restarts": result.restarts,
    }


def _summary(result: ResultEvent) -> str:
    m, c = result.metrics, result.compliance
    acc = f"{m.accuracy:.4f}" if m.accuracy is not None else "n/a"
    f1 = f"{m.f1:.4f}" if m.f1 is not None else "n/a"
    return f"accuracy {acc}, F1 {f1}, compliance {c.score:.4f} under {c.constitution_hash}"


def resubmitted_message(submission_id: str, resubmissions: int, budget: int) -> str:
    return (
        f"Ray no longer knew job {submission_id} (cluster restarted?): submitted it again ({resubmissions} of "
        f"spec.faultTolerance.maxFailures={budget}); it resumes from the run's last checkpoint"
    )


def lost_message(submission_id: str, resubmissions: int, budget: int) -> str:
    return (
        f"Ray no longer knows job {submission_id} (cluster restarted?); it was submitted again {resubmissions} "
        f"times (spec.faultTolerance.maxFailures={budget})"
    )


def suspended_status(generation: int, conditions: Sequence[Condition] | None, now: str) -> dict[str, Any]:
    return {
        "phase": "Suspended",
        "observedGeneration": generation,
        "conditions": set_condition(
            conditions, ConditionType.RUNNING, False, Reason.SUSPENDED, "spec.suspend is true", generation, now
        ),
    }


def pending_status(
    reason: Reason, message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> dict[str, Any]:
    """Waiting on something outside the job (constitution not Valid, Ray unreachable)."""
    return {
        "phase": "Pending",
        "observedGeneration": generation,
        "conditions": set_condition(conditions, ConditionType.SUBMITTED, False, reason, message, generation, now),
    }


def unreachable_status(
    message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> dict[str, Any]:
    """A submitted job whose Ray cluster cannot be reached: the phase stays, Running becomes Unknown."""
    return {
        "observedGeneration": generation,
        "conditions": set_condition(
            conditions, ConditionType.RUNNING, "Unknown", Reason.RAY_UNAVAILABLE, message, generation, now
        ),
    }


def failed_status(
    reason: Reason, message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> dict[str, Any]:
    conds = set_condition(conditions, ConditionType.FAILED, True, reason, message, generation, now)
    conds = set_condition(conds, ConditionType.RUNNING, False, reason, message, generation, now)
    return {"phase": "Failed", "observedGeneration": generation, "completionTime": now, "conditions": conds}


def deadline_exceeded(start_time: str | None, deadline_seconds: int | None, now: dt.datetime) -> bool:
    if not start_time or not deadline_seconds:
        return False
    started = dt.datetime.strptime(start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return (now - started).total_seconds() > deadline_seconds
