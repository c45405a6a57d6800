"""ModelDeployment as pure functions: the compliance gate, the Serve application config, the decision.

A reconcile observes (the Constitution and TrainingJob indexes, the artifact metadata, the API-key Secret,
the Serve applications), then :func:`decide` turns that :class:`Observation` into a :class:`Decision`: the
status to write (a :class:`ModelDeploymentStatus` model), the events to post and the desired Serve
application. The handler applies it once.

The Serve REST API replaces the whole config, so ``compose`` rebuilds the full application list from
what is deployed now, changing only this deployment's application (and the platform application).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from acgs_operator.api.v1alpha1 import (
    CanaryStatus,
    DeployedModel,
    DeploymentComplianceStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ReevaluationStatus,
    ReplicaStatus,
    RolloutStatus,
    TrainingJobSpec,
    TrainingJobStatus,
)
from acgs_operator.conditions import Condition, find, is_true, set_condition
from acgs_operator.events import Event
from acgs_operator.rayclient import ServeApplication
from acgs_operator.reasons import ConditionType, Reason
from acgs_workloads.contract import (
    INGRESS_DEPLOYMENT,
    MODEL_APP_IMPORT,
    PLATFORM_APP,
    PLATFORM_APP_IMPORT,
    ArtifactMetadata,
    CanaryArgs,
    Component,
    ConstitutionSnapshot,
    InvalidAppArgs,
    Lineage,
    ModelAppArgs,
    PlatformArgs,
    VerificationArgs,
    WithdrawnRoute,
    parse_platform_args,
)

Phase = Literal["Pending", "Blocked", "Deploying", "Ready", "Failed"]


@dataclass(frozen=True)
class ModelEvidence:
    """What is known about the model to serve, from its TrainingJob or its artifact metadata."""

    component: str | None
    uri: str | None
    sha256: str | None
    constitution_hash: str | None
    score: float | None
    training_job: str | None = None
    complete: bool = True
    not_ready: str = ""  # why the model cannot be judged yet
    lineage: Lineage | None = None  # traced from the artifact (signature verified when keys are configured)
    signature_error: str = ""  # the signature is missing or does not verify with the configured keys
    reevaluated: bool = False  # hash and score come from a re-evaluation record under the current Constitution


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: Reason
    message: str
    score: float | None = None
    constitution_hash: str | None = None


def evidence_from_training_job(entry: Mapping[str, Any] | None, namespace: str, name: str) -> ModelEvidence:
    """From the trainingjobs index entry ``{"spec", "status", "generation", "uid"}`` (see acgs_operator.indexes)."""
    ref = f"{namespace}/{name}"
    if entry is None:
        return ModelEvidence(
            None, None, None, None, None, ref, complete=False, not_ready=f"TrainingJob {ref} not found"
        )
    try:
        spec = TrainingJobSpec.model_validate(entry.get("spec") or {})
        status = TrainingJobStatus.model_validate(entry.get("status") or {})
    except ValidationError as exc:
        return ModelEvidence(
            None, None, None, None, None, ref, complete=False, not_ready=f"TrainingJob {ref} cannot be read: {exc}"
        )
    complete = is_true(status.conditions, ConditionType.COMPLETE)
    fresh = status.observed_generation == entry.get("generation")
    model, compliance = status.model, status.compliance
    return ModelEvidence(
        component=spec.component,
        uri=model.uri if model else None,
        sha256=model.sha256 if model else None,
        constitution_hash=compliance.constitution_hash if compliance else None,
        score=compliance.score if compliance else None,
        training_job=ref,
        complete=complete and fresh,
        not_ready="" if complete and fresh else f"TrainingJob {ref} is {status.phase or 'Pending'}",
    )


def evidence_from_metadata(metadata: ArtifactMetadata, uri: str) -> ModelEvidence:
    """From an artifact's metadata.json (written by the training run; see acgs_workloads.artifacts)."""
    return ModelEvidence(
        component=metadata.component,
        uri=uri,
        sha256=metadata.weights.sha256,
        constitution_hash=metadata.constitution_hash,
        score=metadata.compliance.score if metadata.compliance else None,
    )


