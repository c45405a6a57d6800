"""Constitution hash aliases on the model routes (DESIGN §5): a request naming the served hash or a declared
alias (the Constitution's ``spec.hashAliases``) is served, and answered with the served hash plus the hash it
matched; any other hash is 409 and the body names the served hash and its aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from acgs_workloads.constitution import ConstitutionEvaluator
from acgs_workloads.contract import ConstitutionSnapshot
from acgs_workloads.serving.api import HASH_HEADER, create_model_api
from acgs_workloads.serving.errors import ConstitutionHashMismatch
from acgs_workloads.serving.service import ModelService
from tests.unit.workloads.serving.conftest import Artifact, make_service

pytestmark = pytest.mark.unit

DOCUMENTED = "cdd01ef066bc6cf2"  # what existing clients send (DESIGN §5); the default constitution declares it
OTHER_ALIAS = "00112233aabbccdd"
UNKNOWN = "0123456789abcdef"
REQUEST = {"scenario": "finance", "user_request": "transfer funds"}


def with_aliases(constitution: ConstitutionSnapshot, *aliases: str) -> ConstitutionSnapshot:
    return constitution.model_copy(update={"hash_aliases": list(aliases)})


@pytest.fixture
def aliased(approve_always: Artifact, constitution: ConstitutionSnapshot,
            evaluator: ConstitutionEvaluator) -> ModelService:
    return make_service(approve_always, with_aliases(constitution, DOCUMENTED, OTHER_ALIAS), evaluator)


@pytest.fixture
def client(aliased: ModelService) -> Iterator[TestClient]:
    with TestClient(create_model_api(aliased)) as c:
        yield c


def predict(client: TestClient, constitutional_hash: str) -> Any:
    return client.post("/predict", json={**REQUEST, "constitutional_hash": constitutional_hash})


def test_the_default_constitution_declares_the_documented_hash(constitution: ConstitutionSnapshot) -> None:
    assert constitution.hash_aliases == [DOCUMENTED] and constitution.hash != DOCUMENTED


def test_the_current_hash_is_served(client: TestClient, constitution: ConstitutionSnapshot,
                                   approve_always: Artifact) -> None:
    r = predict(client, constitution.hash)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["constitutional_hash"] == data["matched_hash"] == constitution.hash
    assert data["model_sha256"] == approve_always.artifact.sha256, "every answer names the weights that gave it"
    assert r.headers[HASH_HEADER] == constitution.hash


@pytest.mark.parametrize("alias", [DOCUMENTED, OTHER_ALIAS])
def test_an_alias_is_served_and_answered_with_the_current_hash(client: TestClient, constitution: ConstitutionSnapshot,
                                                               alias: str) -> None:
    r = predict(client, alias)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["constitutional_hash"] == constitution.hash, "every answer carries the current hash"
    assert data["matched_hash"] == alias
    assert data["decision"] in {"approve", "approve_with_safeguards", "escalate", "deny"}
    assert r.headers[HASH_HEADER] == constitution.hash


def test_an_unknown_hash_is_409_naming_the_hash_and_its_aliases(client: TestClient, aliased: ModelService,
                                                                constitution: ConstitutionSnapshot) -> None:
    r = predict(client, UNKNOWN)
    assert r.status_code == 409
    data = r.json()
    assert data["constitutional_hash"] == data["served_hash"] == constitution.hash
    assert data["requested_hash"] == UNKNOWN and data["hash_aliases"] == [DOCUMENTED, OTHER_ALIAS]
    assert constitution.hash in data["detail"] and DOCUMENTED in data["detail"] and OTHER_ALIAS in data["detail"]
    assert aliased.metrics.snapshot()["refusals"] == {"constitution_mismatch": 1}


def test_a_removed_alias_is_409(approve_always: Artifact, constitution: ConstitutionSnapshot,
                                evaluator: ConstitutionEvaluator) -> None:
    """The Constitution's aliases edited down to none: the re-applied app refuses the old alias."""
    service = make_service(approve_always, with_aliases(constitution), evaluator)
    with TestClient(create_model_api(service)) as c:
        assert predict(c, constitution.hash).status_code == 200
        r = predict(c, DOCUMENTED)
    assert r.status_code == 409
    assert r.json()["hash_aliases"] == [] and r.json()["served_hash"] == constitution.hash


def test_the_batched_path_accepts_an_alias(aliased: ModelService, constitution: ConstitutionSnapshot) -> None:
    """Under Serve the request reaches ``predict_batch`` through ``@serve.batch``: the model checks it again."""
    async def batcher(request: Any) -> Any:
        return aliased.predict_batch([request])[0]

    aliased.batcher = batcher
    with TestClient(create_model_api(aliased)) as c:
        r = predict(c, DOCUMENTED)
    assert r.status_code == 200, r.text
    assert r.json()["constitutional_hash"] == constitution.hash and r.json()["matched_hash"] == DOCUMENTED


def test_the_model_alone_refuses_an_alias_it_was_not_given(aliased: ModelService) -> None:
    request = {**REQUEST, "constitutional_hash": DOCUMENTED}
    with pytest.raises(ConstitutionHashMismatch) as refused:
        aliased.model.predict_batch([request])
    assert refused.value.aliases == []
    prediction = aliased.model.predict_batch([request], aliases=[DOCUMENTED])[0]
    assert prediction.response is not None
    assert prediction.row()["constitutional_hash"] == aliased.constitution_hash


def test_metadata_and_health_list_the_aliases(client: TestClient, constitution: ConstitutionSnapshot) -> None:
    meta = client.get("/metadata").json()
    assert meta["constitution"]["hash"] == constitution.hash
    assert meta["constitution"]["hashAliases"] == [DOCUMENTED, OTHER_ALIAS]
    assert client.get("/health").json()["hashAliases"] == [DOCUMENTED, OTHER_ALIAS]


def test_openapi_documents_the_matched_hash_and_the_aliases(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "matched_hash" in schemas["ServedConstitutionalResponse"]["properties"]
    assert "hash_aliases" in schemas["HashMismatchBody"]["properties"]
