"""The model routes through FastAPI's TestClient: guard, hash checks, auth, body limits, bad input, metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from acgs_workloads.artifacts import ArtifactDigestMismatch
from acgs_workloads.contract import ConstitutionSnapshot
from acgs_workloads.serving.api import HASH_HEADER, create_model_api
from acgs_workloads.serving.model import ModelLoadError, ServedModel
from acgs_workloads.serving.service import ModelService

pytestmark = pytest.mark.unit

API_KEY = "s3cret-key-\u00e9"


@pytest.fixture
def client(service: ModelService) -> Iterator[TestClient]:
    with TestClient(create_model_api(service)) as c:
        yield c


@pytest.fixture
def secured(secured_service: ModelService) -> Iterator[TestClient]:
    with TestClient(create_model_api(secured_service)) as c:
        yield c


def body(constitution: ConstitutionSnapshot, **fields: Any) -> dict[str, Any]:
    return {"constitutional_hash": constitution.hash, **fields}


def test_clean_request_is_served_as_the_model_decides(client: TestClient, constitution: ConstitutionSnapshot) -> None:
    r = client.post("/predict", json=body(constitution, scenario="finance", user_request="transfer \u20ac10"))
    assert r.status_code == 200
    data = r.json()
    assert data["decision"] == "approve"
    assert data["constitutional_hash"] == constitution.hash
    assert data["guard"] == {"overridden": False, "original_decision": None, "violations": [], "remaining": []}
    assert r.headers[HASH_HEADER] == constitution.hash


def test_guard_escalates_a_critical_violation(client: TestClient, constitution: ConstitutionSnapshot,
                                              service: ModelService) -> None:
    r = client.post("/predict", json=body(constitution, scenario="hiring",
                                          context={"protected_attribute_used": True, "risk_level": "medium"}))
    assert r.status_code == 200
    data = r.json()
    assert data["decision"] == "escalate"
    assert data["guard"]["overridden"] is True
    assert data["guard"]["original_decision"] == "approve"
    assert {"principle": "fairness", "severity": "critical", "messages": ["approval relies on a protected attribute"]} \
        in data["guard"]["violations"]
    assert data["reasoning"].startswith("escalate")  # the response describes the decision actually served
    assert service.metrics.snapshot()["overrides"] == {"fairness": 1}


def test_guard_denies_when_escalation_is_not_enough(client: TestClient, constitution: ConstitutionSnapshot) -> None:
    r = client.post("/predict", json=body(constitution, context={"risk_level": "critical"}))
    assert r.json()["decision"] == "deny"
    assert r.json()["guard"]["overridden"] is True


def test_runtime_guard_off_serves_the_raw_decision(service_factory, approve_always,  # type: ignore[no-untyped-def]
                                                   constitution: ConstitutionSnapshot) -> None:
    with TestClient(create_model_api(service_factory(approve_always, runtimeGuard=False))) as c:
        r = c.post("/predict", json=body(constitution, context={"risk_level": "critical"}))
    assert r.status_code == 200
    assert r.json()["decision"] == "approve" and r.json()["guard"] is None


def test_constitution_mismatch_is_409_with_both_hashes(client: TestClient, constitution: ConstitutionSnapshot,
                                                        service: ModelService) -> None:
    r = client.post("/predict", json={"constitutional_hash": "0123456789abcdef"})
    assert r.status_code == 409
    data = r.json()
    assert data["served_hash"] == constitution.hash == data["constitutional_hash"]
    assert data["requested_hash"] == "0123456789abcdef"
    assert constitution.hash in data["detail"] and "0123456789abcdef" in data["detail"]
    assert service.metrics.snapshot()["refusals"] == {"constitution_mismatch": 1}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "constitutional_hash"),
        ({"constitutional_hash": "XYZ"}, "constitutional_hash"),
        ({"context": {"harm_score": 5}}, "harm_score"),
        ({"context": {"harm_score": 1e308}}, "harm_score"),
        ({"context": {"harm_score": -1}}, "harm_score"),
        ({"context": {"risk_level": "apocalyptic"}}, "risk_level"),
        ({"context": {"contains_pii": "maybe"}}, "contains_pii"),
        ({"scenario": "\u2603" * 300}, "scenario"),
        ({"user_request": "x" * 9000}, "user_request"),
        ({"unexpected": 1}, "unexpected"),
        ({"principles": "privacy"}, "principles"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client: TestClient, constitution: ConstitutionSnapshot,
                                                 payload: dict[str, Any], field: str) -> None:
    full = {"constitutional_hash": constitution.hash, **payload} if "constitutional_hash" not in payload else payload
    if payload == {}:
        full = {}
    r = client.post("/predict", json=full)
    assert r.status_code == 422, r.text
    data = r.json()
    assert field in data["message"]
    assert any(field in [str(p) for p in item["loc"]] for item in data["detail"])
    assert data["constitutional_hash"] == constitution.hash


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"[]",
        b"null",
        b'"string"',
        b'{"constitutional_hash": NaN}',
        b'{"constitutional_hash": "cd5ebfe6b284d24b", "context": {"harm_score": NaN}}',
        b'{"constitutional_hash": "cd5ebfe6b284d24b", "context": {"harm_score": Infinity}}',
        b'{"constitutional_hash": "cd5ebfe6b284d24b", "context": {"harm_score": 1' + b"0" * 5000 + b"}}",
        b'{"constitutional_hash": "cd5ebfe6b284d24b", "context": ' + b"[" * 500 + b"]" * 500 + b"}",
        b"\xff\xfe\x00garbage",
        ('{"constitutional_hash": "' + "\u00e9" * 16 + '"}').encode(),
    ],
)
def test_malformed_bodies_are_4xx_and_the_replica_keeps_serving(client: TestClient, constitution: ConstitutionSnapshot,
                                                                 raw: bytes) -> None:
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    ok = client.post("/predict", json=body(constitution))
    assert ok.status_code == 200


def test_unicode_request_is_served(client: TestClient, constitution: ConstitutionSnapshot) -> None:
    text = "Bitte pr\u00fcfen \U0001F600 \u4f60\u597d \u202e\u0000"
    r = client.post("/predict", content=json.dumps(body(constitution, user_request=text)).encode("utf-8"),
                    headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_oversized_body_by_content_length_is_413(client: TestClient, constitution: ConstitutionSnapshot,
                                                  service: ModelService) -> None:
    big = json.dumps(body(constitution, user_request="x" * 8000)) * 3  # maxBodyBytes is 16384 in these tests
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "16384" in r.json()["detail"]
    assert service.metrics.snapshot()["refusals"] == {"body_too_large": 1}


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"constitutional_hash": "cd5ebfe6b284d24b", "user_request": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}'

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_body_just_under_the_limit_is_accepted(client: TestClient, constitution: ConstitutionSnapshot) -> None:
    payload = json.dumps(body(constitution, user_request="z" * 8000) | {"context": {"note": "p" * 8000}}).encode()
    assert 16000 < len(payload) <= 16384
    assert client.post("/predict", content=payload, headers={"content-type": "application/json"}).status_code == 200


def test_bad_content_length_is_400(client: TestClient) -> None:
    r = client.post("/predict", content=b"{}", headers={"content-type": "application/json", "content-length": "abc"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"x-api-key": "wrong"}, 401),
        ({"authorization": "Basic " + API_KEY}, 401),
        ({"authorization": "Bearer " + API_KEY}, 200),
        ({"x-api-key": API_KEY}, 200),
    ],
)
def test_api_key(secured: TestClient, constitution: ConstitutionSnapshot, headers: dict[str, str],
                 status: int) -> None:
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    r = secured.post("/predict", json=body(constitution), headers=encoded)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_auth_covers_metadata_but_not_health(secured: TestClient) -> None:
    assert secured.get("/metadata").status_code == 401
    assert secured.get("/metadata", headers={"x-api-key": API_KEY.encode()}).status_code == 200
    assert secured.get("/health").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


def test_auth_is_checked_before_the_body_is_read(secured: TestClient) -> None:
    r = secured.post("/predict", content=b"x" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_unknown_route_and_method(client: TestClient, service: ModelService) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/predict/extra", json={}).status_code == 404
    assert client.get("/predict").status_code == 405
    snap = service.metrics.snapshot()
    assert snap["refusals"] == {"unknown_route": 2, "method_not_allowed": 1}
    assert ["other", 404, 2] in snap["requests"]


def test_health_and_metadata(client: TestClient, constitution: ConstitutionSnapshot, approve_always) -> None:  # type: ignore[no-untyped-def]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["sha256"] == approve_always.artifact.sha256
    meta = client.get("/metadata").json()
    assert meta["deployment"] == "team-a/cai" and meta["component"] == "constitutional-ai"
    assert meta["constitution"]["hash"] == constitution.hash and meta["constitution"]["name"] == "default"
    assert meta["model"]["sha256"] == approve_always.artifact.sha256
    assert meta["model"]["compliance"]["score"] == 0.93 and meta["model"]["metrics"]["accuracy"] == 0.5
    assert meta["classes"] == ["approve", "approve_with_safeguards", "escalate", "deny"]


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    predict = doc["paths"]["/predict"]["post"]
    ref = predict["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ConstitutionalRequest")
    assert {"200", "400", "401", "403", "409", "413", "422", "503"} <= set(predict["responses"])
    assert predict["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/HashMismatchBody")
    served = doc["components"]["schemas"]["ServedConstitutionalResponse"]
    assert {"decision", "constitutional_hash", "guard"} <= set(served["properties"])
    assert {"/health", "/metadata"} <= set(doc["paths"])


def test_request_metrics(client: TestClient, constitution: ConstitutionSnapshot, service: ModelService) -> None:
    client.post("/predict", json=body(constitution))
    client.post("/predict", json={"constitutional_hash": "0" * 16})
    client.post("/predict", json={"constitutional_hash": constitution.hash, "context": {"harm_score": 2}})
    snap = service.metrics.snapshot()
    assert snap["requests"] == [["/predict", 200, 1], ["/predict", 409, 1], ["/predict", 422, 1]]
    assert snap["refusals"] == {"constitution_mismatch": 1, "invalid_request": 1}
    assert snap["decisions"] == {"approve": 1}


def test_artifact_digest_mismatch_refuses_to_load(approve_always) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ArtifactDigestMismatch, match="refusing to load"):
        ServedModel("constitutional-ai").load(approve_always.uri, "0" * 64)


def test_component_mismatch_refuses_to_load(approve_always) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelLoadError, match="holds a 'constitutional-ai' model"):
        ServedModel("policy-governance").load(approve_always.uri, approve_always.artifact.sha256)


def test_model_trained_under_another_constitution_is_refused(artifact_writer, service_factory) -> None:  # type: ignore[no-untyped-def]
    other = artifact_writer("old-constitution", 0, "ffffffffffffffff")
    with pytest.raises(ModelLoadError, match="evaluated under constitution ffffffffffffffff"):
        service_factory(other)


def test_policy_governance_is_served_the_same_way(artifact_writer, service_factory,  # type: ignore[no-untyped-def]
                                                  constitution: ConstitutionSnapshot) -> None:
    art = artifact_writer("pg-approve", 0, constitution.hash, "policy-governance")
    svc = service_factory(art, component="policy-governance")
    with TestClient(create_model_api(svc)) as c:
        r = c.post("/predict", json=body(constitution, policy_type="access_control", framework="gdpr",
                                         context={"protected_attribute_used": True}))
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["governance_decision"]["decision"] == "escalate" and data["compiled"] is True
        assert 'proposed := "escalate"' in data["opa_rule"] and data["module_verdict"] == "escalate"
        assert c.post("/predict", json=body(constitution)).status_code == 422  # policy_type is required


class EverythingCritical:
    """A constitution evaluator under which every decision violates a critical principle."""

    def __init__(self) -> None:
        self.severity = {"absolute": "critical"}

    def evaluate(self, decisions: Any) -> list[dict[str, list[str]]]:
        return [{"absolute": ["nothing is allowed"]} for _ in decisions]


def test_no_compliant_decision_is_403_naming_the_principles(approve_always,  # type: ignore[no-untyped-def]
                                                            constitution: ConstitutionSnapshot) -> None:
    from tests.unit.workloads.serving.conftest import make_args

    args = make_args(approve_always, constitution)
    service = ModelService(args, ServedModel(args.component).load(args.model_uri, args.model_sha256),
                           EverythingCritical())
    with TestClient(create_model_api(service)) as c:
        r = c.post("/predict", json=body(constitution))
    assert r.status_code == 403, r.text
    data = r.json()
    assert data["violations"] == ["absolute"] and "absolute" in data["detail"]
    assert data["constitutional_hash"] == constitution.hash
    assert service.metrics.snapshot()["refusals"] == {"no_compliant_decision": 1}
    assert service.metrics.snapshot()["overrides"] == {"absolute": 1}


def test_error_table_is_the_one_mapping() -> None:
    from acgs_workloads.serving import errors

    codes = [(e.status_code, e.reason) for e in errors.ERRORS]
    assert codes == [(400, "malformed_body"), (401, "unauthorized"), (403, "no_compliant_decision"),
                     (409, "constitution_mismatch"), (413, "body_too_large"), (422, "invalid_request"),
                     (503, "model_not_loaded"), (503, "overloaded")]
    status, content, _ = errors.error_response(errors.ConstitutionHashMismatch("a" * 16, "b" * 16), "a" * 16)
    assert status == 409 and content["served_hash"] == "a" * 16 and content["requested_hash"] == "b" * 16
    assert errors.error_response(errors.Unauthorized(), None)[2][0][0] == b"www-authenticate"


def test_middleware_refusals_carry_the_served_hash(secured: TestClient, constitution: ConstitutionSnapshot) -> None:
    assert secured.post("/predict", json=body(constitution)).json()["constitutional_hash"] == constitution.hash


def test_documented_constitutional_ai_body_is_served_and_unknown_principles_are_named(
        client: TestClient, constitution: ConstitutionSnapshot) -> None:
    documented = {"scenario": "ethical_dilemma", "context": {"user_role": "employee", "data_type": "personal"},
                  "user_request": "Access to customer data for analysis",
                  "constitutional_principles": ["privacy", "transparency", "accountability"],
                  "constitutional_hash": "cdd01ef066bc6cf2"}
    r = client.post("/predict", json=documented)
    assert r.status_code == 200, r.text
    data = r.json()
    assert {"decision", "reasoning", "compliance_score", "constitutional_hash"} <= set(data)
    assert data["constitutional_hash"] == constitution.hash and data["matched_hash"] == "cdd01ef066bc6cf2"
    assert data["facts"]["contains_pii"] is True  # data_type "personal" states it
    r = client.post("/predict", json={**documented, "constitutional_principles": ["privacy", "telepathy"]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "constitutional_principles" and "'telepathy'" in r.json()["message"]
