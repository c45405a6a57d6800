"""spec.canary in a replica: both models loaded and checked, the stride split, the digest of who answered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from acgs_workloads.contract import ConstitutionSnapshot
from acgs_workloads.serving.errors import ModelLoadError
from acgs_workloads.serving.service import CANARY, MODEL_SHA256, PRIMARY, canary_picks

pytestmark = pytest.mark.unit

BODY = {"scenario": "healthcare", "user_request": "Summarise the clinic's opening hours for a patient",
        "context": {"user_role": "employee", "data_type": "public"}}


@pytest.mark.parametrize("percent", [0, 1, 7, 20, 50, 99, 100])
def test_every_hundred_consecutive_requests_send_exactly_the_percent_to_the_canary(percent: int) -> None:
    picks = canary_picks(0, 1000, percent)
    for start in range(0, 901, 37):
        assert sum(picks[start:start + 100]) == percent
    assert canary_picks(250, 100, percent) == picks[250:350], "the stride continues where the last batch ended"


def test_twenty_percent_is_spread_evenly_not_in_runs() -> None:
    picks = canary_picks(0, 100, 20)
    assert [i for i, p in enumerate(picks) if p] == [4, 9, 14, 19, 24, 29, 34, 39, 44, 49, 54, 59, 64, 69, 74, 79,
                                                     84, 89, 94, 99]


def canary_args(artifact: Any, percent: int) -> dict[str, Any]:
    return {"canary": {"modelUri": artifact.uri, "modelSha256": artifact.artifact.sha256, "trafficPercent": percent}}


def test_a_replica_answers_the_canary_share_with_the_canarys_digest(
        service_factory, artifact_writer, constitution: ConstitutionSnapshot) -> None:  # type: ignore[no-untyped-def]
    primary = artifact_writer("primary-approve", 0, constitution.hash)
    canary = artifact_writer("canary-escalate", 1, constitution.hash)
    service = service_factory(primary, **canary_args(canary, 20))
    request = service.request_model.model_validate({**BODY, "constitutional_hash": constitution.hash})

    async def answer_all() -> list[dict[str, Any]]:
        rows = []
        for size in (1, 3, 8, 8, 5, 25, 50):  # batches of every size, as @serve.batch forms them
            rows += service.predict_batch([request] * size)
        rows += [await service.predict(request) for _ in range(100)]
        return rows

    rows = asyncio.run(answer_all())
    assert len(rows) == 200
    digests = [row[MODEL_SHA256] for row in rows]
    assert digests.count(canary.artifact.sha256) == 40 and digests.count(primary.artifact.sha256) == 160
    decisions = {row[MODEL_SHA256]: row["decision"] for row in rows}
    assert decisions[primary.artifact.sha256] != decisions[canary.artifact.sha256], "each model gave its own answer"
    counted = service.metrics.snapshot()["models"]
    assert counted == {PRIMARY: 160, CANARY: 40}
    assert service.health()["canary"]["sha256"] == canary.artifact.sha256
    assert service.metadata()["canary"]["trafficPercent"] == 20


def test_zero_percent_keeps_every_request_on_the_primary(
        service_factory, artifact_writer, constitution: ConstitutionSnapshot) -> None:  # type: ignore[no-untyped-def]
    primary = artifact_writer("primary-zero", 0, constitution.hash)
    canary = artifact_writer("canary-zero", 1, constitution.hash)
    service = service_factory(primary, **canary_args(canary, 0))
    request = service.request_model.model_validate({**BODY, "constitutional_hash": constitution.hash})
    rows = service.predict_batch([request] * 30)
    assert {row[MODEL_SHA256] for row in rows} == {primary.artifact.sha256}


def test_a_canary_of_another_component_or_constitution_is_refused_at_load(
        service_factory, artifact_writer, constitution: ConstitutionSnapshot) -> None:  # type: ignore[no-untyped-def]
    primary = artifact_writer("primary-ok", 0, constitution.hash)
    other = artifact_writer("canary-pg", 0, constitution.hash, component="policy-governance")
    with pytest.raises(ModelLoadError, match="holds a 'policy-governance' model"):
        service_factory(primary, **canary_args(other, 10))
    stale = artifact_writer("canary-stale", 0, "1" * 16)
    with pytest.raises(ModelLoadError, match="evaluated under constitution 1111111111111111"):
        service_factory(primary, **canary_args(stale, 10))
