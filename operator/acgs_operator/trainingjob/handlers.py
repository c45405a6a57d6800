"""TrainingJob: submit one Ray job per generation, follow it, publish progress and results in status.

Every handler is observe -> decide -> apply. The typed kopf kwargs become a ``build.Target`` (spec and
status parsed into their models); ``_observe_*`` does every read (the Ray job, its log events, the
Constitution from the index) and the actions whose outcome the status reports (stop, submit, resubmit)
into a ``build.Observation``; ``build.decide`` (pure) turns that into a ``build.Decision``; ``_apply``
merges its status into the patch once, posts its events, counts it, and raises kopf's retry if asked to.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events, signing
from acgs_operator.api.v1alpha1 import GROUP, VERSION, TrainingJobSpec, TrainingJobStatus
from acgs_operator.conditions import now_iso, seconds_since
from acgs_operator.constitution import build as constitutions
from acgs_operator.indexes import first
from acgs_operator.metrics import APPLY_TO_RUNNING, ERRORS, PHASES, RECONCILES
from acgs_operator.rayclient import JobInfo, JobStatus, RayClient, RayError, RayUnavailable
from acgs_operator.trainingjob import build
from acgs_workloads.contract import parse_events

PLURAL = "trainingjobs"
KIND = "TrainingJob"
POLL_SECONDS = 5.0  # a running job: status and progress (from the job log) every 5 s
FAST_POLL_SECONDS = 1.0  # a submitted job waiting to start: apply -> Running should take seconds, not 5
Logger = logging.Logger | logging.LoggerAdapter[Any]


def _ray(memo: kopf.Memo, job: TrainingJobSpec) -> RayClient:
    return memo.rays.get(job.ray_cluster.address if job.ray_cluster else None)


def _target(job: TrainingJobSpec, status: TrainingJobStatus, meta: kopf.Meta, namespace: str | None) -> build.Target:
    return build.Target(
        namespace=namespace or "default",
        name=meta["name"],
        uid=meta["uid"],
        generation=meta["generation"],
        spec=job,
        status=status,
    )


# --------------------------------------------------------------------------- observe (and act)


async def _read(ray: RayClient, info: JobInfo | None, seen: build.Observation) -> None:
    """A Ray job and, once it has started, the events its log published (a finished job's result is there)."""
    seen.job = info
    if info is not None and info.status is not JobStatus.PENDING:
        seen.logs = await ray.job_logs(info.submission_id)
        seen.events = parse_events(seen.logs)


async def _sign(memo: kopf.Memo, target: build.Target, seen: build.Observation) -> None:
    """A job that just succeeded: sign its model (the key stays in the operator) and trace its lineage."""
    if seen.job is None or seen.job.status is not JobStatus.SUCCEEDED:
        return
    _, result = build.latest(seen.events)
    if result is None:
        return
    seen.signed = await signing.sign(memo.get("core_v1"), target.spec, target.namespace, memo.config, result.model.uri)


async def _stop(ray: RayClient, submission_id: str | None) -> bool:
    if not submission_id:
        return False
    info = await ray.get_job(submission_id)
    return info is not None and not info.status.terminal and await ray.stop_job(submission_id)


async def _submit(
    ray: RayClient, memo: kopf.Memo, target: build.Target, index: kopf.Index[Any, Any] | None, seen: build.Observation
) -> None:
    """Submit this generation's job, or submit it again when its cluster forgot it (a head restart).

    Again is within spec.faultTolerance.maxFailures, with the same submission id and run storage: the run
    resumes from its last checkpoint. A spent budget is recorded as lost, a Constitution that is not Valid
    as waiting.
    """
    again = target.recorded_submission_id == target.submission_id
    if again and target.resubmissions >= target.budget:
        seen.lost = True
        return
    ref = target.spec.constitution_ref.name
    snapshot, why = constitutions.resolve(first(index, (target.namespace, ref)), ref)
    if snapshot is None:
        seen.waiting = why
        return
    request = build.build_ray_job(
        namespace=target.namespace,
        name=target.name,
        uid=target.uid,
        generation=target.generation,
        spec=target.spec,
        constitution=snapshot,
        artifact_root=memo.config.artifact_root,
        python=memo.config.ray_python,
    )
    sid = request.submission_id
    try:
        await ray.submit_job(
            submission_id=sid, entrypoint=request.entrypoint, runtime_env=request.runtime_env, metadata=request.metadata
        )
    except RayError:
        if await ray.get_job(sid) is None:  # not an earlier, timed-out submission that went through
            raise
    seen.submitted, seen.resubmitted = request, again
    seen.resubmissions = target.resubmissions + 1 if again else 0
    await _read(ray, await ray.get_job(sid), seen)


async def _observe_reconcile(
    ray: RayClient,
    memo: kopf.Memo,
    target: build.Target,
    index: kopf.Index[Any, Any] | None,
    logger: Logger,
    retry: int,
) -> build.Observation:
    sid, previous = target.submission_id, target.recorded_submission_id
    seen = build.Observation(resubmissions=target.resubmissions)
    try:
        if previous != sid and await _stop(ray, previous):
            seen.stopped_previous = previous
        if target.spec.suspend:
            seen.suspended = True
            seen.stopped = await _stop(ray, sid)
        elif target.done:
            seen.done = True  # nothing to re-attach to
        elif (info := await ray.get_job(sid)) is None:  # new, or its cluster forgot it while no operator ran
            await _submit(ray, memo, target, index, seen)
        else:
            if retry == 0:
                logger.info("re-attached to Ray job %s (%s)", sid, info.status)
            await _read(ray, info, seen)  # one that finished while no operator ran: its result
            await _sign(memo, target, seen)
    except RayUnavailable as exc:
        seen.outage = str(exc)
    return seen


async def _observe_follow(
    ray: RayClient, memo: kopf.Memo, target: build.Target, index: kopf.Index[Any, Any] | None
) -> build.Observation:
    seen = build.Observation(resubmissions=target.resubmissions)
    try:
        if (info := await ray.get_job(target.submission_id)) is None:  # its cluster forgot it
            await _submit(ray, memo, target, index, seen)
        else:
            await _read(ray, info, seen)
            await _sign(memo, target, seen)
        deadline = target.spec.active_deadline_seconds
        if not seen.waiting and build.deadline_exceeded(target.status.start_time, deadline, dt.datetime.now(dt.UTC)):
            await _stop(ray, target.submission_id)
            seen.deadline_exceeded = True
    except RayUnavailable as exc:
        seen.outage = str(exc)
    return seen


# --------------------------------------------------------------------------- apply


def _apply(decision: build.Decision, body: kopf.Body, patch: kopf.Patch) -> None:
    """Write the decision: one status patch, its events, its metrics; kopf's retry if it asks for one."""
    meta = body["metadata"]
    if decision.status is not None:
        patch.status.update(decision.status.wire())
    PHASES.record(KIND, f"{meta.get('namespace')}/{meta.get('name')}", decision.phase)
    if decision.started_running:
        APPLY_TO_RUNNING.observe(seconds_since(meta.get("creationTimestamp")))
    events.post(body, decision.events)
    if decision.error is not None:
        ERRORS.labels(KIND, decision.error).inc()
    if decision.reconciled:
        RECONCILES.labels(KIND, "ok").inc()
    if decision.retry is not None:
        raise kopf.TemporaryError(decision.retry.message, delay=decision.retry.delay)


# --------------------------------------------------------------------------- handlers


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
    retry: int,
    logger: Logger,
    constitutions_by_name: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    now = now_iso()
    try:
        job = TrainingJobSpec.model_validate(dict(spec))
    except ValidationError as exc:
        _apply(build.invalid_spec(str(exc), meta["generation"], now), body, patch)
        raise kopf.PermanentError(f"invalid TrainingJob spec: {exc}") from exc
    target = _target(job, TrainingJobStatus.model_validate(dict(status)), meta, namespace)
    ray = _ray(memo, job)
    seen = await _observe_reconcile(ray, memo, target, constitutions_by_name, logger, retry)
    _apply(build.decide(target, seen, now=now, dashboard_url=ray.dashboard_url, retry=retry), body, patch)


def _followed(
    spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, name: str, uid: str, **_: Any
) -> TrainingJobStatus | None:
    """The status of a TrainingJob whose current generation's Ray job is submitted and not finished, else None."""
    current, generation = TrainingJobStatus.model_validate(dict(status)), meta.get("generation")
    active = (
        not spec.get("suspend")
        and current.ray_job is not None
        and current.ray_job.submission_id == build.submission_id(name, uid, generation or 0)
        and current.observed_generation == generation
        and current.phase not in build.TERMINAL_PHASES
    )
    return current if active else None


def _starting(**kwargs: Any) -> bool:
    current = _followed(**kwargs)
    return current is not None and current.phase in build.STARTING_PHASES


def _started(**kwargs: Any) -> bool:
    current = _followed(**kwargs)
    return current is not None and current.phase not in build.STARTING_PHASES


@kopf.timer(GROUP, VERSION, PLURAL, id="follow_starting", interval=FAST_POLL_SECONDS, when=_starting)
@kopf.timer(GROUP, VERSION, PLURAL, id="follow_running", interval=POLL_SECONDS, when=_started)
async def follow_training_job(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    constitutions_by_name: kopf.Index[Any, Any] | None = None,
    **_: Any,
) -> None:
    job = TrainingJobSpec.model_validate(dict(spec))
    target = _target(job, TrainingJobStatus.model_validate(dict(status)), meta, namespace)
    ray = _ray(memo, job)
    seen = await _observe_follow(ray, memo, target, constitutions_by_name)
    _apply(build.decide(target, seen, now=now_iso(), dashboard_url=ray.dashboard_url, following=True), body, patch)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def stop_training_job(
    spec: kopf.Spec, status: kopf.Status, body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any
) -> None:
    job = TrainingJobSpec.model_validate(dict(spec))
    ray_job = TrainingJobStatus.model_validate(dict(status)).ray_job
    sid = ray_job.submission_id if ray_job else None
    try:
        if await _stop(_ray(memo, job), sid):
            logger.info("stopped Ray job %s on deletion", sid)
    except RayUnavailable as exc:
        raise kopf.TemporaryError(f"cannot stop Ray job {sid} yet: {exc}", delay=10) from exc
    PHASES.forget(KIND, f"{body.metadata.namespace}/{body.metadata.name}")
