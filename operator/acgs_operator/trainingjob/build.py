"""TrainingJob as pure functions: spec -> Ray job request; what was observed of the Ray job -> decision.

A decision is the status to write (a :class:`TrainingJobStatus` model holding only the fields to change:
the status subresource is merge-patched, so a field left unset keeps its value), the events to post, and
whether kopf should retry.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from acgs_operator.api.v1alpha1 import RayJobStatus, TrainingJobSpec, TrainingJobStatus
from acgs_operator.conditions import Condition, ConditionStatus, find, set_condition
from acgs_operator.events import Event
from acgs_operator.rayclient import JobInfo, JobStatus
from acgs_operator.reasons import ConditionType, Reason
from acgs_operator.signing import Signed
from acgs_workloads.contract import (
    ConstitutionSnapshot,
    ProgressEvent,
    ResultEvent,
    TrainRunConfig,
)

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
STARTING_PHASES = ("Pending", "Submitted")  # followed every second: apply -> Running takes seconds
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


# --------------------------------------------------------------------------- what a handler works on and sees


@dataclass(frozen=True)
class Target:
    """One generation of one TrainingJob, parsed from the kopf kwargs: its spec and the status read back."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: TrainingJobSpec
    status: TrainingJobStatus

    @property
    def submission_id(self) -> str:
        return submission_id(self.name, self.uid, self.generation)

    @property
    def recorded_submission_id(self) -> str | None:
        """The Ray job the status names (this generation's, an older one's, or None)."""
        return self.status.ray_job.submission_id if self.status.ray_job else None

    @property
    def resubmissions(self) -> int:
        """Times this generation's Ray job was submitted again so far (0 when the status names another job)."""
        ray_job = self.status.ray_job
        if ray_job is None or ray_job.submission_id != self.submission_id:
            return 0
        return ray_job.resubmissions or 0

    @property
    def budget(self) -> int:
        return self.spec.fault_tolerance.max_failures

    @property
    def done(self) -> bool:
        """This generation finished (Succeeded or Failed): nothing to re-attach to."""
        return self.status.observed_generation == self.generation and self.status.phase in TERMINAL_PHASES


@dataclass
class Observation:
    """What a handler saw of this generation's Ray job, and what it did to it (stop, submit) on the way.

    Filled in by the handler's observe step, read (never changed) by :func:`decide`.
    """

    job: JobInfo | None = None
    events: Sequence[ProgressEvent | ResultEvent] = ()
    logs: str = ""
    resubmissions: int = 0  # times this generation's job was submitted again after its cluster forgot it
    submitted: RayJobRequest | None = None  # submitted by this call (for the first time, or again)
    resubmitted: bool = False  # ... again: the cluster had forgotten it
    stopped_previous: str | None = None  # an older generation's job, stopped by this call
    suspended: bool = False  # spec.suspend is true
    stopped: bool = False  # ... and this call stopped this generation's job
    done: bool = False  # this generation already finished
    waiting: str = ""  # why the job cannot be submitted yet (its Constitution is not Valid)
    lost: bool = False  # the cluster forgot the job and spec.faultTolerance.maxFailures is spent
    deadline_exceeded: bool = False  # spec.activeDeadlineSeconds passed; the job was stopped
    outage: str = ""  # the Ray cluster could not be reached (RayUnavailable)
    signed: Signed | None = None  # the succeeded job's model, signed (or why not) and traced


@dataclass(frozen=True)
class Retry:
    """Ask kopf to run the handler again (kopf.TemporaryError)."""

    message: str
    delay: float


@dataclass(frozen=True)
class Decision:
    status: TrainingJobStatus | None = None  # what to merge into status; None: leave it alone
    events: tuple[Event, ...] = ()
    retry: Retry | None = None
    error: Reason | None = None  # counted in acgs_operator_errors_total
    reconciled: bool = False  # counted as a successful reconcile
    started_running: bool = False  # the phase just became Running (apply-to-running latency)
    phase: str | None = None  # the phase after this decision (the acgs_resources gauge)


# --------------------------------------------------------------------------- statuses


