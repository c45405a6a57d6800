"""ModelDeployment: gate the model on its constitution, then keep its Ray Serve application in place.

Every handler follows one pattern: typed kopf kwargs -> :func:`_observe` (every read) -> the pure
:func:`build.decide` -> :func:`_apply` (the Serve config if it changes, one status patch, the events).
The change handlers (create, update, resume) and the timers share it; they differ only in what they do
with an invalid spec or an outage (the change handlers report and retry, the timers come back).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events, signing
from acgs_operator.api.v1alpha1 import (
    GROUP,
    VERSION,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSource,
    ReevaluationStatus,
    SecretKeySelector,
    TrainingJobSpec,
)
from acgs_operator.conditions import now_iso, seconds_since
from acgs_operator.constitution import build as constitutions
from acgs_operator.indexes import first
from acgs_operator.metrics import APPLY_TO_READY, ERRORS, PHASES, RECONCILES
from acgs_operator.modeldeployment import build, integrity
from acgs_operator.rayclient import RayClient, RayUnavailable, ServeApplication
from acgs_operator.reasons import Reason
from acgs_workloads.contract import ConstitutionSnapshot, WithdrawnRoute

KIND = "ModelDeployment"
PLURAL = "modeldeployments"
POLL_SECONDS = 5.0  # steady state: re-gate (constitution, training results) and follow replicas
FAST_POLL_SECONDS = 1.0  # while the Serve application is being deployed: Ready within a second of RUNNING
Logger = logging.Logger | logging.LoggerAdapter[Any]
Index = kopf.Index[tuple[str, str], dict[str, Any]]


class SecretUnavailable(Exception):
    """The API-key Secret named by spec.auth cannot be read."""


# --------------------------------------------------------------------------- observe


async def _evidence(source: ModelSource, namespace: str, tj_index: Index | None) -> build.ModelEvidence:
    ref = source.training_job_ref
    if ref is not None:
        return build.evidence_from_training_job(first(tj_index, (namespace, ref.name)), namespace, ref.name)
    uri = source.uri or ""
    # pyarrow (about 40 MB of RSS) is loaded only once a deployment names an artifact by URI
    from acgs_workloads import storage

    try:
        metadata = await asyncio.to_thread(storage.read_metadata, uri)
    except (storage.StorageError, OSError, ValueError, KeyError) as exc:
        return build.ModelEvidence(None, uri, None, None, None, complete=False, not_ready=f"cannot read {uri}: {exc}")
    return build.evidence_from_metadata(metadata, storage.weights_uri_of(uri))


async def _api_key_sha256(memo: kopf.Memo, md: ModelDeploymentSpec, namespace: str) -> str | None:
    if md.auth is None:
        return None
    ref = md.auth.api_key_secret_ref
    try:
        secret = await asyncio.to_thread(memo.core_v1.read_namespaced_secret, ref.name, namespace)
    except Exception as exc:  # kubernetes ApiException or transport errors
        raise SecretUnavailable(f"Secret {namespace}/{ref.name} cannot be read: {getattr(exc, 'reason', exc)}") from exc
    value = (secret.data or {}).get(ref.key)
    if value is None:
        raise SecretUnavailable(f"Secret {namespace}/{ref.name} has no key {ref.key}")
    return hashlib.sha256(base64.b64decode(value)).hexdigest()


async def _api_key(memo: kopf.Memo, md: ModelDeploymentSpec, namespace: str) -> build.ApiKey:
    try:
        return build.ApiKey(sha256=await _api_key_sha256(memo, md, namespace))
    except SecretUnavailable as exc:
        return build.ApiKey(error=str(exc))


def _ray(memo: kopf.Memo, md: ModelDeploymentSpec) -> RayClient:
    return memo.rays.get(md.ray_cluster.address if md.ray_cluster else None)


def _signing_key(
    memo: kopf.Memo, md: ModelDeploymentSpec, namespace: str, tj_index: Index | None
) -> tuple[str, SecretKeySelector] | None:
    """The key that signed (and re-signs) the model: its TrainingJob's, else the operator's."""
    job = None
    if md.model.training_job_ref is not None:
        entry = first(tj_index, (namespace, md.model.training_job_ref.name))
        try:
            job = TrainingJobSpec.model_validate((entry or {}).get("spec") or {})
        except ValidationError:
            job = None
    return signing.signing_key_ref(job, namespace, memo.config)


async def _integrity(
    memo: kopf.Memo,
    ray: RayClient,
    md: ModelDeploymentSpec,
    namespace: str,
    name: str,
    uid: str,
    constitution: ConstitutionSnapshot | None,
    evidence: build.ModelEvidence,
    tj_index: Index | None,
    previous: ReevaluationStatus | None,
) -> tuple[build.ModelEvidence, ReevaluationStatus | None, build.Retraining | None, tuple[str, ...]]:
    """Re-evaluate or retrain a model judged under an older Constitution (spec.onConstitutionChange), then
    verify it."""
    core_v1 = memo.get("core_v1")
    run, retraining = None, None
    stale = (constitution is not None and evidence.complete and evidence.uri and evidence.sha256
             and evidence.constitution_hash != constitution.hash)
    if stale and constitution is not None and md.on_constitution_change == "retrain":
        ref = md.model.training_job_ref
        entry = first(tj_index, (namespace, ref.name)) if ref is not None else None
        retraining = await integrity.retrain(memo.get("custom"), md, namespace, constitution, entry)
    if stale and constitution is not None and md.on_constitution_change == "reevaluate":
        evidence, run = await integrity.reevaluate(
            ray=ray, core_v1=core_v1, md=md, namespace=namespace, name=name, uid=uid, constitution=constitution,
            evidence=evidence, signing_key=_signing_key(memo, md, namespace, tj_index), python=memo.config.ray_python,
            previous=previous,
        )
    verified = await integrity.verify(core_v1, md, namespace, evidence)
    return verified.evidence, run, retraining, verified.keys


async def _observe(
    md: ModelDeploymentSpec,
    status: kopf.Status,
    memo: kopf.Memo,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    constitutions_by_name: Index | None,
    trainingjobs_by_name: Index | None,
) -> build.Observation:
    ref = md.constitution_ref.name
    constitution, why = constitutions.resolve(first(constitutions_by_name, (namespace, ref)), ref)
    evidence = await _evidence(md.model, namespace, trainingjobs_by_name)
    canary = None
    if md.canary is not None:  # gated as it is: never re-evaluated or retrained for a changed Constitution
        canary = await _evidence(md.canary.model, namespace, trainingjobs_by_name)
        canary = (await integrity.verify(memo.get("core_v1"), md, namespace, canary)).evidence
    ray = _ray(memo, md)
    applications: dict[str, ServeApplication] | None
    current = ModelDeploymentStatus.model_validate(dict(status))
    run: ReevaluationStatus | None = None
    retraining: build.Retraining | None = None
    keys: tuple[str, ...] = ()
    try:
        evidence, run, retraining, keys = await _integrity(
            memo, ray, md, namespace, name, uid, constitution, evidence, trainingjobs_by_name, current.reevaluation
        )
        applications, ray_error = await ray.serve_applications(), ""
    except RayUnavailable as exc:
        applications, ray_error = None, str(exc)
    return build.Observation(
        namespace=namespace,
        name=name,
        generation=generation,
        spec=md,
        status=current,
        constitution=constitution,
        why_no_constitution=why,
        evidence=evidence,
        api_key=await _api_key(memo, md, namespace),
        applications=applications,
        ray_error=ray_error,
        base_url=build.serve_url(memo.config.serve_url, ray.dashboard_url, memo.config.serve_http_port),
        verification_keys=keys,
        reevaluation=run,
        retraining=retraining,
        canary=canary,
    )


# --------------------------------------------------------------------------- apply


async def _put_serve(
    memo: kopf.Memo,
    ray: RayClient,
    app: str,
    desired: dict[str, Any] | None,
    deleting: bool = False,
    withdrawn: WithdrawnRoute | None = None,
) -> bool:
    """Put this application's desired config into Ray Serve; True when the config changed.

    The whole config is read and written under ``memo.serve_lock``: it holds every deployment's
    application. A withdrawn (Blocked) deployment keeps Serve and the platform application running, so
    its route answers 404; deleting the last deployment removes every ACGS application.
    """
    http_options = {"host": memo.config.serve_http_host, "port": memo.config.serve_http_port}
    async with memo.serve_lock:
        current = await ray.serve_applications()
        if not build.needs_update(current, app, desired, withdrawn):
            return False
        config = build.compose(current, app, desired, keep_platform=not deleting, withdrawn=withdrawn)
        if config:
            await ray.put_serve_applications(config, http_options)
        else:
            await ray.delete_serve_applications()
        return True


def _write(decision: build.Decision, body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch) -> None:
    """The one status patch, the events, the metrics."""
    patch.status.update(build.status_patch(decision.status))
    events.post(body, decision.events)
    if decision.outage is not None:
        ERRORS.labels(KIND, decision.outage.reason).inc()
        return
    phase = decision.status.phase or "Pending"
    PHASES.record(KIND, f"{meta.get('namespace')}/{meta.get('name')}", phase)
    if decision.became_ready:
        APPLY_TO_READY.observe(seconds_since(meta.get("creationTimestamp")))
    RECONCILES.labels(KIND, phase.lower()).inc()


async def _apply(
    obs: build.Observation,
    decision: build.Decision,
    memo: kopf.Memo,
    body: kopf.Body,
    meta: kopf.Meta,
    patch: kopf.Patch,
) -> build.Decision:
    """Apply a decision once; returns it, or the outage decision when Ray fails while the config is put."""
    if decision.reconfigure:
        try:
            await _put_serve(memo, _ray(memo, obs.spec), obs.app_name, decision.application,
                             withdrawn=decision.withdrawn)
        except RayUnavailable as exc:
            decision = build.unavailable(obs, Reason.RAY_UNAVAILABLE, str(exc), now_iso())
    _write(decision, body, meta, patch)
    return decision


# --------------------------------------------------------------------------- handlers


class ConstitutionRechecking(Exception):
    """The Constitution was edited and its new generation is not checked yet: the deployment keeps what it has
    (a serving route stays up) and is reconciled again once the check is written."""


async def _reconcile(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    name: str,
    constitutions_by_name: Index | None,
    trainingjobs_by_name: Index | None,
) -> build.Decision:
    """Observe, decide, apply. A ValidationError (an invalid spec) propagates to the caller."""
    md = ModelDeploymentSpec.model_validate(dict(spec))
    ns = namespace or "default"
    ref = md.constitution_ref.name
    if constitutions.rechecking(first(constitutions_by_name, (ns, ref))):
        raise ConstitutionRechecking(f"Constitution {ref} was edited and is being checked")
    obs = await _observe(
        md, status, memo, ns, name, meta.get("uid", ""), meta["generation"], constitutions_by_name, trainingjobs_by_name
    )
    return await _apply(obs, build.decide(obs, now_iso()), memo, body, meta, patch)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_model_deployment(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    name: str,
    retry: int,
    constitutions_by_name: Index | None = None,
    trainingjobs_by_name: Index | None = None,
    **_: Any,
) -> None:
    """A created, changed or resumed ModelDeployment: an invalid spec fails for good, an outage is retried."""
    try:
        decision = await _reconcile(
            spec, meta, status, body, patch, memo, namespace, name, constitutions_by_name, trainingjobs_by_name
        )
    except ValidationError as exc:
        events.warning(body, Reason.INVALID_SPEC, str(exc))
        raise kopf.PermanentError(f"invalid ModelDeployment spec: {exc}") from exc
    except ConstitutionRechecking as exc:
        raise kopf.TemporaryError(str(exc), delay=1) from exc
    if decision.outage is not None:
        raise kopf.TemporaryError(decision.outage.message, delay=min(60, 2 ** min(retry, 5)))


def _deploying(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") == "Deploying"


def _settled(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") != "Deploying"


@kopf.timer(GROUP, VERSION, PLURAL, id="follow_deploying", interval=FAST_POLL_SECONDS, when=_deploying)
@kopf.timer(
    GROUP, VERSION, PLURAL, id="follow_settled", interval=POLL_SECONDS, initial_delay=POLL_SECONDS, when=_settled
)
async def follow_model_deployment(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str | None,
    name: str,
    constitutions_by_name: Index | None = None,
    trainingjobs_by_name: Index | None = None,
    **_: Any,
) -> None:
    """Re-gate and follow the Serve application: constitution changes, training results, replica health.

    An outage is in the status and an event; the next tick tries again.
    """
    try:
        await _reconcile(
            spec, meta, status, body, patch, memo, namespace, name, constitutions_by_name, trainingjobs_by_name
        )
    except ValidationError:
        return  # the change handler reported it
    except ConstitutionRechecking:
        return  # the next tick, once the Constitution's handler has checked it


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def remove_model_deployment(
    spec: kopf.Spec, memo: kopf.Memo, namespace: str | None, name: str, logger: Logger, **_: Any
) -> None:
    override = (spec.get("rayCluster") or {}).get("address")
    ray = memo.rays.get(override)
    app = build.app_name(namespace or "default", name)
    try:
        changed = await _put_serve(memo, ray, app, None, deleting=True)
    except RayUnavailable as exc:
        raise kopf.TemporaryError(f"cannot remove the Serve application yet: {exc}", delay=10) from exc
    PHASES.forget(KIND, f"{namespace}/{name}")
    if changed:
        logger.info("removed Serve application %s", app)