def gate(
    spec: ModelDeploymentSpec, constitution: ConstitutionSnapshot | None, why_not: str, evidence: ModelEvidence
) -> GateVerdict:
    """DESIGN §2: same constitution hash, score >= minScore, matching sha256, training complete."""
    if constitution is None:
        return GateVerdict(False, Reason.CONSTITUTION_NOT_READY, why_not)
    if not evidence.complete:
        return GateVerdict(False, Reason.TRAINING_NOT_COMPLETE, evidence.not_ready or "training is not complete")
    score, hash_ = evidence.score, evidence.constitution_hash
    if hash_ != constitution.hash:
        rerun = f"; re-run TrainingJob {evidence.training_job}" if evidence.training_job else ""
        return GateVerdict(
            False,
            Reason.CONSTITUTION_CHANGED,
            f"model was evaluated under constitution hash {hash_}, Constitution {constitution.name} is now "
            f"{constitution.hash}{rerun}",
            score,
            hash_,
        )
    minimum = spec.compliance.min_score
    if score is None or score < minimum:
        return GateVerdict(
            False,
            Reason.COMPLIANCE_BELOW_THRESHOLD,
            f"compliance score {score} is below minScore {minimum}",
            score,
            hash_,
        )
    if spec.model.sha256 and evidence.sha256 != spec.model.sha256:
        return GateVerdict(
            False,
            Reason.ARTIFACT_DIGEST_MISMATCH,
            f"artifact sha256 {evidence.sha256} does not match spec.model.sha256 {spec.model.sha256}",
            score,
            hash_,
        )
    if not evidence.uri or not evidence.sha256:
        return GateVerdict(False, Reason.TRAINING_NOT_COMPLETE, "the model has no artifact yet", score, hash_)
    if evidence.signature_error:
        return GateVerdict(False, Reason.SIGNATURE_INVALID, evidence.signature_error, score, hash_)
    how = " (re-evaluated)" if evidence.reevaluated else ""
    signed = f", signed by {evidence.lineage.signed_by}" if evidence.lineage and evidence.lineage.signed_by else ""
    return GateVerdict(
        True, Reason.COMPLIANCE_PASSED, f"compliance {score:.4f} >= {minimum} under {hash_}{how}{signed}", score, hash_
    )


def canary_gate(spec: ModelDeploymentSpec, constitution: ConstitutionSnapshot | None, why_not: str,
                primary: ModelEvidence, canary: ModelEvidence) -> GateVerdict:
    """The gate of ``spec.canary``'s model: the one of ``spec.model`` (with the canary's sha256 pin), and the
    component ``spec.model`` serves."""
    assert spec.canary is not None
    verdict = gate(spec.model_copy(update={"model": spec.canary.model}), constitution, why_not, canary)
    if verdict.passed and primary.component and canary.component != primary.component:
        return GateVerdict(False, Reason.COMPONENT_MISMATCH, f"the canary is a {canary.component} model, the "
                           f"deployment serves {primary.component}", verdict.score, verdict.constitution_hash)
    return verdict


def app_name(namespace: str, name: str) -> str:
    return f"{namespace}-{name}"


def route_prefix(spec: ModelDeploymentSpec, component: str | None) -> str:
    return spec.route_prefix or f"/{component}"


