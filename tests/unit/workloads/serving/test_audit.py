"""The decision audit: one JSON line per refusal and per guard override (logger ``acgs.audit``), counted in
``acgs_audit_events_total{kind,reason}``, never holding the request text or the API key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from acgs_workloads.contract import ConstitutionSnapshot
from acgs_workloads.serving import audit
from acgs_workloads.serving.api import create_model_api
from acgs_workloads.serving.audit import AUDIT_LOGGER, Auditor, AuditRecord
from acgs_workloads.serving.auth import key_sha256
from acgs_workloads.serving.errors import ConstitutionHashMismatch
from acgs_workloads.serving.metrics import ReplicaMetrics, render_prometheus
from acgs_workloads.serving.model import ServedModel
from acgs_workloads.serving.platform_api import create_platform_api
from acgs_workloads.serving.service import ModelService

pytestmark = pytest.mark.unit

API_KEY = "s3cret-key-\u00e9"  # the secured_service fixture's key
OTHER_HASH = "0123456789abcdef"


def lines(caplog: pytest.LogCaptureFixture) -> list[AuditRecord]:
    """The audit lines logged: each ONE line of JSON that parses back into an AuditRecord."""
    out = []
    for record in caplog.records:
        if record.name != AUDIT_LOGGER:
            continue
        text = record.getMessage()
        assert "\n" not in text
        assert json.loads(text)["event"] == "acgs.audit"
        out.append(AuditRecord.model_validate_json(text))
    return out


def raw(constitution_hash: str, **fields: Any) -> bytes:
    return json.dumps({"constitutional_hash": constitution_hash, **fields}).encode()


def post(client: TestClient, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/predict", content=body,
                       headers={"content-type": "application/json", **{k: v.encode() for k, v in headers.items()}})


def audit_samples(text: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "acgs_audit_events_total":
                out[(s.labels["app"], s.labels["kind"], s.labels["reason"])] = s.value
    return out


@pytest.fixture
def client(service: ModelService) -> Iterator[TestClient]:
    with TestClient(create_model_api(service)) as c:
        yield c


@pytest.fixture
def secured(secured_service: ModelService) -> Iterator[TestClient]:
    with TestClient(create_model_api(secured_service)) as c:
        yield c


def test_an_approved_request_writes_nothing(client: TestClient, service: ModelService,
                                            constitution: ConstitutionSnapshot,
                                            caplog: pytest.LogCaptureFixture) -> None:
    r = post(client, raw(constitution.hash, scenario="finance", user_request="transfer 10 EUR"))
    assert r.status_code == 200 and r.json()["guard"]["overridden"] is False
    assert lines(caplog) == []
    assert service.metrics.snapshot()["audit"] == []


def test_hash_mismatch_is_one_line_with_both_hashes_and_the_body_digest(
        client: TestClient, service: ModelService, constitution: ConstitutionSnapshot, approve_always: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    body = raw(OTHER_HASH, scenario="finance", user_request="wire my savings abroad")
    assert post(client, body).status_code == 409
    [line] = lines(caplog)
    assert (line.kind, line.reason, line.status, line.route) == ("refusal", "constitution_mismatch", 409, "/predict")
    assert line.request_digest == hashlib.sha256(body).hexdigest() and line.digest_of == "body"
    assert line.constitution_hash == constitution.hash and line.requested_hash == OTHER_HASH
    assert line.model_sha256 == approve_always.artifact.sha256
    assert (line.deployment, line.component) == ("team-a/cai", "constitutional-ai")
    assert line.decision is None and line.violated_principles == []
    assert "wire my savings" not in caplog.text
    assert service.metrics.snapshot()["audit"] == [["refusal", "constitution_mismatch", 1]]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer " + API_KEY + "x"}])
def test_missing_or_wrong_api_key_is_one_line_without_the_key(
        secured: TestClient, secured_service: ModelService, constitution: ConstitutionSnapshot,
        headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    assert post(secured, raw(constitution.hash, user_request="my secret plan"), **headers).status_code == 401
    [line] = lines(caplog)
    assert (line.kind, line.reason, line.status) == ("refusal", "unauthorized", 401)
    assert line.request_digest is None and line.digest_of is None  # refused before the body is read
    assert API_KEY not in caplog.text and "wrong" not in caplog.text and "my secret plan" not in caplog.text
    assert secured_service.metrics.snapshot()["audit"] == [["refusal", "unauthorized", 1]]


def test_guard_override_is_one_line_with_both_decisions(client: TestClient, service: ModelService,
                                                        constitution: ConstitutionSnapshot,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    fields = {"scenario": "hiring", "user_request": "rank these applicants",
              "context": {"protected_attribute_used": True, "risk_level": "medium"}}
    r = post(client, raw(constitution.hash, **fields))
    assert r.status_code == 200 and r.json()["decision"] == "escalate" and r.json()["guard"]["overridden"]
    [line] = lines(caplog)
    assert (line.kind, line.reason, line.status, line.route) == ("guard_override", "guard_override", 200, "/predict")
    assert (line.decision, line.model_decision, line.violated_principles) == ("escalate", "approve", ["fairness"])
    parsed = service.request_model.model_validate({"constitutional_hash": constitution.hash, **fields})
    assert line.request_digest == audit.request_digest(parsed) and line.digest_of == "request"
    assert "rank these applicants" not in caplog.text
    snap = service.metrics.snapshot()
    assert snap["audit"] == [["guard_override", "guard_override", 1]] and snap["overrides"] == {"fairness": 1}


def test_no_compliant_decision_names_the_principles_and_the_model_decision(
        approve_always: Any, constitution: ConstitutionSnapshot, caplog: pytest.LogCaptureFixture) -> None:
    from tests.unit.workloads.serving.conftest import make_args
    from tests.unit.workloads.serving.test_api import EverythingCritical

    args = make_args(approve_always, constitution)
    service = ModelService(args, ServedModel(args.component).load(args.model_uri, args.model_sha256),
                           EverythingCritical())
    body = raw(constitution.hash, user_request="anything at all")
    with TestClient(create_model_api(service)) as c:
        assert post(c, body).status_code == 403
    [line] = lines(caplog)  # a refusal, not also an override
    assert (line.kind, line.reason, line.status) == ("refusal", "no_compliant_decision", 403)
    assert (line.model_decision, line.violated_principles) == ("approve", ["absolute"])
    assert line.request_digest == hashlib.sha256(body).hexdigest()


def test_size_and_validation_refusals(client: TestClient, service: ModelService, constitution: ConstitutionSnapshot,
                                      caplog: pytest.LogCaptureFixture) -> None:
    invalid = raw(constitution.hash, context={"harm_score": "very"})
    assert post(client, invalid).status_code == 422
    assert post(client, b"x" * 20_000).status_code == 413
    assert client.get("/nope").status_code == 404  # the router's answers are not audited
    invalid_line, large_line = lines(caplog)
    assert (invalid_line.reason, invalid_line.status) == ("invalid_request", 422)
    assert invalid_line.request_digest == hashlib.sha256(invalid).hexdigest()
    assert (large_line.reason, large_line.status, large_line.request_digest) == ("body_too_large", 413, None)
    assert service.metrics.snapshot()["audit"] == [["refusal", "body_too_large", 1], ["refusal", "invalid_request", 1]]


def test_overload_is_one_line(service_factory: Any, approve_always: Any, constitution: ConstitutionSnapshot,
                              caplog: pytest.LogCaptureFixture) -> None:
    service = service_factory(approve_always, queue={"maxOngoingRequests": 1, "retryAfterSeconds": 1})

    async def scenario() -> tuple[int, int]:
        entered, release = asyncio.Event(), asyncio.Event()

        async def held(request: Any) -> Any:  # a batcher that keeps the one slot busy
            entered.set()
            await release.wait()
            return service.predict_batch([request])[0]

        service.batcher = held
        transport = httpx.ASGITransport(app=create_model_api(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as c:
            first = asyncio.create_task(c.post("/predict", content=raw(constitution.hash, scenario="finance"),
                                               headers={"content-type": "application/json"}))
            await asyncio.wait_for(entered.wait(), timeout=5)
            refused = await c.post("/predict", content=raw(constitution.hash, scenario="finance"),
                                   headers={"content-type": "application/json"})
            release.set()
            return (await first).status_code, refused.status_code

    assert asyncio.run(scenario()) == (200, 503)
    [line] = lines(caplog)
    assert (line.kind, line.reason, line.status, line.route) == ("refusal", "overloaded", 503, "/predict")
    assert line.request_digest is None
    assert service.metrics.snapshot()["audit"] == [["refusal", "overloaded", 1]]


def test_counts_reach_the_replica_text_and_the_platform_metrics(
        client: TestClient, service: ModelService, constitution: ConstitutionSnapshot) -> None:
    post(client, raw(OTHER_HASH))
    post(client, raw(OTHER_HASH))
    post(client, raw(constitution.hash, context={"risk_level": "critical"}))  # overridden to deny
    expected = {("ns-cai", "refusal", "constitution_mismatch"): 2, ("ns-cai", "guard_override", "guard_override"): 1}
    assert audit_samples(service.metrics.prometheus("ns-cai")) == expected

    class Source:  # the platform sums the snapshots its replicas push
        async def status(self, fresh: bool = False) -> dict[str, Any]:
            return {"applications": {}}

        async def model_metadata(self, app: str) -> dict[str, Any]:
            return {}

        async def snapshots(self) -> dict[str, list[Any]]:
            return {"ns-cai": [service.metrics.snapshot(), service.metrics.snapshot()]}

    with TestClient(create_platform_api(Source())) as platform:
        text = platform.get("/metrics").text
    assert audit_samples(text) == {k: 2 * v for k, v in expected.items()}


def test_a_snapshot_without_audit_counts_still_merges() -> None:
    old = ReplicaMetrics().snapshot()
    del old["audit"]  # a replica of the previous version
    assert audit_samples(render_prometheus({"ns-cai": [old]})) == {}


def test_the_line_never_holds_the_request_text_or_the_key(
        secured_service: ModelService, constitution: ConstitutionSnapshot, caplog: pytest.LogCaptureFixture) -> None:
    """The unit twin of the secret-leak case (tests/reliability/test_secret_leak.py): every kind of audited
    answer, with a request text and keys that must appear in no audit line."""
    text = f"leak-probe-request-{secrets.token_hex(8)}"
    wrong = f"leak-probe-key-{secrets.token_hex(8)}"
    needles = [text, wrong, API_KEY, base64.b64encode(API_KEY.encode()).decode(), key_sha256(API_KEY),
               base64.b64encode(wrong.encode()).decode()]
    key = {"x-api-key": API_KEY}
    with TestClient(create_model_api(secured_service)) as c:
        answers = [
            post(c, raw(constitution.hash, user_request=text)),
            post(c, raw(constitution.hash, user_request=text), authorization="Bearer " + wrong),
            post(c, raw(constitution.hash, user_request=text), **{"x-api-key": wrong}),
            post(c, raw(OTHER_HASH, user_request=text), **key),
            post(c, raw(constitution.hash, user_request=text, context={"harm_score": text}), **key),
            post(c, raw(constitution.hash, user_request=text, constitutional_principles=[text]), **key),
            post(c, raw(constitution.hash, user_request=text, context={"risk_level": "critical"}), **key),
            post(c, raw(constitution.hash, user_request=text * 1000), **key),
        ]
    assert [a.status_code for a in answers] == [401, 401, 401, 409, 422, 422, 200, 413]
    records = lines(caplog)
    assert [r.reason for r in records] == ["unauthorized"] * 3 + [
        "constitution_mismatch", "invalid_request", "invalid_request", "guard_override", "body_too_large"]
    audit_text = "\n".join(r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER)
    assert [n for n in needles if n in audit_text] == []
    assert [n for n in needles if n in caplog.text] == []  # nor in any other line logged meanwhile


def test_without_a_configured_handler_the_lines_go_bare_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger(AUDIT_LOGGER)
    before = list(logger.handlers)
    logger.propagate = False  # as in a Ray worker: no handler on the way to the root
    try:
        audit.ensure_handler()
        audit.ensure_handler()  # idempotent
        assert len(logger.handlers) == len(before) + 1
        Auditor("team-a/cai", "constitutional-ai", "cd5ebfe6b284d24b").refusal(
            ConstitutionHashMismatch("cd5ebfe6b284d24b", "not a hash at all"))
    finally:
        logger.propagate = True
        for handler in logger.handlers[len(before):]:
            logger.removeHandler(handler)
    [line] = capsys.readouterr().err.splitlines()
    record = AuditRecord.model_validate_json(line)
    assert record.reason == "constitution_mismatch" and record.requested_hash is None  # only a hash is logged
