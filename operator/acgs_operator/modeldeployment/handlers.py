"""ModelDeployment: gate the model on its constitution, then keep its Ray Serve application in place."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from typing import Any

import kopf
from pydantic import ValidationError

from acgs_operator import events
from acgs_operator.api.v1alpha1 import GROUP, VERSION, ModelDeploymentSpec
from acgs_operator.conditions import now_iso, seconds_since, set_condition
from acgs_operator.constitution import build as constitutions
from acgs_operator.indexes import first
from acgs_operator.metrics import APPLY_TO_READY, ERRORS, PHASES, RECONCILES
from acgs_operator.modeldeployment import build
from acgs_operator.rayclient import RayClient, RayUnavailable
from acgs_operator.reasons import ConditionType, Reason

PLURAL = "modeldeployments"
POLL_SECONDS = 5.0  # steady state: re-gate (constitution, training results) and follow replicas
FAST_POLL_SECONDS = 1.0  # while the Serve application is being deployed: Ready within a second of RUNNING
Logger = logging.Logger | logging.LoggerAdapter[Any]


class SecretUnavailable(Exception):
    """The API-key Secret named by spec.auth cannot be read."""


async def _evidence(
    md: ModelDeploymentSpec, namespace: str, tj_index: kopf.Index[Any, Any] | None
) -> build.ModelEvidence:
    ref = md.model.training_job_ref
    if ref is not None:
        return build.evidence_from_training_job(first(tj_index, (namespace, ref.name)), namespace, ref.name)
    uri = md.model.uri or ""
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


async def _apply(
    memo: kopf.Memo, ray: RayClient, app: str, desired: dict[str, Any] | None, deleting: bool = False
) -> tuple[bool, Any]:
    """Put this application's desired config into Ray Serve; returns (changed, current applications).

    A withdrawn (Blocked) deployment keeps Serve and the platform application running, so its route
    answers 404; deleting the last deployment removes every ACGS application.
    """
    http_options = {"host": memo.config.serve_http_host, "port": memo.config.serve_http_port}
    async with memo.serve_lock:
        current = await ray.serve_applications()
        if not build.needs_update(current, app, desired):
            return False, current
        config = build.compose(current, app, desired, keep_platform=not deleting)
        if config:
            await ray.put_serve_applications(config, http_options)
        else:
            await ray.delete_serve_applications()
        return True, await ray.serve_applications()


async def _reconcile(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    namespace: str,
    name: str,
    indexes: dict[str, Any],
) -> None:
    generation: int = meta["generation"]
    md = ModelDeploymentSpec.model_validate(dict(spec))
    ref = md.constitution_ref.name
    constitution, why = constitutions.resolve(first(indexes["constitutions_by_name"], (namespace, ref)), ref)
    evidence = await _evidence(md, namespace, indexes["trainingjobs_by_name"])
    verdict = build.gate(md, constitution, why, evidence)
    ray = memo.rays.get(md.ray_cluster.address if md.ray_cluster else None)
    app, now, conditions = build.app_name(namespace, name), now_iso(), status.get("conditions")
    desired = None
    if verdict.passed and constitution is not None:
        desired = build.serve_application(
            namespace=namespace,
            name=name,
            spec=md,
            evidence=evidence,
            constitution=constitution,
            api_key_sha256=await _api_key_sha256(memo, md, namespace),
        )
    changed, current = await _apply(memo, ray, app, desired)
    if verdict.passed:
        new = build.serving_status(
            current.get(app),
            verdict,
            evidence,
            md,
            generation,
            conditions,
            now,
            build.serve_url(memo.config.serve_url, ray.dashboard_url, memo.config.serve_http_port),
        )
    else:
        new = build.blocked_status(verdict, evidence, generation, conditions, now, md.compliance.min_score)
    patch.status.update(new)
    _announce(body, meta, status, new, verdict, changed)
    RECONCILES.labels("ModelDeployment", new["phase"].lower()).inc()


def _announce(
    body: kopf.Body, meta: kopf.Meta, old: kopf.Status, new: dict[str, Any], verdict: build.GateVerdict, changed: bool
) -> None:
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    PHASES.record("ModelDeployment", key, new["phase"])
    if changed and not verdict.passed:
        events.warning(body, verdict.reason, f"Serve application withdrawn: {verdict.message}")
    elif changed:
        events.normal(
            body, Reason.DEPLOYING, f"Serve application {build.app_name(meta['namespace'], meta['name'])} configured"
        )
    if new["phase"] == old.get("phase"):
        return
    if new["phase"] == "Blocked":
        events.warning(body, verdict.reason, verdict.message)
    elif new["phase"] == "Ready":
        APPLY_TO_READY.observe(seconds_since(meta.get("creationTimestamp")))
        events.normal(body, Reason.READY, f"serving at {new.get('url')}")
    elif new["phase"] == "Failed":
        ready = next(c for c in new["conditions"] if c["type"] == ConditionType.READY)
        events.warning(body, Reason(ready["reason"]), ready["message"])


def _unavailable(
    exc: Exception, reason: Reason, body: kopf.Body, patch: kopf.Patch, status: kopf.Status, generation: int
) -> None:
    conditions = set_condition(
        status.get("conditions"), ConditionType.READY, False, reason, str(exc), generation, now_iso()
    )
    patch.status.update({"conditions": conditions, "observedGeneration": generation})
    events.warning(body, reason, str(exc))
    ERRORS.labels("ModelDeployment", reason).inc()


async def _guarded(kwargs: dict[str, Any], retry: int | None) -> None:
    """Reconcile; Ray or the API-key Secret being unavailable becomes a condition and an event.

    The change handlers (``retry`` given) then retry with backoff; the timers simply come back.
    """
    status, meta, body, patch = kwargs["status"], kwargs["meta"], kwargs["body"], kwargs["patch"]
    indexes = {key: kwargs.get(key) for key in ("constitutions_by_name", "trainingjobs_by_name")}
    try:
        await _reconcile(
            status=status,
            meta=meta,
            body=body,
            patch=patch,
            spec=kwargs["spec"],
            memo=kwargs["memo"],
            namespace=kwargs.get("namespace") or "default",
            name=kwargs["name"],
            indexes=indexes,
        )
    except ValidationError as exc:
        if retry is None:
            return  # the change handler reported it
        events.warning(body, Reason.INVALID_SPEC, str(exc))
        raise kopf.PermanentError(f"invalid ModelDeployment spec: {exc}") from exc
    except (RayUnavailable, SecretUnavailable) as exc:
        reason = Reason.RAY_UNAVAILABLE if isinstance(exc, RayUnavailable) else Reason.SECRET_UNAVAILABLE
        _unavailable(exc, reason, body, patch, status, meta["generation"])
        if retry is not None:
            raise kopf.TemporaryError(str(exc), delay=min(60, 2 ** min(retry, 5))) from exc


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_model_deployment(retry: int, **kwargs: Any) -> None:
    await _guarded(kwargs, retry)


def _deploying(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") == "Deploying"


def _settled(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") != "Deploying"


@kopf.timer(GROUP, VERSION, PLURAL, id="follow_deploying", interval=FAST_POLL_SECONDS, when=_deploying)
@kopf.timer(
    GROUP, VERSION, PLURAL, id="follow_settled", interval=POLL_SECONDS, initial_delay=POLL_SECONDS, when=_settled
)
async def follow_model_deployment(**kwargs: Any) -> None:
    """Re-gate and follow the Serve application: constitution changes, training results, replica health."""
    await _guarded(kwargs, retry=None)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def remove_model_deployment(
    spec: kopf.Spec, memo: kopf.Memo, namespace: str | None, name: str, logger: Logger, **_: Any
) -> None:
    override = (spec.get("rayCluster") or {}).get("address")
    ray = memo.rays.get(override)
    try:
        changed, _ = await _apply(memo, ray, build.app_name(namespace or "default", name), None, deleting=True)
    except RayUnavailable as exc:
        raise kopf.TemporaryError(f"cannot remove the Serve application yet: {exc}", delay=10) from exc
    PHASES.forget("ModelDeployment", f"{namespace}/{name}")
    if changed:
        logger.info("removed Serve application %s", build.app_name(namespace or "default", name))