def serve_application(
    *,
    namespace: str,
    name: str,
    spec: ModelDeploymentSpec,
    evidence: ModelEvidence,
    constitution: ConstitutionSnapshot,
    api_key_sha256: str | None = None,
    verification_keys: Sequence[str] = (),
    canary: CanaryArgs | None = None,
) -> dict[str, Any]:
    """The Serve REST config of one ModelDeployment's application (ServeApplicationSchema).

    ``canary`` (a canary that passed its gate) is loaded by every replica next to the model, which sends it
    its share of the requests; adding, changing or removing it is a rollout like any change of the args.

    ``spec.queue`` becomes Serve's own load shedding: ``max_ongoing_requests`` per replica, a bounded
    ``max_queued_requests`` in front of them, and ``backpressure_config`` so that Serve's proxy answers the
    excess at once with 503 and ``Retry-After`` (without it Serve sends no Retry-After); the replica gets the
    same limits through ``args.queue`` for its own admission check.
    """
    queue = spec.queue
    deployment: dict[str, Any] = {
        "name": INGRESS_DEPLOYMENT,
        "ray_actor_options": {"num_cpus": spec.resources.cpus, "num_gpus": spec.resources.gpus},
        "max_ongoing_requests": queue.max_ongoing_requests,
        "max_queued_requests": queue.max_queued_requests,
        "backpressure_config": {"status_code": 503, "retry_after_s": float(queue.retry_after_seconds)},
        "max_surge_percent": spec.rollout.max_surge_percent,
    }
    if spec.autoscaling is not None:
        deployment["autoscaling_config"] = {
            "min_replicas": spec.autoscaling.min_replicas,
            "max_replicas": spec.autoscaling.max_replicas,
            "target_ongoing_requests": spec.autoscaling.target_ongoing_requests,
        }
    else:
        deployment["num_replicas"] = spec.replicas if spec.replicas is not None else 1
    args = ModelAppArgs(
        deployment=f"{namespace}/{name}",
        component=cast(Component, evidence.component),  # validated here: the gate passed only a known component
        model_uri=evidence.uri or "",
        model_sha256=evidence.sha256 or "",
        constitution=constitution,
        runtime_guard=spec.compliance.runtime_guard,
        batching=spec.batching,
        api_key_sha256=api_key_sha256 or None,
        queue=queue,
        verification=VerificationArgs(public_keys=list(verification_keys)) if verification_keys else None,
        canary=canary,
    )
    return {
        "name": app_name(namespace, name),
        "route_prefix": route_prefix(spec, evidence.component),
        "import_path": MODEL_APP_IMPORT,
        "args": args.wire(),
        "deployments": [deployment],
    }


def platform_application(withdrawn: Sequence[WithdrawnRoute] = ()) -> dict[str, Any]:
    """The platform application; ``withdrawn`` routes are answered by it with 503 and their reason."""
    args = PlatformArgs(withdrawn=sorted(withdrawn, key=lambda w: w.application)).wire() if withdrawn else {}
    return {"name": PLATFORM_APP, "route_prefix": "/", "import_path": PLATFORM_APP_IMPORT, "args": args}


def _withdrawn_now(current: Mapping[str, ServeApplication]) -> list[WithdrawnRoute]:
    platform = current.get(PLATFORM_APP)
    if platform is None or platform.config is None:
        return []
    try:
        return parse_platform_args(platform.config.get("args")).withdrawn
    except InvalidAppArgs:
        return []  # an older operator's platform args: rewritten with this deployment's entry


def platform_for(
    current: Mapping[str, ServeApplication], name: str, withdrawn: WithdrawnRoute | None
) -> dict[str, Any]:
    """The platform application with ``name``'s withdrawn route set to ``withdrawn`` (removed when None)."""
    routes = [w for w in _withdrawn_now(current) if w.application != name]
    return platform_application([*routes, withdrawn] if withdrawn is not None else routes)


def compose(
    current: Mapping[str, ServeApplication],
    name: str,
    desired: dict[str, Any] | None,
    keep_platform: bool = False,
    withdrawn: WithdrawnRoute | None = None,
) -> list[dict[str, Any]]:
    """The full Serve config: every declaratively deployed application kept, ``name`` set to ``desired``
    (or removed when None), and the platform application present when a model app is, or when
    ``keep_platform`` (a withdrawn deployment still exists: its route answers 503 with ``withdrawn``'s
    reason, or 404, instead of vanishing)."""
    apps = [
        app.config for key, app in sorted(current.items()) if app.config is not None and key not in (name, PLATFORM_APP)
    ]
    if desired is not None:
        apps.append(desired)
    model_apps = [a for a in apps if a.get("import_path") == MODEL_APP_IMPORT]
    if model_apps or keep_platform:
        apps.append(platform_for(current, name, withdrawn if desired is None and keep_platform else None))
    return apps


def needs_update(
    current: Mapping[str, ServeApplication],
    name: str,
    desired: dict[str, Any] | None,
    withdrawn: WithdrawnRoute | None = None,
) -> bool:
    """Whether the Serve config must change: this deployment's application, or (once the platform runs) the
    withdrawn routes it answers."""
    app = current.get(name)
    platform = current.get(PLATFORM_APP)
    if desired is None:
        stale = platform is not None and platform.config != platform_for(current, name, withdrawn)
        return app is not None or stale
    if platform is None:
        return True
    return app is None or app.config != desired or platform.config != platform_for(current, name, None)


