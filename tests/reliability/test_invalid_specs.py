"""Case 6: a catalogue of invalid specs of the three kinds, each refused by the real API server at apply time.

Every row patches a valid base spec of its kind (``None`` removes a key) and names the field path and a
fragment of the message the API server must answer with (OpenAPI schema or ``x-kubernetes-validations``
CEL rule, both generated from the pydantic models in ``acgs_operator.api.v1alpha1``). Each spec goes
through ``kubectl apply --dry-run=server``: the whole admission chain runs, nothing is stored.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
CASE = "6"
TITLE = "invalid specs rejected at apply time, field named"
GOAL = ">= 30 specs, all rejected with the field named"
SHA = "a" * 64
PRINCIPLE = {"id": "privacy", "severity": "critical", "rego": "package acgs.privacy\n"}
BASES: dict[str, dict[str, Any]] = {
    "TrainingJob": {"component": "constitutional-ai", "constitutionRef": {"name": "default"}, "suspend": True},
    "ModelDeployment": {"model": {"trainingJobRef": {"name": "cai"}}, "constitutionRef": {"name": "default"}},
    "Constitution": {"principles": [PRINCIPLE]},
}


@dataclass(frozen=True)
class Invalid:
    id: str
    kind: str
    patch: dict[str, Any]
    field: str  # the field path the API server's message must name
    message: str  # what it must say is wrong


def patched(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in (a JSON merge patch: nested dicts merge, ``None`` removes the key)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = patched(out[key], value)
        else:
            out[key] = value
    return out


TJ, MD, CST = "TrainingJob", "ModelDeployment", "Constitution"
CATALOGUE: tuple[Invalid, ...] = (
    # TrainingJob: enums, required fields, types, bounds, formats, CEL cross-field rules, unknown fields
    Invalid("tj-unknown-component", TJ, {"component": "gpt-9"}, "spec.component", 'Unsupported value: "gpt-9"'),
    Invalid("tj-missing-component", TJ, {"component": None}, "spec.component", "Required value"),
    Invalid("tj-missing-constitution-ref", TJ, {"constitutionRef": None}, "spec.constitutionRef", "Required value"),
    Invalid("tj-constitution-ref-not-dns", TJ, {"constitutionRef": {"name": "Bad_Name"}}, "spec.constitutionRef.name",
            "should match"),
    Invalid("tj-negative-epochs", TJ, {"training": {"epochs": -1}}, "spec.training.epochs",
            "should be greater than or equal to 1"),
    Invalid("tj-epochs-not-integer", TJ, {"training": {"epochs": "three"}}, "spec.training.epochs",
            'must be of type integer'),
    Invalid("tj-zero-learning-rate", TJ, {"training": {"learningRate": 0}}, "spec.training.learningRate",
            "should be greater than 0"),
    Invalid("tj-unknown-scheduler", TJ, {"training": {"scheduler": {"type": "step"}}}, "spec.training.scheduler.type",
            'Unsupported value: "step"'),
    Invalid("tj-unknown-precision", TJ, {"training": {"mixedPrecision": "fp8"}}, "spec.training.mixedPrecision",
            'Unsupported value: "fp8"'),
    Invalid("tj-fp16-without-gpus", TJ, {"training": {"mixedPrecision": "fp16"}}, "spec.training.mixedPrecision",
            "fp16 needs resources.gpusPerWorker > 0"),
    Invalid("tj-negative-gpus", TJ, {"resources": {"gpusPerWorker": -1}}, "spec.resources.gpusPerWorker",
            "should be greater than or equal to 0"),
    Invalid("tj-zero-workers", TJ, {"resources": {"workers": 0}}, "spec.resources.workers",
            "should be greater than or equal to 1"),
    Invalid("tj-generator-and-uri", TJ, {"dataset": {"generator": {"examples": 100}, "uri": "/d.jsonl"}},
            "spec.dataset", "exactly one of dataset.generator and dataset.uri"),
    Invalid("tj-no-dataset-source", TJ, {"dataset": {}}, "spec.dataset",
            "exactly one of dataset.generator and dataset.uri"),
    Invalid("tj-too-few-examples", TJ, {"dataset": {"generator": {"examples": 5}}}, "spec.dataset.generator.examples",
            "should be greater than or equal to 16"),
    Invalid("tj-dataset-uri-not-jsonl-or-parquet", TJ, {"dataset": {"uri": "/data/train.csv"}}, "spec.dataset.uri",
            "should match"),
    Invalid("tj-heads-do-not-divide", TJ, {"model": {"hiddenSize": 30, "heads": 4}}, "spec.model",
            "model.hiddenSize must be a multiple of model.heads"),
    Invalid("tj-dropout-one", TJ, {"model": {"dropout": 1.0}}, "spec.model.dropout", "should be less than 1"),
    Invalid("tj-checkpoint-beyond-epochs", TJ, {"training": {"epochs": 2}, "faultTolerance": {"checkpointEvery": 5}},
            "spec.faultTolerance.checkpointEvery", "must not exceed training.epochs"),
    Invalid("tj-compliance-gate-above-one", TJ, {"evaluation": {"gates": {"minCompliance": 1.5}}},
            "spec.evaluation.gates.minCompliance", "should be less than or equal to 1"),
    Invalid("tj-test-fraction-too-large", TJ, {"evaluation": {"testFraction": 0.9}}, "spec.evaluation.testFraction",
            "should be less than or equal to 0.5"),
    Invalid("tj-unknown-field", TJ, {"training": {"epochz": 3}}, "spec.training.epochz", "unknown field"),
    Invalid("tj-suspend-not-boolean", TJ, {"suspend": "yes"}, "spec.suspend", "must be of type boolean"),
    Invalid("tj-ray-address-not-http", TJ, {"rayCluster": {"address": "ftp://ray:8265"}}, "spec.rayCluster.address",
            "should match"),
    Invalid("tj-zero-deadline", TJ, {"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds",
            "should be greater than or equal to 1"),
    # ModelDeployment
    Invalid("md-missing-model", MD, {"model": None}, "spec.model", "Required value"),
    Invalid("md-ref-and-uri", MD, {"model": {"uri": "file:///a", "sha256": SHA}}, "spec.model",
            "exactly one of model.trainingJobRef and model.uri"),
    Invalid("md-neither-ref-nor-uri", MD, {"model": {"trainingJobRef": None}}, "spec.model",
            "exactly one of model.trainingJobRef and model.uri"),
    Invalid("md-uri-without-sha256", MD, {"model": {"trainingJobRef": None, "uri": "file:///a"}}, "spec.model.sha256",
            "model.sha256 is required with model.uri"),
    Invalid("md-sha256-not-hex", MD, {"model": {"trainingJobRef": None, "uri": "file:///a", "sha256": "xyz"}},
            "spec.model.sha256", "should match"),
    Invalid("md-sha256-uppercase", MD, {"model": {"trainingJobRef": None, "uri": "file:///a", "sha256": "A" * 64}},
            "spec.model.sha256", "should match"),
    Invalid("md-min-score-above-one", MD, {"compliance": {"minScore": 2}}, "spec.compliance.minScore",
            "should be less than or equal to 1"),
    Invalid("md-replicas-and-autoscaling", MD, {"replicas": 2, "autoscaling": {"maxReplicas": 3}}, "spec.replicas",
            "set either replicas or autoscaling, not both"),
    Invalid("md-autoscaling-min-above-max", MD, {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "spec.autoscaling", "autoscaling.minReplicas must be <= maxReplicas"),
    Invalid("md-autoscaling-zero-target", MD, {"autoscaling": {"targetOngoingRequests": 0}},
            "spec.autoscaling.targetOngoingRequests", "should be greater than 0"),
    Invalid("md-negative-replicas", MD, {"replicas": -1}, "spec.replicas", "should be greater than or equal to 0"),
    Invalid("md-retrain-a-uri-model", MD,
            {"model": {"trainingJobRef": None, "uri": "file:///a", "sha256": SHA}, "onConstitutionChange": "retrain"},
            "spec.onConstitutionChange", "onConstitutionChange retrain needs model.trainingJobRef"),
    Invalid("md-canary-same-model", MD,
            {"canary": {"model": {"trainingJobRef": {"name": "cai"}}, "trafficPercent": 10}}, "spec.canary.model",
            "canary.model must name another model than model"),
    Invalid("md-canary-over-100", MD,
            {"canary": {"model": {"trainingJobRef": {"name": "b"}}, "trafficPercent": 101}},
            "spec.canary.trafficPercent", "should be less than or equal to 100"),
    Invalid("md-canary-uri-unpinned", MD, {"canary": {"model": {"uri": "file:///b"}, "trafficPercent": 10}},
            "spec.canary.model.sha256", "model.sha256 is required with model.uri"),
    Invalid("md-unknown-on-change", MD, {"onConstitutionChange": "ignore"}, "spec.onConstitutionChange",
            "Unsupported value"),
    Invalid("md-unknown-verification-policy", MD, {"verification": {"policy": "Sometimes"}},
            "spec.verification.policy", "Unsupported value"),
    Invalid("tj-retrained-for-not-a-hash", TJ, {"retrainedFor": "abc"}, "spec.retrainedFor", "should match"),
    Invalid("md-reserved-route", MD, {"routePrefix": "/health"}, "spec.routePrefix", "reserved for the platform"),
    Invalid("md-route-without-slash", MD, {"routePrefix": "no-slash"}, "spec.routePrefix", "should match"),
    Invalid("md-route-trailing-slash", MD, {"routePrefix": "/cai/"}, "spec.routePrefix", "should match"),
    Invalid("md-zero-batch", MD, {"batching": {"maxBatchSize": 0}}, "spec.batching.maxBatchSize",
            "should be greater than or equal to 1"),
    Invalid("md-unbounded-queue", MD, {"queue": {"maxQueuedRequests": -1}}, "spec.queue.maxQueuedRequests",
            "should be greater than or equal to 1"),
    Invalid("md-zero-ongoing", MD, {"queue": {"maxOngoingRequests": 0}}, "spec.queue.maxOngoingRequests",
            "should be greater than or equal to 1"),
    Invalid("md-ongoing-below-batch", MD, {"queue": {"maxOngoingRequests": 4}, "batching": {"maxBatchSize": 8}},
            "spec.queue.maxOngoingRequests", "must be >= batching.maxBatchSize"),
    Invalid("md-ongoing-below-target", MD, {"queue": {"maxOngoingRequests": 2},
                                            "autoscaling": {"targetOngoingRequests": 5}},
            "spec.queue.maxOngoingRequests", "must be >= autoscaling.targetOngoingRequests"),
    Invalid("md-secret-ref-without-key", MD, {"auth": {"apiKeySecretRef": {"name": "api-key"}}},
            "spec.auth.apiKeySecretRef.key", "Required value"),
    Invalid("md-negative-gpus", MD, {"resources": {"gpus": -0.5}}, "spec.resources.gpus",
            "should be greater than or equal to 0"),
    # Constitution
    Invalid("cst-missing-principles", CST, {"principles": None}, "spec.principles", "Required value"),
    Invalid("cst-no-principles", CST, {"principles": []}, "spec.principles", "should have at least 1 items"),
    Invalid("cst-duplicate-principle-id", CST, {"principles": [PRINCIPLE, {**PRINCIPLE, "rego": "package b\n"}]},
            "spec.principles[1]", "Duplicate value"),
    Invalid("cst-unknown-severity", CST, {"principles": [{**PRINCIPLE, "severity": "huge"}]},
            "spec.principles[0].severity", 'Unsupported value: "huge"'),
    Invalid("cst-empty-rego", CST, {"principles": [{**PRINCIPLE, "rego": ""}]}, "spec.principles[0].rego",
            "should be at least 1 chars long"),
    Invalid("cst-missing-rego", CST, {"principles": [{"id": "privacy"}]}, "spec.principles[0].rego", "Required value"),
    Invalid("cst-rego-not-string", CST, {"principles": [{**PRINCIPLE, "rego": 42}]}, "spec.principles[0].rego",
            "must be of type string"),
    Invalid("cst-principle-id-not-dns", CST, {"principles": [{**PRINCIPLE, "id": "Privacy!"}]},
            "spec.principles[0].id", "should match"),
    Invalid("cst-alias-uppercase", CST, {"hashAliases": ["CDD01EF066BC6CF2"]}, "spec.hashAliases[0]",
            "each alias is a constitution hash, 16 lowercase hex characters"),
    Invalid("cst-alias-too-short", CST, {"hashAliases": ["cdd01ef0"]}, "spec.hashAliases[0]",
            "should be at least 16 chars long"),
    Invalid("cst-duplicate-alias", CST, {"hashAliases": ["cdd01ef066bc6cf2"] * 2}, "spec.hashAliases[1]",
            "Duplicate value"),
    Invalid("cst-too-many-aliases", CST, {"hashAliases": [f"{i:016x}" for i in range(17)]}, "spec.hashAliases",
            "must have at most 16 items"),
)

RESULTS: dict[str, tuple[bool, bool]] = {}  # id -> (rejected, field named), filled as the table runs


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def dry_run(kubectl: Kubectl, namespace: str, text: str) -> tuple[int, str]:
    result = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=text, check=False)
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def catalogue_namespace(kubectl: Kubectl) -> Iterator[str]:
    """One namespace for the whole table: dry runs store nothing, so there is nothing to clean but it."""
    name = f"t-invalid-specs-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def record(report: Any) -> None:
    rejected = sum(r for r, _ in RESULTS.values())
    named = sum(r and n for r, n in RESULTS.values())
    kinds = sorted({c.kind for c in CATALOGUE if c.id in RESULTS})
    report.record(CASE, TITLE, goal=GOAL, specs_tried=len(RESULTS), rejected=rejected,
                  rejected_with_field_named=named, kinds=", ".join(kinds))


@pytest.mark.case(CASE)
@pytest.mark.parametrize("kind", sorted(BASES))
def test_the_valid_bases_are_accepted(kubectl: Kubectl, catalogue_namespace: str, kind: str) -> None:
    """Each row differs from an accepted spec by its patch alone, so the patch is what the server refuses."""
    code, stderr = dry_run(kubectl, catalogue_namespace, manifest(kind, "base", BASES[kind]))
    assert code == 0, stderr


@pytest.mark.case(CASE)
@pytest.mark.parametrize("invalid", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_invalid_spec_is_rejected_naming_the_field(
    kubectl: Kubectl, catalogue_namespace: str, reliability_report: Any, invalid: Invalid
) -> None:
    spec = patched(BASES[invalid.kind], invalid.patch)
    code, stderr = dry_run(kubectl, catalogue_namespace, manifest(invalid.kind, invalid.id, spec))
    RESULTS[invalid.id] = (code != 0, code != 0 and invalid.field in stderr and invalid.message in stderr)
    record(reliability_report)
    assert code != 0, f"{invalid.id} was accepted"
    assert invalid.field in stderr, f"the error does not name {invalid.field}: {stderr}"
    assert invalid.message in stderr, f"the error does not say {invalid.message!r}: {stderr}"


# the ACGS resources a user applies (manifests/ also holds the rendered install manifest and a kind config)
SAMPLES = [ROOT / "manifests" / "constitution.yaml", *sorted(ROOT.glob("manifests/samples/**/*.yaml"))]


@pytest.mark.case(CASE)
@pytest.mark.parametrize("sample", SAMPLES, ids=[str(p.relative_to(ROOT)) for p in SAMPLES])
def test_samples_are_accepted_by_the_api_server(kubectl: Kubectl, catalogue_namespace: str, sample: Path) -> None:
    """The other side of the catalogue: every shipped sample passes the same validation."""
    result = kubectl.run("apply", "--dry-run=server", "-n", catalogue_namespace, "-f", str(sample), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.case(CASE)
def test_the_whole_catalogue_was_rejected(reliability_report: Any) -> None:
    """Runs after the table (pytest keeps file order): the case's outcome is the catalogue's, not one row's."""
    if len(RESULTS) < len(CATALOGUE):
        pytest.skip("only part of the catalogue was selected")
    record(reliability_report)
    assert len(CATALOGUE) >= 30
    assert {c.kind for c in CATALOGUE} == set(BASES)
    failed = [i for i, (rejected, named) in RESULTS.items() if not (rejected and named)]
    assert failed == []