def observed_status(
    obs: Observation,
    *,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    dashboard_url: str,
) -> TrainingJobStatus:
    """Status of a TrainingJob from its Ray job and the events the run published (pure)."""
    progress, result = latest(obs.events)
    status = TrainingJobStatus(observed_generation=generation, conditions=list(conditions or []))
    submitted_now = obs.submitted is not None and not obs.resubmitted

    def cond(type_: ConditionType, value: bool | ConditionStatus, reason: str, message: str) -> None:
        status.conditions = set_condition(status.conditions, type_, value, reason, message, generation, now)

    if obs.job is None:
        status.phase = "Pending"
        status.start_time = now if submitted_now else None
        return status

    job = obs.job
    status.ray_job = RayJobStatus(
        submission_id=job.submission_id,
        status=job.status.value,
        dashboard_url=dashboard_url,
        resubmissions=obs.resubmissions or None,
    )
    status.start_time = _ms_to_iso(job.start_time_ms) or (now if submitted_now else None)
    if progress is not None:
        status.progress = progress.progress
    cond(ConditionType.SUBMITTED, True, Reason.SUBMITTED, f"Ray job {job.submission_id} submitted")

    if job.status is JobStatus.PENDING:
        status.phase = "Submitted"
    elif job.status is JobStatus.RUNNING:
        evaluating = progress is not None and progress.progress.percent >= 100.0
        status.phase = "Evaluating" if evaluating else "Running"
        reason = Reason.EVALUATING if evaluating else Reason.RUNNING
        cond(ConditionType.RUNNING, True, reason, "evaluating the model" if evaluating else "training")
    elif job.status is JobStatus.SUCCEEDED and result is not None:
        status.metrics, status.compliance, status.model = result.metrics, result.compliance, result.model
        status.restarts = result.restarts
        status.phase = "Succeeded"
        status.completion_time = _ms_to_iso(job.end_time_ms) or now
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
        signed = obs.signed
        if signed is not None:
            status.lineage = signed.lineage
            if signed.error:
                cond(ConditionType.SIGNED, False, Reason.SIGNING_FAILED, signed.error)
            elif signed.unsigned:
                cond(ConditionType.SIGNED, False, Reason.UNSIGNED, "no signing key is configured (spec.signing or "
                     "the operator's ACGS_SIGNING_KEY_SECRET)")
            elif signed.lineage is not None:
                cond(ConditionType.SIGNED, True, Reason.SIGNED, f"signed by key {signed.lineage.signed_by}, "
                     f"signature sha256 {signed.lineage.signature_sha256}")
    else:
        reason, message = _failure(job, result, obs.logs)
        status.phase = "Failed"
        status.completion_time = _ms_to_iso(job.end_time_ms) or now
        cond(ConditionType.RUNNING, False, reason, message)
        cond(ConditionType.FAILED, True, reason, message)
        cond(ConditionType.COMPLETE, False, reason, "the job did not complete")
    return status


def _failure(job: JobInfo, result: ResultEvent | None, logs: str) -> tuple[Reason, str]:
    if job.status is JobStatus.SUCCEEDED:  # exited 0 but published no result
        return Reason.NO_RESULT, "the Ray job succeeded without publishing a result; log tail:\n" + log_tail(logs)
    if job.status is JobStatus.STOPPED:
        return Reason.RAY_JOB_STOPPED, f"the Ray job was stopped outside ACGS: {job.message}"
    return Reason.RAY_JOB_FAILED, f"{job.message}\nlog tail:\n{log_tail(logs)}".strip()


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


# A job that Ray reports FAILED with one of these in its message or log lost a node it ran on (the Ray head pod
# deleted or drained: the driver's node is gone), not its own code.
CLUSTER_FAULT_SIGNS = (
    "ActorUnschedulableError",
    "NodeDiedError",
    "NodeAffinitySchedulingStrategy doesn't exist",
    "Job supervisor actor died",
    "The actor died because its node has died",
)
# How long such a job waits for its cluster to come back (and forget it, so it is submitted again) before it
# counts as Failed.
CLUSTER_FAULT_GRACE_SECONDS = 300.0


def cluster_fault(job: JobInfo, logs: str) -> str | None:
    """The sign that a FAILED job lost a node rather than failed by itself (pure), or None."""
    if job.status is not JobStatus.FAILED:
        return None
    text = f"{job.message or ''}\n{logs}"
    return next((sign for sign in CLUSTER_FAULT_SIGNS if sign in text), None)


def cluster_fault_message(submission_id: str, sign: str, resubmissions: int, budget: int) -> str:
    return (
        f"Ray job {submission_id} failed because a node it ran on went away ({sign}); waiting up to "
        f"{CLUSTER_FAULT_GRACE_SECONDS:.0f} s for the Ray cluster to come back, then it is submitted again and "
        f"resumes from its last checkpoint ({resubmissions} of spec.faultTolerance.maxFailures={budget} used)"
    )