def serve_url(configured: str, dashboard_url: str, port: int = 8000) -> str:
    if configured:
        return configured.rstrip("/")
    host = urlsplit(dashboard_url).hostname or "127.0.0.1"
    return f"http://{host}:{port}"


def routes(prefix: str) -> list[str]:
    base = prefix.rstrip("/")
    return [f"{base}/predict", f"{base}/health", f"{base}/metadata"]


# --------------------------------------------------------------------------- status


def _model(evidence: ModelEvidence) -> DeployedModel:
    return DeployedModel(
        uri=evidence.uri, sha256=evidence.sha256, training_job=evidence.training_job, lineage=evidence.lineage
    )


def _compliance(verdict: GateVerdict, min_score: float) -> DeploymentComplianceStatus:
    return DeploymentComplianceStatus(
        constitution_hash=verdict.constitution_hash, score=verdict.score, gate=min_score, reason=verdict.reason.value
    )


def blocked_status(
    verdict: GateVerdict,
    evidence: ModelEvidence,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    min_score: float,
) -> ModelDeploymentStatus:
    conds = set_condition(
        conditions, ConditionType.COMPLIANCE_PASSED, False, verdict.reason, verdict.message, generation, now
    )
    conds = set_condition(
        conds, ConditionType.READY, False, verdict.reason, "not served: " + verdict.message, generation, now
    )
    return ModelDeploymentStatus(
        phase="Blocked",
        observed_generation=generation,
        conditions=conds,
        url=None,
        routes=[],
        model=_model(evidence),
        compliance=_compliance(verdict, min_score),
        replicas=ReplicaStatus(desired=0, ready=0),
    )


def serving_status(
    app: ServeApplication | None,
    verdict: GateVerdict,
    evidence: ModelEvidence,
    spec: ModelDeploymentSpec,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    base_url: str,
) -> ModelDeploymentStatus:
    """Status of a deployment that passed its gate, from its Serve application's state."""
    conds = set_condition(
        conditions, ConditionType.COMPLIANCE_PASSED, True, verdict.reason, verdict.message, generation, now
    )
    prefix = route_prefix(spec, evidence.component)
    state = app.status if app else "NOT_STARTED"
    ready = state == "RUNNING"
    phase: Phase
    if state in ("DEPLOY_FAILED", "UNHEALTHY"):
        reason = _failure_reason(app.message if app else "")
        phase, message = "Failed", f"Serve application {state}: {app.message if app else ''}"
    elif ready:
        reason, phase, message = Reason.READY, "Ready", f"serving at {base_url}{prefix}"
    else:
        reason, phase, message = Reason.DEPLOYING, "Deploying", f"Serve application {state}"
    conds = set_condition(conds, ConditionType.READY, ready, reason, message, generation, now)
    desired = spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas if spec.replicas is not None else 1
    return ModelDeploymentStatus(
        phase=phase,
        observed_generation=generation,
        conditions=conds,
        url=f"{base_url}{prefix}" if ready else None,
        routes=routes(prefix) if ready else [],
        model=_model(evidence),
        compliance=_compliance(verdict, spec.compliance.min_score),
        replicas=ReplicaStatus(
            desired=app.replicas_target if app and app.replicas_target else desired,
            ready=app.replicas_running if app else 0,
        ),
    )


def _failure_reason(message: str) -> Reason:
    """Why a Serve application failed, from its message (the replica's error names what it refused)."""
    if "signature" in message.lower():
        return Reason.SIGNATURE_INVALID
    if "sha256" in message:
        return Reason.ARTIFACT_DIGEST_MISMATCH
    return Reason.DEPLOY_FAILED


def unavailable_status(
    current: ModelDeploymentStatus, reason: Reason, message: str, generation: int, now: str
) -> ModelDeploymentStatus:
    """Ray or the API-key Secret cannot be reached: only the Ready condition and observedGeneration change."""
    conditions = set_condition(current.conditions, ConditionType.READY, False, reason, message, generation, now)
    return ModelDeploymentStatus(conditions=conditions, observed_generation=generation)


