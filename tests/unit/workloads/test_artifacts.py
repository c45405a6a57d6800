from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from acgs_workloads.artifacts import (
    ArtifactDigestMismatch,
    ArtifactError,
    load_artifact,
    read_metadata,
    save_artifact,
    sha256_of,
)
from acgs_workloads.contract import ComplianceReport, ModelArtifact, TrainingMetrics

pytestmark = pytest.mark.unit


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"w": torch.randn(4, 3, generator=gen), "b": torch.arange(3, dtype=torch.float32), "n": torch.tensor(7)}


def _save(root: str, name: str = "run-1") -> ModelArtifact:
    return save_artifact(
        root,
        name,
        _state(),
        component="policy-governance",
        config={"training": {"epochs": 2}},
        constitution_hash="cdd01ef066bc6cf2",
        dataset_digest="d" * 64,
        metrics=TrainingMetrics(accuracy=0.9, loss=0.3),
        compliance=ComplianceReport(
            constitution_hash="cdd01ef066bc6cf2", score=0.95, threshold=0.9, passed=True, evaluated_examples=10
        ),
    )


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_round_trip_with_metadata(tmp_path: Path, scheme: str) -> None:
    artifact = _save(f"{scheme}{tmp_path}")
    assert artifact.uri.startswith(f"{scheme}{tmp_path}/models/run-1/model.")
    local = Path(artifact.uri.removeprefix("file://"))
    data = local.read_bytes()
    assert artifact.sha256 == hashlib.sha256(data).hexdigest() == sha256_of(artifact.uri)
    assert artifact.size_bytes == len(data)
    loaded = load_artifact(artifact.uri, expected_sha256=artifact.sha256)
    for key, tensor in _state().items():
        assert torch.equal(loaded.state_dict[key], tensor)
    meta = loaded.metadata.wire()
    assert meta["component"] == "policy-governance"
    assert meta["constitutionHash"] == "cdd01ef066bc6cf2" and meta["datasetDigest"] == "d" * 64
    assert meta["metrics"] == {"accuracy": 0.9, "loss": 0.3}
    assert meta["compliance"]["passed"] is True and meta["compliance"]["constitutionHash"] == "cdd01ef066bc6cf2"
    assert meta["weights"] == {
        "file": local.name, "sha256": artifact.sha256, "sizeBytes": artifact.size_bytes, "format": local.suffix[1:]
    }
    assert meta["createdAt"].endswith("Z")
    assert json.loads((local.parent / "metadata.json").read_text()) == read_metadata(artifact.uri).wire()
    # the model directory resolves to the same weights
    by_dir = load_artifact(str(local.parent)).artifact
    assert (by_dir.sha256, by_dir.size_bytes, by_dir.uri) == (artifact.sha256, artifact.size_bytes, str(local))


def test_wrong_expected_digest_is_refused_naming_both(tmp_path: Path) -> None:
    artifact = _save(str(tmp_path))
    wrong = "0" * 64
    with pytest.raises(ArtifactDigestMismatch) as info:
        load_artifact(artifact.uri, expected_sha256=wrong)
    assert wrong in str(info.value) and artifact.sha256 in str(info.value)
    assert info.value.expected == wrong and info.value.actual == artifact.sha256


def test_tampered_weights_are_refused_even_without_an_expected_digest(tmp_path: Path) -> None:
    artifact = _save(str(tmp_path))
    path = Path(artifact.uri)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactDigestMismatch, match=artifact.sha256):
        load_artifact(artifact.uri)
    with pytest.raises(ArtifactDigestMismatch):
        load_artifact(artifact.uri, expected_sha256=artifact.sha256)


def test_missing_artifact_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        sha256_of(str(tmp_path / "nope.pt"))
    with pytest.raises(ArtifactError):
        _save(str(tmp_path), name="../escape")


def test_saving_twice_overwrites_with_the_same_digest(tmp_path: Path) -> None:
    assert _save(str(tmp_path)).sha256 == _save(str(tmp_path)).sha256
