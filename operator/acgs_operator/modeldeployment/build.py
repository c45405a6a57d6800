"""ModelDeployment as pure functions: the compliance gate, the Serve application config, the status.

The Serve REST API replaces the whole config, so ``compose`` rebuilds the full application list from
what is deployed now, changing only this deployment's application (and the platform application).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec
from acgs_operator.conditions import Condition, set_condition
from acgs_operator.rayclient import ServeApplication
from acgs_operator.reasons import ConditionType, Reason
from acgs_workloads.contract import (
    INGRESS_DEPLOYMENT,
    MODEL_APP_IMPORT,
    PLATFORM_APP,
    PLATFORM_APP_IMPORT,
    ArtifactMetadata,
    Component,
    ConstitutionSnapshot,
    ModelAppArgs,
)


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


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: Reason
    message: str
    score: float | None = None
    constitution_hash: str | None = None


def evidence_from_training_job(entry: Mapping[str, Any] | None, namespace: str, name: str) -> ModelEvidence:
    ref = f"{namespace}/{name}"
    if entry is None:
        return ModelEvidence(
            None, None, None, None, None, ref, complete=False, not_ready=f"TrainingJob {ref} not found"
        )
    spec, status = entry.get("spec") or {}, entry.get("status") or {}
    complete = any(c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or [])
    fresh = status.get("observedGeneration") == entry.get("generation")
    model, compliance = status.get("model") or {}, status.get("compliance") or {}
    return ModelEvidence(
        component=spec.get("component"),
        uri=model.get("uri"),
        sha256=model.get("sha256"),
        constitution_hash=compliance.get("constitutionHash"),
        score=compliance.get("score"),
        training_job=ref,
        complete=complete and fresh,
        not_ready="" if complete and fresh else f"TrainingJob {ref} is {status.get('phase') or 'Pending'}",
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
    return GateVerdict(
        True, Reason.COMPLIANCE_PASSED, f"compliance {score:.4f} >= {minimum} under {hash_}", score, hash_
    )


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
) -> dict[str, Any]:
    """The Serve REST config of one ModelDeployment's application (ServeApplicationSchema)."""
    deployment: dict[str, Any] = {
        "name": INGRESS_DEPLOYMENT,
        "ray_actor_options": {"num_cpus": spec.resources.cpus, "num_gpus": spec.resources.gpus},
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
    )
    return {
        "name": app_name(namespace, name),
        "route_prefix": route_prefix(spec, evidence.component),
        "import_path": MODEL_APP_IMPORT,
        "args": args.wire(),
        "deployments": [deployment],
    }


def platform_application() -> dict[str, Any]:
    return {"name": PLATFORM_APP, "route_prefix": "/", "import_path": PLATFORM_APP_IMPORT, "args": {}}


def compose(
    current: Mapping[str, ServeApplication], name: str, desired: dict[str, Any] | None, keep_platform: bool = False
) -> list[dict[str, Any]]:
    """The full Serve config: every declaratively deployed application kept, ``name`` set to ``desired``
    (or removed when None), and the platform application present when a model app is, or when
    ``keep_platform`` (a withdrawn deployment still exists: its route should answer 404, not vanish)."""
    apps = [
        app.config for key, app in sorted(current.items()) if app.config is not None and key not in (name, PLATFORM_APP)
    ]
    if desired is not None:
        apps.append(desired)
    model_apps = [a for a in apps if a.get("import_path") == MODEL_APP_IMPORT]
    if model_apps or keep_platform:
        apps.append(platform_application())
    return apps


def needs_update(current: Mapping[str, ServeApplication], name: str, desired: dict[str, Any] | None) -> bool:
    app = current.get(name)
    if desired is None:
        return app is not None
    platform_missing = PLATFORM_APP not in current
    return app is None or app.config != desired or platform_missing


def serve_url(configured: str, dashboard_url: str, port: int = 8000) -> str:
    if configured:
        return configured.rstrip("/")
    host = urlsplit(dashboard_url).hostname or "127.0.0.1"
    return f"http://{host}:{port}"


def routes(prefix: str) -> list[str]:
    base = prefix.rstrip("/")
    return [f"{base}/predict", f"{base}/health", f"{base}/metadata"]


def blocked_status(
    verdict: GateVerdict,
    evidence: ModelEvidence,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    min_score: float,
) -> dict[str, Any]:
    conds = set_condition(
        conditions, ConditionType.COMPLIANCE_PASSED, False, verdict.reason, verdict.message, generation, now
    )
    conds = set_condition(
        conds, ConditionType.READY, False, verdict.reason, "not served: " + verdict.message, generation, now
    )
    return {
        "phase": "Blocked",
        "observedGeneration": generation,
        "conditions": conds,
        "url": None,
        "routes": [],
        "model": _model(evidence),
        "compliance": _compliance(verdict, min_score),
        "replicas": {"desired": 0, "ready": 0},
    }


def serving_status(
    app: ServeApplication | None,
    verdict: GateVerdict,
    evidence: ModelEvidence,
    spec: ModelDeploymentSpec,
    generation: int,
    conditions: Sequence[Condition] | None,
    now: str,
    base_url: str,
) -> dict[str, Any]:
    """Status of a deployment that passed its gate, from its Serve application's state."""
    conds = set_condition(
        conditions, ConditionType.COMPLIANCE_PASSED, True, verdict.reason, verdict.message, generation, now
    )
    prefix = route_prefix(spec, evidence.component)
    state = app.status if app else "NOT_STARTED"
    ready = state == "RUNNING"
    if state in ("DEPLOY_FAILED", "UNHEALTHY"):
        reason = Reason.ARTIFACT_DIGEST_MISMATCH if "sha256" in (app.message if app else "") else Reason.DEPLOY_FAILED
        phase, message = "Failed", f"Serve application {state}: {app.message if app else ''}"
    elif ready:
        reason, phase, message = Reason.READY, "Ready", f"serving at {base_url}{prefix}"
    else:
        reason, phase, message = Reason.DEPLOYING, "Deploying", f"Serve application {state}"
    conds = set_condition(conds, ConditionType.READY, ready, reason, message, generation, now)
    desired = spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas if spec.replicas is not None else 1
    return {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": conds,
        "url": f"{base_url}{prefix}" if ready else None,
        "routes": routes(prefix) if ready else [],
        "model": _model(evidence),
        "compliance": _compliance(verdict, spec.compliance.min_score),
        "replicas": {
            "desired": app.replicas_target if app and app.replicas_target else desired,
            "ready": app.replicas_running if app else 0,
        },
    }


def _model(evidence: ModelEvidence) -> dict[str, Any]:
    return {"uri": evidence.uri, "sha256": evidence.sha256, "trainingJob": evidence.training_job}


def _compliance(verdict: GateVerdict, min_score: float) -> dict[str, Any]:
    return {
        "constitutionHash": verdict.constitution_hash,
        "score": verdict.score,
        "gate": min_score,
        "reason": verdict.reason.value,
    }