def status_patch(status: ModelDeploymentStatus) -> dict[str, Any]:
    """The JSON merge patch (kopf's ``patch.status``) that writes ``status``.

    Exactly the fields the builder set are named, as in ``status.wire()``; a field set to None becomes a
    null, which deletes it (``url`` of a withdrawn deployment), while a field the builder did not set is
    left out and keeps its value. Nested objects are patched field by field the same way.
    """
    return _merge_patch(status)


def _merge_patch(model: BaseModel) -> dict[str, Any]:
    wire = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    patch: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        if name not in model.model_fields_set:
            continue
        key, value = info.alias or name, getattr(model, name)
        if value is None:
            patch[key] = None
        elif isinstance(value, BaseModel):
            patch[key] = _merge_patch(value)
        else:
            patch[key] = wire[key]
    return patch


# --------------------------------------------------------------------------- observe -> decide


@dataclass(frozen=True)
class ApiKey:
    """The API key named by spec.auth, as its sha256; ``error`` when the Secret cannot be read."""

    sha256: str | None = None
    error: str = ""


@dataclass(frozen=True)
class Retraining:
    """onConstitutionChange retrain: the TrainingJob's new generation for the new Constitution."""

    message: str
    started: bool = False  # this reconcile started it
    error: bool = False  # it could not be started (the message says why)


@dataclass(frozen=True)
class Observation:
    """Everything one reconcile read; :func:`decide` needs nothing else."""

    namespace: str
    name: str
    generation: int
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus  # as it is now
    constitution: ConstitutionSnapshot | None
    why_no_constitution: str  # when constitution is None
    evidence: ModelEvidence
    api_key: ApiKey
    applications: Mapping[str, ServeApplication] | None  # the Serve applications; None: Ray unreachable
    ray_error: str = ""  # why applications is None
    base_url: str = ""  # where Serve answers, e.g. http://127.0.0.1:8000
    verification_keys: tuple[str, ...] = ()  # public keys the replicas verify the model's signature with
    reevaluation: ReevaluationStatus | None = None  # the evaluation-only run under a changed Constitution
    retraining: Retraining | None = None  # the new TrainingJob generation (onConstitutionChange retrain)
    canary: ModelEvidence | None = None  # spec.canary's model (None without spec.canary)

    @property
    def app_name(self) -> str:
        return app_name(self.namespace, self.name)


