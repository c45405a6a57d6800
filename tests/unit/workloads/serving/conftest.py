"""Fixtures of the serving unit tests: real artifacts written with acgs_workloads.artifacts, no Ray.

``approve_always`` is a constitutional-ai model whose head always answers ``approve`` (zero weights, a large
bias): a deliberately non-compliant model that makes the runtime guard's work visible and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from acgs_workloads.artifacts import save_artifact
from acgs_workloads.components import get
from acgs_workloads.constitution import SERVING_CACHE_SIZE, ConstitutionEvaluator, default_constitution
from acgs_workloads.contract import (
    ComplianceReport,
    ConstitutionSnapshot,
    ModelAppArgs,
    ModelArtifact,
    ModelSpec,
    TrainingMetrics,
)
from acgs_workloads.serving.auth import key_sha256
from acgs_workloads.serving.model import ServedModel
from acgs_workloads.serving.service import ModelService

SPEC = ModelSpec(hidden_size=16, layers=1)
API_KEY = "s3cret-key-\u00e9"


@dataclass(frozen=True)
class Artifact:
    root: Path
    uri: str  # model directory
    artifact: ModelArtifact


def biased_model(component: str, favourite: int) -> dict[str, torch.Tensor]:
    """Weights of ``component`` (an MLP head called ``out``) whose head always prefers class ``favourite``."""
    comp = get(component)
    classes = len(comp.classes)
    model = comp.build_model(SPEC)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if "decide.4.weight" in state:  # text components whose decision is read from the facts
        state["body.out.weight"] = torch.zeros_like(state["body.out.weight"])
        state["body.out.bias"] = torch.zeros_like(state["body.out.bias"])  # every fact at its default (silent)
        head, width = "decide.4", classes
    elif "body.out.weight" in state:  # text components with a head of classes + facts
        head, width = "body.out", classes + comp.fact_width
    else:
        head, width = "out", classes
    state[f"{head}.weight"] = torch.zeros_like(state[f"{head}.weight"])
    bias = torch.zeros(width)  # the facts read (if any) are all at their defaults
    bias[favourite] = 10.0
    state[f"{head}.bias"] = bias
    return state


def write_artifact(root: Path, name: str, state: dict[str, torch.Tensor], constitution_hash: str,
                   component: str = "constitutional-ai") -> Artifact:
    art = save_artifact(
        str(root), name, state, component=component, config={"model": SPEC.wire()},
        constitution_hash=constitution_hash, dataset_digest="sha256:" + "0" * 64,
        metrics=TrainingMetrics(accuracy=0.5, f1=0.4),
        compliance=ComplianceReport(constitution_hash=constitution_hash, score=0.93, threshold=0.9, passed=True,
                                    evaluated_examples=100),
    )
    return Artifact(root=root, uri=str(root / "models" / name), artifact=art)


@pytest.fixture(scope="session")
def constitution() -> ConstitutionSnapshot:
    return default_constitution()


@pytest.fixture(scope="session")
def approve_always(tmp_path_factory: pytest.TempPathFactory, constitution: ConstitutionSnapshot) -> Artifact:
    return write_artifact(tmp_path_factory.mktemp("artifacts"), "approve-always", biased_model("constitutional-ai", 0),
                          constitution.hash)


@pytest.fixture(scope="session")
def artifact_writer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``write(name, favourite_class, constitution_hash, component) -> Artifact``."""
    root = tmp_path_factory.mktemp("more-artifacts")

    def write(name: str, favourite: int, constitution_hash: str, component: str = "constitutional-ai") -> Artifact:
        return write_artifact(root, name, biased_model(component, favourite), constitution_hash, component)
    return write


@pytest.fixture(scope="session")
def evaluator(constitution: ConstitutionSnapshot) -> ConstitutionEvaluator:
    """The runtime guard's evaluator, as a model server builds it (with the decision cache)."""
    return ConstitutionEvaluator(constitution, cache_size=SERVING_CACHE_SIZE)


def make_args(artifact: Artifact, constitution: ConstitutionSnapshot, **overrides: Any) -> ModelAppArgs:
    wire: dict[str, Any] = {
        "deployment": "team-a/cai",
        "component": "constitutional-ai",
        "modelUri": artifact.uri,
        "modelSha256": artifact.artifact.sha256,
        "constitution": constitution.wire(),
        "runtimeGuard": True,
        "maxBodyBytes": 16384,
    }
    wire.update(overrides)
    return ModelAppArgs.model_validate(wire)


def make_service(artifact: Artifact, constitution: ConstitutionSnapshot, evaluator: ConstitutionEvaluator | None,
                 **overrides: Any) -> ModelService:
    args = make_args(artifact, constitution, **overrides)
    model = ServedModel(args.component).load(args.model_uri, args.model_sha256)
    canary = (ServedModel(args.component).load(args.canary.model_uri, args.canary.model_sha256)
              if args.canary is not None else None)
    return ModelService(args, model, evaluator if args.runtime_guard else None, canary=canary)


@pytest.fixture
def service_factory(constitution: ConstitutionSnapshot, evaluator: ConstitutionEvaluator):  # type: ignore[no-untyped-def]
    """``factory(artifact, **wire_overrides) -> ModelService``."""
    def factory(artifact: Artifact, **overrides: Any) -> ModelService:
        return make_service(artifact, constitution, evaluator, **overrides)
    return factory


@pytest.fixture
def service(approve_always: Artifact, constitution: ConstitutionSnapshot,
            evaluator: ConstitutionEvaluator) -> ModelService:
    return make_service(approve_always, constitution, evaluator)


@pytest.fixture
def secured_service(approve_always: Artifact, constitution: ConstitutionSnapshot,
                    evaluator: ConstitutionEvaluator) -> ModelService:
    return make_service(approve_always, constitution, evaluator, apiKeySha256=key_sha256(API_KEY))
