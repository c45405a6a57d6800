"""The pipeline's inputs: the Constitution and the sample TrainingJobs and ModelDeployments, as dicts."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acgs_workloads.contract import COMPONENTS

MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"
SERVED = ("constitutional-ai", "policy-governance", "multi-agent-coordination")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Samples:
    constitution: Manifest
    training_jobs: list[Manifest] = field(default_factory=list)
    deployments: list[Manifest] = field(default_factory=list)

    def copy(self) -> Samples:
        return copy.deepcopy(self)


def _component_order(obj: Manifest) -> int:
    component = (obj.get("spec") or {}).get("component", "")
    return COMPONENTS.index(component) if component in COMPONENTS else len(COMPONENTS)


def parse_documents(texts: list[str]) -> list[Manifest]:
    """Every non-empty YAML document of every text."""
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def split(documents: list[Manifest]) -> Samples:
    """Sort documents by kind (pure); TrainingJobs in component order, exactly one Constitution."""
    by_kind: dict[str, list[Manifest]] = {}
    for doc in documents:
        by_kind.setdefault(str(doc.get("kind")), []).append(doc)
    constitutions = by_kind.get("Constitution", [])
    if len(constitutions) != 1:
        raise ValueError(f"expected exactly one Constitution, found {len(constitutions)}")
    jobs = sorted(by_kind.get("TrainingJob", []), key=_component_order)
    deployments = by_kind.get("ModelDeployment", [])
    names = {j["metadata"]["name"] for j in jobs}
    for md in deployments:
        ref = ((md.get("spec") or {}).get("model") or {}).get("trainingJobRef", {}).get("name")
        if ref and ref not in names:
            name = md["metadata"]["name"]
            raise ValueError(f"ModelDeployment {name} refers to TrainingJob {ref}, which is not in the samples")
    return Samples(constitutions[0], jobs, deployments)


def load(samples_dir: Path = MANIFESTS / "samples", constitution: Path = MANIFESTS / "constitution.yaml") -> Samples:
    """The Constitution file plus every ``trainingjob-*.yaml`` and ``modeldeployment-*.yaml`` in ``samples_dir``."""
    files = [constitution, *sorted(samples_dir.glob("trainingjob-*.yaml")),
             *sorted(samples_dir.glob("modeldeployment-*.yaml"))]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"sample manifests not found: {', '.join(missing)}")
    return split(parse_documents([f.read_text() for f in files]))


def component_of(job: Manifest) -> str:
    return str(job["spec"]["component"])


def deployment_component(md: Manifest, jobs: list[Manifest]) -> str:
    """The component a ModelDeployment serves: its TrainingJob's component."""
    ref = md["spec"]["model"]["trainingJobRef"]["name"]
    return next(component_of(j) for j in jobs if j["metadata"]["name"] == ref)


def route_prefix(md: Manifest, jobs: list[Manifest]) -> str:
    return str(md["spec"].get("routePrefix") or f"/{deployment_component(md, jobs)}")
