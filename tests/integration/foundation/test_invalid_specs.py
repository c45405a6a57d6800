"""Bad specs are refused by the API server at apply time (OpenAPI schema + CEL), naming the field."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[3]
TJ = {"component": "constitutional-ai", "constitutionRef": {"name": "default"}}
MD = {"model": {"trainingJobRef": {"name": "tj"}}, "constitutionRef": {"name": "default"}}
SHA = "a" * 64


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) and key in out else value
    return out


# (id, kind, spec, text the API server's message must contain: the field and what is wrong)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "unknown-component",
        "TrainingJob",
        merge(TJ, {"component": "gpt-9"}),
        'spec.component: Unsupported value: "gpt-9"',
    ),
    ("negative-epochs", "TrainingJob", merge(TJ, {"training": {"epochs": -1}}), "spec.training.epochs"),
    ("negative-gpus", "TrainingJob", merge(TJ, {"resources": {"gpusPerWorker": -1}}), "spec.resources.gpusPerWorker"),
    (
        "compliance-above-one",
        "TrainingJob",
        merge(TJ, {"evaluation": {"gates": {"minCompliance": 1.5}}}),
        "spec.evaluation.gates.minCompliance",
    ),
    ("zero-learning-rate", "TrainingJob", merge(TJ, {"training": {"learningRate": 0}}), "spec.training.learningRate"),
    (
        "bad-scheduler",
        "TrainingJob",
        merge(TJ, {"training": {"scheduler": {"type": "step"}}}),
        "spec.training.scheduler.type",
    ),
    (
        "bad-precision",
        "TrainingJob",
        merge(TJ, {"training": {"mixedPrecision": "fp8"}}),
        "spec.training.mixedPrecision",
    ),
    (
        "fp16-on-cpu",
        "TrainingJob",
        merge(TJ, {"training": {"mixedPrecision": "fp16"}}),
        "spec.training.mixedPrecision: Invalid value",
    ),
    (
        "generator-and-uri",
        "TrainingJob",
        merge(TJ, {"dataset": {"generator": {"examples": 100}, "uri": "/d.jsonl"}}),
        "exactly one of dataset.generator and dataset.uri",
    ),
    ("zero-workers", "TrainingJob", merge(TJ, {"resources": {"workers": 0}}), "spec.resources.workers"),
    ("missing-constitution-ref", "TrainingJob", {"component": "constitutional-ai"}, "spec.constitutionRef: Required"),
    (
        "heads-do-not-divide",
        "TrainingJob",
        merge(TJ, {"model": {"hiddenSize": 30, "heads": 4}}),
        "model.hiddenSize must be a multiple of model.heads",
    ),
    (
        "checkpoint-beyond-epochs",
        "TrainingJob",
        merge(TJ, {"training": {"epochs": 2}, "faultTolerance": {"checkpointEvery": 5}}),
        "spec.faultTolerance.checkpointEvery",
    ),
    ("unknown-field", "TrainingJob", merge(TJ, {"training": {"epochz": 3}}), 'unknown field "spec.training.epochz"'),
    (
        "both-ref-and-uri",
        "ModelDeployment",
        merge(MD, {"model": {"uri": "file:///a", "sha256": SHA}}),
        "exactly one of model.trainingJobRef and model.uri",
    ),
    ("uri-without-sha", "ModelDeployment", {**MD, "model": {"uri": "file:///a"}}, "spec.model.sha256"),
    ("bad-sha", "ModelDeployment", {**MD, "model": {"uri": "file:///a", "sha256": "xyz"}}, "spec.model.sha256"),
    ("min-score-above-one", "ModelDeployment", merge(MD, {"compliance": {"minScore": 2}}), "spec.compliance.minScore"),
    (
        "replicas-and-autoscaling",
        "ModelDeployment",
        merge(MD, {"replicas": 2, "autoscaling": {"maxReplicas": 3}}),
        "set either replicas or autoscaling",
    ),
    (
        "autoscaling-min-above-max",
        "ModelDeployment",
        merge(MD, {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
        "autoscaling.minReplicas must be <= maxReplicas",
    ),
    ("reserved-route", "ModelDeployment", merge(MD, {"routePrefix": "/health"}), "spec.routePrefix"),
    ("bad-route", "ModelDeployment", merge(MD, {"routePrefix": "no-slash"}), "spec.routePrefix"),
    (
        "duplicate-principle",
        "Constitution",
        {"principles": [{"id": "a", "rego": "package a"}, {"id": "a", "rego": "package b"}]},
        "spec.principles[1]: Duplicate value",
    ),
    ("no-principles", "Constitution", {"principles": []}, "spec.principles"),
    (
        "bad-severity",
        "Constitution",
        {"principles": [{"id": "a", "rego": "package a", "severity": "huge"}]},
        "spec.principles[0].severity",
    ),
]


@pytest.mark.parametrize(("case", "kind", "spec", "expected"), CASES, ids=[c[0] for c in CASES])
def test_invalid_spec_is_rejected_at_apply(
    kubectl: Kubectl, namespace: str, case: str, kind: str, spec: dict[str, Any], expected: str
) -> None:
    manifest = yaml.safe_dump(
        {"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": case}, "spec": spec}
    )
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0, f"{case} was accepted"
    assert expected in result.stderr, result.stderr
    assert kubectl.run("get", kind.lower(), case, "-n", namespace, check=False).returncode != 0


def test_the_valid_baseline_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    for kind, spec in (("TrainingJob", merge(TJ, {"suspend": True})), ("ModelDeployment", MD)):
        manifest = yaml.safe_dump(
            {"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": "ok"}, "spec": spec}
        )
        kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest)


SAMPLES = sorted(ROOT.glob("manifests/**/*.yaml"))


@pytest.mark.parametrize("sample", SAMPLES, ids=[str(p.relative_to(ROOT)) for p in SAMPLES])
def test_samples_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str, sample: Path) -> None:
    kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", str(sample))