def _cluster_fault_since(conditions: Sequence[Condition] | None, now: str) -> dt.datetime:
    """When the job's Running condition became Unknown (a cluster fault, then maybe an outage), else now."""
    running = find(conditions, ConditionType.RUNNING)
    unknown = running is not None and running.status == "Unknown" and running.reason in (
        Reason.RAY_CLUSTER_FAULT, Reason.RAY_UNAVAILABLE
    )
    stamp = running.last_transition_time if unknown and running is not None else None
    return _parse_time(stamp or now)


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def deadline_message(deadline_seconds: int | None, submission_id: str) -> str:
    return f"activeDeadlineSeconds={deadline_seconds} exceeded; stopped Ray job {submission_id}"


def suspended_status(generation: int, conditions: Sequence[Condition] | None, now: str) -> TrainingJobStatus:
    return TrainingJobStatus(
        phase="Suspended",
        observed_generation=generation,
        conditions=set_condition(
            conditions, ConditionType.RUNNING, False, Reason.SUSPENDED, "spec.suspend is true", generation, now
        ),
    )


def pending_status(
    reason: Reason, message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> TrainingJobStatus:
    """Waiting on something outside the job (constitution not Valid, Ray unreachable)."""
    return TrainingJobStatus(
        phase="Pending",
        observed_generation=generation,
        conditions=set_condition(conditions, ConditionType.SUBMITTED, False, reason, message, generation, now),
    )


def unreachable_status(
    message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> TrainingJobStatus:
    """A submitted job whose Ray cluster cannot be reached: the phase stays, Running becomes Unknown."""
    return TrainingJobStatus(
        observed_generation=generation,
        conditions=set_condition(
            conditions, ConditionType.RUNNING, "Unknown", Reason.RAY_UNAVAILABLE, message, generation, now
        ),
    )


def failed_status(
    reason: Reason, message: str, generation: int, conditions: Sequence[Condition] | None, now: str
) -> TrainingJobStatus:
    conds = set_condition(conditions, ConditionType.FAILED, True, reason, message, generation, now)
    conds = set_condition(conds, ConditionType.RUNNING, False, reason, message, generation, now)
    return TrainingJobStatus(phase="Failed", observed_generation=generation, completion_time=now, conditions=conds)


def deadline_exceeded(start_time: str | None, deadline_seconds: int | None, now: dt.datetime) -> bool:
    if not start_time or not deadline_seconds:
        return False
    return (now - _parse_time(start_time)).total_seconds() > deadline_seconds


# --------------------------------------------------------------------------- decisions


def invalid_spec(message: str, generation: int, now: str) -> Decision:
    """A spec the API server let through but the operator cannot use: a permanent failure."""
    return Decision(
        status=failed_status(Reason.INVALID_SPEC, message, generation, None, now),
        events=(Event.warning(Reason.INVALID_SPEC, message),),
        phase="Failed",
    )


def decide(
    target: Target,
    obs: Observation,
    *,
    now: str,
    dashboard_url: str,
    following: bool = False,
    retry: int = 0,
) -> Decision:
    """The status, events and retry for what a handler observed (pure).

    ``following`` is the timer that follows a submitted job (an outage keeps its phase and warns once);
    otherwise the create/update/resume reconciler (an outage is retried with backoff).
    """
    decision = _decide(target, obs, now=now, dashboard_url=dashboard_url, following=following, retry=retry)
    written = decision.status.phase if decision.status is not None else None
    return replace(decision, phase=written or target.status.phase)


def _decide(target: Target, obs: Observation, *, now: str, dashboard_url: str, following: bool, retry: int) -> Decision:
    generation, conditions, sid = target.generation, target.status.conditions, target.submission_id
    acted = _action_events(target, obs, dashboard_url)
    if obs.outage:
        if following:
            before = find(conditions, ConditionType.RUNNING)
            first = before is None or before.reason != Reason.RAY_UNAVAILABLE
            return Decision(
                status=unreachable_status(obs.outage, generation, conditions, now),
                events=(*acted, *([Event.warning(Reason.RAY_UNAVAILABLE, obs.outage)] if first else [])),
                error=Reason.RAY_UNAVAILABLE,
            )  # the timer comes back at its interval: that is the backoff
        pending = pending_status(Reason.RAY_UNAVAILABLE, obs.outage, generation, conditions, now)
        if obs.submitted is not None and not obs.resubmitted:
            pending.start_time = now  # submitted before the cluster went away
        return Decision(
            status=pending,
            events=(*acted, Event.warning(Reason.RAY_UNAVAILABLE, obs.outage)),
            retry=Retry(obs.outage, delay=min(60, 2 ** min(retry, 5))),
            error=Reason.RAY_UNAVAILABLE,
        )
    if obs.suspended:
        return Decision(status=suspended_status(generation, conditions, now), events=acted)
    if obs.done:
        return Decision(events=acted)
    if obs.waiting:
        return Decision(
            status=pending_status(Reason.CONSTITUTION_NOT_READY, obs.waiting, generation, conditions, now),
            events=acted,
            retry=Retry(obs.waiting, delay=5),
        )
    if obs.deadline_exceeded:
        message = deadline_message(target.spec.active_deadline_seconds, sid)
        return Decision(
            status=failed_status(Reason.DEADLINE_EXCEEDED, message, generation, conditions, now),
            events=(*acted, Event.warning(Reason.DEADLINE_EXCEEDED, message)),
        )
    if obs.lost:
        message = lost_message(sid, target.resubmissions, target.budget)
        return Decision(
            status=failed_status(Reason.RAY_JOB_LOST, message, generation, conditions, now),
            events=(*acted, Event.warning(Reason.RAY_JOB_LOST, message)),
        )
    if fault := _awaiting_cluster(target, obs, now):
        first = (running := find(conditions, ConditionType.RUNNING)) is None or running.status != "Unknown"
        return Decision(
            status=TrainingJobStatus(
                observed_generation=generation,
                conditions=set_condition(
                    conditions, ConditionType.RUNNING, "Unknown", Reason.RAY_CLUSTER_FAULT, fault, generation, now
                ),
            ),
            events=(*acted, *([Event.warning(Reason.RAY_CLUSTER_FAULT, fault)] if first else [])),
            retry=None if following else Retry(fault, delay=10),
            error=Reason.RAY_CLUSTER_FAULT,
        )
    status = observed_status(obs, generation=generation, conditions=conditions, now=now, dashboard_url=dashboard_url)
    recorded = target.status.ray_job
    if status.ray_job and not status.ray_job.resubmissions and recorded and recorded.resubmissions:
        status.ray_job.resubmissions = 0  # an older generation's count: merge-patch would keep it otherwise
    old_phase = target.status.phase
    return Decision(
        status=status,
        events=(*acted, *_phase_events(old_phase, status)),
        reconciled=not following,
        started_running=status.phase == "Running" and old_phase != "Running",
    )


def _awaiting_cluster(target: Target, obs: Observation, now: str) -> str | None:
    """The message while a job that lost its node waits for the cluster to forget it (then it is submitted
    again, within spec.faultTolerance.maxFailures); None when it is not such a job, or the wait or budget is over."""
    if obs.job is None or target.resubmissions >= target.budget:
        return None
    sign = cluster_fault(obs.job, obs.logs)
    if sign is None:
        return None
    waited = (_parse_time(now) - _cluster_fault_since(target.status.conditions, now)).total_seconds()
    if waited > CLUSTER_FAULT_GRACE_SECONDS:
        return None
    return cluster_fault_message(obs.job.submission_id, sign, target.resubmissions, target.budget)


def _action_events(target: Target, obs: Observation, dashboard_url: str) -> tuple[Event, ...]:
    """The events for what the observe step did, in the order it did it."""
    out: list[Event] = []
    if obs.stopped_previous:
        out.append(Event.normal(Reason.SPEC_CHANGED, f"stopped Ray job {obs.stopped_previous} of an older generation"))
    if obs.stopped:
        out.append(Event.normal(Reason.SUSPENDED, f"stopped Ray job {target.submission_id}"))
    if obs.submitted is not None:
        sid, component = obs.submitted.submission_id, obs.submitted.config.component
        out.append(Event.normal(Reason.SUBMITTED, f"submitted Ray job {sid} ({component}) to {dashboard_url}"))
        if obs.resubmitted:
            message = resubmitted_message(sid, obs.resubmissions, target.budget)
            out.append(Event.warning(Reason.RAY_JOB_RESUBMITTED, message))
    return tuple(out)


def _phase_events(old_phase: str | None, new: TrainingJobStatus) -> list[Event]:
    """One event when the phase changes: the failure, or the progress of a healthy job."""
    phase = new.phase
    if phase == old_phase:
        return []
    failed = find(new.conditions, ConditionType.FAILED)
    if failed is not None and failed.status == "True":
        return [Event.warning(Reason(failed.reason), failed.message)]
    if phase in ("Running", "Evaluating", "Succeeded"):
        complete = find(new.conditions, ConditionType.COMPLETE)
        out = [Event.normal(Reason(phase), complete.message if complete else f"phase {phase}")]
        signed = find(new.conditions, ConditionType.SIGNED) if phase == "Succeeded" else None
        if signed is not None and signed.status == "True":
            out.append(Event.normal(Reason.SIGNED, signed.message))
        elif signed is not None and signed.reason == Reason.SIGNING_FAILED:
            out.append(Event.warning(Reason.SIGNING_FAILED, signed.message))
        return out
    return []
