"""Each component trains through the one training loop under Ray Train ``TorchTrainer`` (2 workers) on the
session's real Ray head, then is evaluated and stored as an artifact; the entry point prints the events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch  # noqa: F401  (before the Rego engine, see acgs_workloads.constitution.engine)

from acgs_workloads.artifacts import load_artifact, read_metadata
from acgs_workloads.components import names
from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import ResultEvent, TrainRunConfig, parse_events
from acgs_workloads.serving.model import ServedModel
from acgs_workloads.train import run

pytestmark = pytest.mark.integration

SMALL_MODEL = {"hiddenSize": 16, "layers": 1, "heads": 2, "sequenceLength": 24, "dropout": 0.0}


@pytest.fixture(scope="module")
def ray_session(ray_address: str) -> Iterator[str]:
    import ray

    ray.init(address=ray_address, log_to_driver=False)
    try:
        yield ray_address
    finally:
        ray.shutdown()


def config(root: Path, component: str, *, use_ray: bool = True, examples: int = 320) -> TrainRunConfig:
    return TrainRunConfig.model_validate({
        "runId": f"it-{component}-{'ray' if use_ray else 'local'}",
        "component": component,
        "constitution": default_constitution().wire(),
        "dataset": {"generator": {"examples": examples, "seed": 5}},
        "model": SMALL_MODEL,
        "training": {"epochs": 2, "batchSize": 32, "learningRate": 0.01},
        "resources": {"workers": 2, "cpusPerWorker": 0.5},
        "evaluation": {"testFraction": 0.25, "gates": {"minCompliance": 0.0}},
        "artifactRoot": str(root),
        "useRay": use_ray,
    })


@pytest.mark.parametrize("component", names())
def test_component_trains_under_ray_train(component: str, ray_session: str, tmp_path: Path) -> None:
    cfg = config(tmp_path, component)
    event = run(cfg)
    assert isinstance(event, ResultEvent)
    assert event.compliance.constitution_hash == cfg.constitution.hash
    assert event.compliance.evaluated_examples == 80
    assert 0.0 <= event.metrics.accuracy <= 1.0 and event.metrics.p99_latency_ms > 0  # type: ignore[operator]
    assert event.metrics.samples_per_second and event.metrics.samples_per_second > 0
    loaded = load_artifact(event.model.uri, event.model.sha256)
    meta = read_metadata(event.model.uri).wire()
    assert meta["component"] == component and meta["constitutionHash"] == cfg.constitution.hash
    assert meta["datasetDigest"].startswith("sha256:") and meta["metrics"]["accuracy"] == event.metrics.accuracy
    served = ServedModel(component).load(loaded)
    assert served.health()["status"] == "ok" and served.sha256 == event.model.sha256


def test_entry_point_prints_one_result_event(tmp_path: Path) -> None:
    cfg = config(tmp_path, "constitutional-ai", use_ray=False, examples=200)
    argv = [sys.executable, "-m", "acgs_workloads.train", "--config", cfg.model_dump_json(by_alias=True)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    events = parse_events(proc.stdout)
    results = [e for e in events if isinstance(e, ResultEvent)]
    assert len(results) == 1 and any(e.kind == "progress" for e in events)
    assert "[acgs] evaluated: accuracy" in proc.stdout
    assert Path(results[0].model.uri).is_file()


def test_entry_point_rejects_bad_config(tmp_path: Path) -> None:
    good = json.loads(config(tmp_path, "constitutional-ai", use_ray=False).model_dump_json(by_alias=True))
    cases = {
        "bogus": "neither a JSON object nor a readable file",
        json.dumps({**good, "component": "nope"}): "component",
        json.dumps({**good, "constitution": {**good["constitution"], "hash": "0" * 16}}): "does not match",
        json.dumps({**good, "model": {**SMALL_MODEL, "sequenceLength": 8}, "component": "wina-optimization"}):
            "sequenceLength",
    }
    for arg, message in cases.items():
        proc = subprocess.run([sys.executable, "-m", "acgs_workloads.train", "--config", arg],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2, (arg, proc.stderr)
        assert message in proc.stderr
