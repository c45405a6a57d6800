"""A replica loads only what its keys verify, serves a re-evaluated model under the new hash, and re-checks
the bytes on storage in its health check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acgs_workloads import signing
from acgs_workloads.constitution import ConstitutionEvaluator
from acgs_workloads.contract import (
    ComplianceReport,
    ConstitutionSnapshot,
    EvaluationRecord,
    GateResult,
    TrainingMetrics,
)
from acgs_workloads.serving.errors import ModelLoadError
from acgs_workloads.serving.model import ServedModel
from acgs_workloads.serving.service import ModelService
from acgs_workloads.storage import evaluation_uri, write_bytes
from tests.unit.workloads.serving.conftest import make_args

pytestmark = pytest.mark.unit


def test_the_replica_verifies_before_loading_and_in_every_health_check(
    artifact_writer, constitution: ConstitutionSnapshot  # type: ignore[no-untyped-def]
) -> None:
    private, public = signing.generate_key_pair()
    artifact = artifact_writer("signed", 0, constitution.hash)
    with pytest.raises(ModelLoadError, match=r"refusing to serve: .* has no signature"):
        ServedModel("constitutional-ai").load(artifact.uri, verification_keys=[public.decode()])
    signed = signing.sign_model(artifact.uri, private)
    model = ServedModel("constitutional-ai").load(artifact.uri, verification_keys=[public.decode()])
    assert model.lineage is not None and model.lineage.signature_sha256 == signed.sha256
    assert model.lineage.model_sha256 == artifact.artifact.sha256
    model.verify([public.decode()])
    _, foreign = signing.generate_key_pair()
    with pytest.raises(ModelLoadError, match="Key mismatch"):
        ServedModel("constitutional-ai").load(artifact.uri, verification_keys=[foreign.decode()])
    metadata = artifact.root / "models" / "signed" / "metadata.json"
    original = metadata.read_bytes()
    metadata.write_bytes(original.replace(b'"component"', b'"component" ', 1))
    try:
        with pytest.raises(ModelLoadError, match=r"files changed since signing: metadata\.json"):
            model.verify([public.decode()])  # the health check of a replica that already loaded it
    finally:
        metadata.write_bytes(original)


def test_a_reevaluation_record_lets_the_replica_serve_under_the_new_hash(
    artifact_writer, constitution: ConstitutionSnapshot, evaluator: ConstitutionEvaluator  # type: ignore[no-untyped-def]
) -> None:
    artifact = artifact_writer("reevaluated", 0, "0" * 16)  # trained under another constitution
    args = make_args(artifact, constitution)
    with pytest.raises(ModelLoadError, match="retrain or re-evaluate"):
        ModelService.from_args(args)
    record = EvaluationRecord(
        constitution_hash=constitution.hash, model_sha256=artifact.artifact.sha256,
        metrics=TrainingMetrics(accuracy=0.9),
        compliance=ComplianceReport(constitution_hash=constitution.hash, score=0.95, threshold=0.9, passed=True,
                                    evaluated_examples=10),
        gates=GateResult(passed=True), evaluated_at=datetime.now(UTC).isoformat(),
    )
    write_bytes(evaluation_uri(artifact.uri, constitution.hash), record.json_bytes())
    service = ModelService.from_args(args)
    assert service.model.trained_constitution_hash == constitution.hash
    assert service.metadata()["model"]["reevaluation"]["compliance"]["score"] == 0.95
