"""Shared data of the ModelDeployment tests: a constitution, model evidence, specs, TrainingJob entries."""

from __future__ import annotations

from typing import Any

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus
from acgs_operator.modeldeployment import build as mds
from acgs_operator.rayclient import ServeApplication
from acgs_workloads.contract import ConstitutionSnapshot, Principle

HASH = "cdd01ef066bc6cf2"
SHA = "d" * 64
BASE_URL = "http://127.0.0.1:8000"
CONSTITUTION = ConstitutionSnapshot(name="default", hash=HASH, principles=[Principle(id="p", rego="package p")])
MD_SPEC: dict[str, Any] = {"model": {"trainingJobRef": {"name": "job"}}, "constitutionRef": {"name": "default"}}


def evidence(**changes: Any) -> mds.ModelEvidence:
    base = dict(
        component="constitutional-ai",
        uri="file:///a/model.pt",
        sha256=SHA,
        constitution_hash=HASH,
        score=0.97,
        training_job="ns/job",
    )
    return mds.ModelEvidence(**{**base, **changes})


def spec(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**MD_SPEC, **changes})


def tj_entry(hash_: str = HASH, score: float = 0.97, complete: bool = True, generation: int = 1) -> dict[str, Any]:
    """A trainingjobs index entry as the TrainingJob handlers leave it."""
    return {
        "spec": {"component": "constitutional-ai", "constitutionRef": {"name": "default"}},
        "status": {
            "observedGeneration": 1,
            "phase": "Succeeded" if complete else "Running",
            "conditions": [{"type": "Complete", "status": "True" if complete else "False", "reason": "Succeeded"}],
            "model": {"uri": "file:///a/model.pt", "sha256": SHA, "sizeBytes": 1},
            "compliance": {
                "constitutionHash": hash_,
                "score": score,
                "threshold": 0.9,
                "passed": score >= 0.9,
                "evaluatedExamples": 100,
                "violations": [],
            },
        },
        "generation": generation,
        "uid": "0000",
    }


def observation(
    *,
    md: ModelDeploymentSpec | None = None,
    status: ModelDeploymentStatus | None = None,
    constitution: ConstitutionSnapshot | None = CONSTITUTION,
    ev: mds.ModelEvidence | None = None,
    api_key: mds.ApiKey | None = None,
    applications: dict[str, ServeApplication] | None = None,
    ray_error: str = "",
    generation: int = 1,
    canary: mds.ModelEvidence | None = None,
) -> mds.Observation:
    """What a reconcile of ns/md observed; Ray is unreachable when ``ray_error`` is given."""
    return mds.Observation(
        namespace="ns",
        name="md",
        generation=generation,
        spec=md or spec(),
        status=status or ModelDeploymentStatus(),
        constitution=constitution,
        why_no_constitution="" if constitution else "Constitution default not found",
        evidence=ev or evidence(),
        api_key=api_key or mds.ApiKey(),
        applications=None if ray_error else dict(applications or {}),
        ray_error=ray_error,
        base_url=BASE_URL,
        canary=canary,
    )
