"""TrainingJob: submit one Ray job per generation, follow it, publish progress and results in status."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events
from acgs_operator.api.v1alpha1 import GROUP, VERSION, TrainingJobSpec
from acgs_operator.conditions import find, now_iso, seconds_since
from acgs_operator.constitution import build as constitutions
from acgs_operator.indexes import first
from acgs_operator.metrics import APPLY_TO_RUNNING, ERRORS, PHASES, RECONCILES
from acgs_operator.rayclient import JobInfo, JobStatus, RayClient, RayError, RayUnavailable
from acgs_operator.reasons import ConditionType, Reason
from acgs_operator.trainingjob import build
from acgs_workloads.contract import parse_events

PLURAL = "trainingjobs"
POLL_SECONDS = 5.0  # a running job: status and progress (from the job log) every 5 s
FAST_POLL_SECONDS = 1.0  # a submitted job waiting to start: apply -> Running should take seconds, not 5
Logger = logging.Logger | logging.LoggerAdapter[Any]


def _parse(spec: kopf.Spec, body: kopf.Body, patch: kopf.Patch, generation: int) -> TrainingJobSpec:
    try:
        return TrainingJobSpec.model_validate(dict(spec))
    except ValidationError as exc:
        patch.status.update(build.failed_status(Reason.INVALID_SPEC, str(exc), generation, None, now_iso()))
        events.warning(body, Reason.INVALID_SPEC, str(exc))
        raise kopf.PermanentError(f"invalid TrainingJob spec: {exc}") from exc


def _ray(memo: kopf.Memo, job: TrainingJobSpec) -> RayClient:
    return memo.rays.get(job.ray_cluster.address if job.ray_cluster else None)


async def _observe(ray: RayClient, info: JobInfo | None, resubmissions: int = 0) -> build.Observation:
    """A Ray job and, once it has started, the events its log published (a finished job's result is there)."""
    if info is None or info.status is JobStatus.PENDING:
        return build.Observation(job=info, resubmissions=resubmissions)
    logs = await ray.job_logs(info.submission_id)
    return build.Observation(job=info, events=parse_events(logs), logs=logs, resubmissions=resubmissions)


def _request(memo: kopf.Memo, job: TrainingJobSpec, snapshot: Any, body: kopf.Body) -> build.RayJobRequest:
    meta = body["metadata"]
    return build.build_ray_job(
        namespace=meta.get("namespace") or "default",
        name=meta["name"],
        uid=meta["uid"],
        generation=meta["generation"],
        spec=job,
        constitution=snapshot,
        artifact_root=memo.config.artifact_root,
        python=memo.config.ray_python,
    )


async def _submit(ray: RayClient, request: build.RayJobRequest, body: kopf.Body) -> JobInfo | None:
    sid = request.submission_id
    try:
        await ray.submit_job(
            submission_id=sid, entrypoint=request.entrypoint, runtime_env=request.runtime_env, metadata=request.metadata
        )
    except RayError:
        if await ray.get_job(sid) is None:  # not an earlier, timed-out submission that went through
            raise
    component = request.config.component
    events.normal(body, Reason.SUBMITTED, f"submitted Ray job {sid} ({component}) to {ray.dashboard_url}")
    return await ray.get_job(sid)


def _resubmissions(status: kopf.Status) -> int:
    return int((status.get("rayJob") or {}).get("resubmissions") or 0)


async def _resubmit(
    ray: RayClient,
    memo: kopf.Memo,
    job: TrainingJobSpec,
    body: kopf.Body,
    patch: kopf.Patch,
    status: kopf.Status,
    index: kopf.Index[Any, Any] | None,
) -> tuple[JobInfo | None, int]:
    """Submit a job its Ray cluster forgot (a head restart) again, within spec.faultTolerance.maxFailures.

    The same submission id and run storage: the run resumes from its last checkpoint. Returns the job (None
    when the budget is spent) and the resubmissions so far.
    """
    done, budget = _resubmissions(status), job.fault_tolerance.max_failures
    if done >= budget:
        return None, done
    meta = body["metadata"]
    snapshot = _constitution(job, meta.get("namespace") or "default", index, status, meta["generation"], patch)
    request = _request(memo, job, snapshot, body)
    info = await _submit(ray, request, body)
    message = build.resubmitted_message(request.submission_id, done + 1, budget)
    events.warning(body, Reason.RAY_JOB_RESUBMITTED, message)
    return info, done + 1


def _job_lost(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, job: TrainingJobSpec, sid: str) -> None:
    message = build.lost_message(sid, _resubmissions(status), job.fault_tolerance.max_failures)
    generation = body["metadata"]["generation"]
    patch.status.update(
        build.failed_status(Reason.RAY_JOB_LOST, message, generation, status.get("conditions"), now_iso())
    )
    events.warning(body, Reason.RAY_JOB_LOST, message)


async def _stop(ray: RayClient, submission_id: str | None) -> bool:
    if not submission_id:
        return False
    info = await ray.get_job(submission_id)
    return info is not None and not info.status.terminal and await ray.stop_job(submission_id)


def _lost_contact(exc: RayUnavailable, body: kopf.Body, patch: kopf.Patch, status: kopf.Status, gen: int) -> None:
    """A submitted job's cluster is unreachable: keep the phase (the job may well run on), say so once."""
    ERRORS.labels("TrainingJob", Reason.RAY_UNAVAILABLE).inc()
    before = find(status.get("conditions"), ConditionType.RUNNING) or {}
    patch.status.update(build.unreachable_status(str(exc), gen, status.get("conditions"), now_iso()))
    if before.get("reason") != Reason.RAY_UNAVAILABLE:
        events.warning(body, Reason.RAY_UNAVAILABLE, str(exc))


def _ray_unavailable(exc: RayUnavailable, body: kopf.Body, patch: kopf.Patch, status: kopf.Status, gen: int) -> None:
    conditions = status.get("conditions")
    patch.status.update(build.pending_status(Reason.RAY_UNAVAILABLE, str(exc), gen, conditions, now_iso()))
    events.warning(body, Reason.RAY_UNAVAILABLE, str(exc))
    ERRORS.labels("TrainingJob", Reason.RAY_UNAVAILABLE).inc()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_training_job(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    name: str,
    uid: str,
    retry: int,
    logger: Logger,
    constitutions_by_name: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    generation: int = meta["generation"]
    namespace = namespace or "default"
    job = _parse(spec, body, patch, generation)
    ray, sid = _ray(memo, job), build.submission_id(name, uid, generation)
    previous = (status.get("rayJob") or {}).get("submissionId")
    try:
        if previous != sid and await _stop(ray, previous):
            events.normal(body, Reason.SPEC_CHANGED, f"stopped Ray job {previous} of an older generation")
        if job.suspend:
            if await _stop(ray, sid):
                events.normal(body, Reason.SUSPENDED, f"stopped Ray job {sid}")
            patch.status.update(build.suspended_status(generation, status.get("conditions"), now_iso()))
            return
        if status.get("observedGeneration") == generation and status.get("phase") in build.TERMINAL_PHASES:
            return  # this generation is done; nothing to re-attach to
        info = await ray.get_job(sid)
        resubmissions = _resubmissions(status) if previous == sid else 0
        if info is None and previous == sid:  # Ray knew this job once: the cluster forgot it while we were away
            info, resubmissions = await _resubmit(ray, memo, job, body, patch, status, constitutions_by_name)
            if info is None:
                _job_lost(body, patch, status, job, sid)
                return
        elif info is None:
            snapshot = _constitution(job, namespace, constitutions_by_name, status, generation, patch)
            info = await _submit(ray, _request(memo, job, snapshot, body), body)
            patch.status["startTime"] = now_iso()
        elif retry == 0:
            logger.info("re-attached to Ray job %s (%s)", sid, info.status)
        observation = await _observe(ray, info, resubmissions)  # one that finished while no operator ran: its result
    except RayUnavailable as exc:
        _ray_unavailable(exc, body, patch, status, generation)
        raise kopf.TemporaryError(str(exc), delay=min(60, 2 ** min(retry, 5))) from exc
    _publish(observation, ray.dashboard_url, body, patch, status)
    RECONCILES.labels("TrainingJob", "ok").inc()


def _constitution(
    job: TrainingJobSpec,
    namespace: str,
    index: kopf.Index[Any, Any] | None,
    status: kopf.Status,
    generation: int,
    patch: kopf.Patch,
) -> Any:
    ref = job.constitution_ref.name
    snapshot, why = constitutions.resolve(first(index, (namespace, ref)), ref)
    if snapshot is None:
        conditions = status.get("conditions")
        patch.status.update(
            build.pending_status(Reason.CONSTITUTION_NOT_READY, why, generation, conditions, now_iso())
        )
        raise kopf.TemporaryError(why, delay=5)
    return snapshot


def _active(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    return (
        not spec.get("suspend")
        and bool((status.get("rayJob") or {}).get("submissionId"))
        and status.get("observedGeneration") == meta.get("generation")
        and status.get("phase") not in build.TERMINAL_PHASES
    )


def _starting(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    return _active(spec=spec, status=status, meta=meta) and status.get("phase") in ("Pending", "Submitted")


def _started(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    return _active(spec=spec, status=status, meta=meta) and status.get("phase") not in ("Pending", "Submitted")


@kopf.timer(GROUP, VERSION, PLURAL, id="follow_starting", interval=FAST_POLL_SECONDS, when=_starting)
@kopf.timer(GROUP, VERSION, PLURAL, id="follow_running", interval=POLL_SECONDS, when=_started)
async def follow_training_job(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    constitutions_by_name: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    generation: int = meta["generation"]
    job = TrainingJobSpec.model_validate(dict(spec))
    ray, sid = _ray(memo, job), status["rayJob"]["submissionId"]
    resubmissions = _resubmissions(status)
    try:
        info = await ray.get_job(sid)
        if info is None:
            info, resubmissions = await _resubmit(ray, memo, job, body, patch, status, constitutions_by_name)
        observation = await _observe(ray, info, resubmissions)
        if build.deadline_exceeded(
            status.get("startTime"), job.active_deadline_seconds, dt.datetime.now(dt.UTC)
        ):
            await _stop(ray, sid)
            message = f"activeDeadlineSeconds={job.active_deadline_seconds} exceeded; stopped Ray job {sid}"
            patch.status.update(
                build.failed_status(
                    Reason.DEADLINE_EXCEEDED, message, generation, status.get("conditions"), now_iso()
                )
            )
            events.warning(body, Reason.DEADLINE_EXCEEDED, message)
            return
    except RayUnavailable as exc:
        _lost_contact(exc, body, patch, status, generation)
        return  # the timer comes back at its interval: that is the backoff
    if info is None:
        _job_lost(body, patch, status, job, sid)
        return
    _publish(observation, ray.dashboard_url, body, patch, status)


def _publish(
    observation: build.Observation, dashboard_url: str, body: kopf.Body, patch: kopf.Patch, status: kopf.Status
) -> None:
    """Write what was observed of the Ray job into status; post an event when the phase changes."""
    new = build.observed_status(
        observation,
        generation=body["metadata"]["generation"],
        conditions=status.get("conditions"),
        now=now_iso(),
        dashboard_url=dashboard_url,
    )
    patch.status.update(new)
    _announce(body, status.get("phase"), new, body["metadata"])


def _announce(body: kopf.Body, old_phase: str | None, new: dict[str, Any], meta: kopf.Meta) -> None:
    phase = new.get("phase")
    PHASES.record("TrainingJob", f"{meta.get('namespace')}/{meta.get('name')}", phase)
    if phase == old_phase:
        return
    if phase == "Running":
        APPLY_TO_RUNNING.observe(seconds_since(meta.get("creationTimestamp")))
    failed = next((c for c in new.get("conditions", []) if c["type"] == "Failed" and c["status"] == "True"), None)
    if failed:
        events.warning(body, Reason(failed["reason"]), failed["message"])
    elif phase in ("Running", "Evaluating", "Succeeded"):
        complete = next((c for c in new.get("conditions", []) if c["type"] == "Complete"), None)
        events.normal(body, Reason(phase), complete["message"] if complete else f"phase {phase}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def stop_training_job(
    spec: kopf.Spec, status: kopf.Status, body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any
) -> None:
    job = TrainingJobSpec.model_validate(dict(spec))
    sid = (status.get("rayJob") or {}).get("submissionId")
    try:
        if await _stop(_ray(memo, job), sid):
            logger.info("stopped Ray job %s on deletion", sid)
    except RayUnavailable as exc:
        raise kopf.TemporaryError(f"cannot stop Ray job {sid} yet: {exc}", delay=10) from exc
    PHASES.forget("TrainingJob", f"{body.metadata.namespace}/{body.metadata.name}")