@dataclass(frozen=True)
class Outage:
    """Ray or the API-key Secret is unavailable: change handlers retry with backoff, timers come back."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class Decision:
    status: ModelDeploymentStatus  # written with status_patch
    events: list[Event] = field(default_factory=list)
    application: dict[str, Any] | None = None  # this deployment's desired Serve application; None: none
    reconfigure: bool = False  # the Serve config must change: put ``application``, or withdraw it when None
    withdrawn: WithdrawnRoute | None = None  # not served: the platform answers the route with 503 and this reason
    outage: Outage | None = None
    became_ready: bool = False  # phase Ready now, and not before (the apply-to-ready metric)


def unavailable(obs: Observation, reason: Reason, message: str, now: str) -> Decision:
    status = unavailable_status(obs.status, reason, message, obs.generation, now)
    return Decision(status, [Event.warning(reason, message)], outage=Outage(reason, message))


def decide(obs: Observation, now: str) -> Decision:
    """Gate the model, choose the Serve application and the status (pure).

    The status describes the Serve application as it will be once the decision is applied: a (re)configured
    application is reported as DEPLOYING, as Ray Serve reports it right after the config is put.
    """
    spec, evidence = obs.spec, obs.evidence
    verdict = _while_reevaluating(gate(spec, obs.constitution, obs.why_no_constitution, evidence), obs.reevaluation)
    if obs.retraining is not None and verdict.reason == Reason.CONSTITUTION_CHANGED:
        reason = Reason.CONSTITUTION_CHANGED if obs.retraining.error else Reason.RETRAINING
        verdict = replace(verdict, reason=reason, message=obs.retraining.message)
    if verdict.passed and obs.api_key.error:
        return unavailable(obs, Reason.SECRET_UNAVAILABLE, obs.api_key.error, now)
    if obs.applications is None:
        return unavailable(obs, Reason.RAY_UNAVAILABLE, obs.ray_error, now)
    name = obs.app_name
    canary_verdict = (canary_gate(spec, obs.constitution, obs.why_no_constitution, evidence, obs.canary)
                      if spec.canary is not None and obs.canary is not None else None)
    desired = None
    if verdict.passed and obs.constitution is not None:
        desired = serve_application(
            namespace=obs.namespace,
            name=obs.name,
            spec=spec,
            evidence=evidence,
            constitution=obs.constitution,
            api_key_sha256=obs.api_key.sha256,
            verification_keys=obs.verification_keys,
            canary=_canary_args(spec, obs.canary, canary_verdict),
        )
    withdrawn = None if verdict.passed else _withdrawn_route(name, spec, evidence, verdict)
    reconfigure = needs_update(obs.applications, name, desired, withdrawn)
    if verdict.passed:
        app = obs.applications.get(name)
        if desired is not None and (app is None or app.config != desired):
            app = ServeApplication(name, "DEPLOYING", route_prefix=desired["route_prefix"], config=desired)
        status = serving_status(app, verdict, evidence, spec, obs.generation, obs.status.conditions, now, obs.base_url)
        rollout = rollout_status(obs, evidence, app, now)
        if rollout is not None:
            status.rollout = rollout
            if rollout.phase == "Progressing":  # the old model serves until the new replicas are healthy
                prefix = route_prefix(spec, evidence.component)
                status.url, status.routes = f"{obs.base_url}{prefix}", routes(prefix)
    else:
        status = blocked_status(
            verdict, evidence, obs.generation, obs.status.conditions, now, spec.compliance.min_score
        )
    if obs.reevaluation is not None:
        status.reevaluation = obs.reevaluation
    if spec.canary is not None and obs.canary is not None and canary_verdict is not None:
        status.canary = canary_status(spec, obs.canary, canary_verdict, status.phase)
    elif obs.status.canary is not None:
        status.canary = None  # spec.canary removed: the merge patch deletes status.canary
    return Decision(
        status=status,
        events=_events(obs, status, verdict, reconfigure),
        application=desired,
        reconfigure=reconfigure,
        withdrawn=withdrawn,
        became_ready=status.phase == "Ready" and obs.status.phase != "Ready",
    )


TRANSIENT = frozenset({Reason.REEVALUATING, Reason.RETRAINING, Reason.TRAINING_NOT_COMPLETE})


def _canary_args(spec: ModelDeploymentSpec, canary: ModelEvidence | None, verdict: GateVerdict | None
                 ) -> CanaryArgs | None:
    """What the replicas get of a canary that passed its gate (None: every request goes to spec.model)."""
    if spec.canary is None or canary is None or verdict is None or not verdict.passed:
        return None
    if not canary.uri or not canary.sha256:
        return None
    return CanaryArgs(model_uri=canary.uri, model_sha256=canary.sha256, traffic_percent=spec.canary.traffic_percent)


def canary_status(spec: ModelDeploymentSpec, evidence: ModelEvidence, verdict: GateVerdict, phase: Phase | None
                  ) -> CanaryStatus:
    """The canary answers its share once it passed its gate and the deployment is Ready with it."""
    assert spec.canary is not None
    percent = spec.canary.traffic_percent
    state: Literal["Pending", "Serving", "Blocked"]
    if not verdict.passed:
        state = "Pending" if verdict.reason in TRANSIENT else "Blocked"
        message = verdict.message
    elif phase == "Ready":
        state, message = "Serving", f"answers {percent}% of the requests; {verdict.message}"
    elif phase == "Blocked":
        state, message = "Pending", f"passed its gate ({verdict.message}); spec.model is not served"
    else:
        state, message = "Pending", f"passed its gate ({verdict.message}); the deployment is {phase or 'Pending'}"
    return CanaryStatus(
        phase=state,
        traffic_percent=percent if state == "Serving" else 0,
        model=_model(evidence),
        compliance=_compliance(verdict, spec.compliance.min_score),
        message=message[:1024],
    )


def _withdrawn_route(name: str, spec: ModelDeploymentSpec, evidence: ModelEvidence, verdict: GateVerdict
                     ) -> WithdrawnRoute:
    retry = spec.queue.retry_after_seconds if verdict.reason in TRANSIENT else None
    return WithdrawnRoute(application=name, prefix=route_prefix(spec, evidence.component), reason=verdict.reason,
                          message=verdict.message[:1024], retry_after_seconds=retry)


def rollout_status(obs: Observation, evidence: ModelEvidence, app: ServeApplication | None, now: str
                   ) -> RolloutStatus | None:
    """The replacement of a served model by ``evidence``'s (None: nothing to report or change).

    Progressing from the reconcile that puts a Ready deployment's new model into Serve, Complete once Serve
    reports the application RUNNING with it (old replicas stop only after new ones are healthy, with
    ``spec.rollout.maxSurgePercent`` > 0)."""
    before, served = obs.status.rollout, obs.status.model.sha256 if obs.status.model else None
    running = app is not None and app.status == "RUNNING"
    if before is not None and before.phase == "Progressing" and before.to_sha256 == evidence.sha256:
        return before.model_copy(update={"phase": "Complete", "completed_at": now}) if running else None
    if obs.status.phase in ("Ready", "Deploying") and served and evidence.sha256 and served != evidence.sha256:
        return RolloutStatus(from_sha256=served, to_sha256=evidence.sha256, phase="Progressing", started_at=now)
    return None


def _while_reevaluating(verdict: GateVerdict, run: ReevaluationStatus | None) -> GateVerdict:
    """A model judged under an older Constitution while its re-evaluation runs (or after it failed to run)."""
    if verdict.passed or verdict.reason != Reason.CONSTITUTION_CHANGED or run is None:
        return verdict
    if run.phase == "Running":
        message = (f"re-evaluating the model under constitution {run.constitution_hash} (Ray job "
                   f"{run.submission_id}); not served until it passes the gate")
        return replace(verdict, reason=Reason.REEVALUATING, message=message)
    if run.phase == "Failed":
        return replace(verdict, reason=Reason.REEVALUATION_FAILED, message=run.message or "re-evaluation failed")
    return verdict


def _events(obs: Observation, new: ModelDeploymentStatus, verdict: GateVerdict, reconfigure: bool) -> list[Event]:
    out: list[Event] = []
    if reconfigure and not verdict.passed:
        out.append(Event.warning(verdict.reason, f"Serve application withdrawn: {verdict.message}"))
    elif reconfigure:
        out.append(Event.normal(Reason.DEPLOYING, f"Serve application {obs.app_name} configured"))
    out += _canary_events(obs.status.canary, new.canary)
    run, before = obs.reevaluation, obs.status.reevaluation
    if run is not None and run.phase == "Complete" and (before is None or before.phase != "Complete"
                                                      or before.constitution_hash != run.constitution_hash):
        out.append(Event.normal(Reason.REEVALUATED, run.message or f"re-evaluated under {run.constitution_hash}"))
    old_phase, old_reason = obs.status.phase, obs.status.compliance.reason if obs.status.compliance else None
    if new.phase == old_phase and not (new.phase == "Blocked" and old_reason != verdict.reason):
        return out
    if new.phase == "Blocked" and verdict.reason in (Reason.REEVALUATING, Reason.RETRAINING):
        out.append(Event.normal(verdict.reason, verdict.message))
    elif new.phase == "Blocked":
        out.append(Event.warning(verdict.reason, verdict.message))
    elif new.phase == "Ready":
        out.append(Event.normal(Reason.READY, f"serving at {new.url}"))
    elif new.phase == "Failed":
        ready = find(new.conditions, ConditionType.READY)
        if ready is not None:
            out.append(Event.warning(Reason(ready.reason), ready.message))
    return out


def _canary_events(before: CanaryStatus | None, after: CanaryStatus | None) -> list[Event]:
    """An event when the canary starts serving, changes its share, or is blocked (for another reason)."""
    if after is None or after.phase == "Pending" or _canary_state(before) == _canary_state(after):
        return []
    digest = (after.model.sha256 or "")[:12] if after.model else ""
    if after.phase == "Serving":
        return [Event.normal(Reason.CANARY_SERVING, f"canary {digest} answers {after.traffic_percent}% of the "
                             "requests")]
    return [Event.warning(Reason.CANARY_BLOCKED, f"canary {digest} not served: {after.message}")]


def _canary_state(canary: CanaryStatus | None) -> tuple[str | None, int | None, str | None, str | None] | None:
    if canary is None:
        return None
    return (canary.phase, canary.traffic_percent, canary.model.sha256 if canary.model else None,
            canary.compliance.reason if canary.compliance else None)
