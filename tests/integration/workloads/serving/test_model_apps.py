"""Model and platform applications on a real Ray Serve: every route and every error code, over HTTP.

Applications are built exactly as Serve builds them from the operator's config: the ``import_path``
``acgs_workloads.serving.app:build_app`` is imported and called with the wire-form ``args``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acgs_workloads.contract import ConstitutionSnapshot
from acgs_workloads.serving.auth import key_sha256

from .conftest import ServeEnv, Trained, app_args

pytestmark = pytest.mark.integration

API_KEY = "integration-key"
AUTH = {"authorization": f"Bearer {API_KEY}"}
SEED_ROUTES = {
    "constitutional-ai": "/constitutional-ai",
    "policy-governance": "/policy-governance",
    "multi-agent-coordination": "/multi-agent-coordination",
}
BODIES: dict[str, dict[str, Any]] = {
    "constitutional-ai": {"scenario": "healthcare", "user_request": "share the scan with the insurer",
                          "context": {"contains_pii": True, "consent": False, "risk_level": "medium"}},
    "policy-governance": {"policy_type": "data_retention", "framework": "gdpr", "scope": "organization",
                          "context": {"contains_pii": True, "consent": True}},
    "multi-agent-coordination": {},
}


def build(import_path: str, args: dict[str, Any]) -> Any:
    """What Serve does with an application's ``import_path`` and ``args``."""
    from ray._common.utils import import_attr

    return import_attr(import_path)(args)


def deploy(env: ServeEnv, name: str, import_path: str, args: dict[str, Any], route_prefix: str,
           **options: Any) -> None:
    from ray import serve

    app = build(import_path, args)
    if options:
        app = app._bound_deployment.options(**options).bind(*app._bound_deployment.init_args)
    env.apps.append(name)
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False)
    env.wait_running(name)


@pytest.fixture(scope="module")
def deployed(serve_env: ServeEnv, trained: Callable[[str], Trained], constitution: ConstitutionSnapshot
             ) -> dict[str, Trained]:
    models = {}
    for component, prefix in SEED_ROUTES.items():
        model = trained(component)
        extra: dict[str, Any] = {}
        if component == "constitutional-ai":
            extra = {"batching": {"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0}, "apiKeySha256": key_sha256(API_KEY)}
        deploy(serve_env, f"serving-it-{component}", "acgs_workloads.serving.app:build_app",
               app_args(model, constitution, component, **extra), prefix)
        models[component] = model
    deploy(serve_env, "acgs-platform", "acgs_workloads.serving.platform:build_platform", {}, "/")
    return models


def predict_body(constitution: ConstitutionSnapshot, component: str, multi_agent: dict[str, Any]) -> dict[str, Any]:
    body = dict(BODIES[component]) if component != "multi-agent-coordination" else dict(multi_agent)
    body["constitutional_hash"] = constitution.hash
    return body


@pytest.fixture(scope="module")
def multi_agent_body() -> dict[str, Any]:
    """A valid multi-agent-coordination request, taken from the component's own generator."""
    from acgs_workloads.components import get
    from acgs_workloads.contract import ModelSpec

    component = get("multi-agent-coordination")
    cols = component.generate(4, 3, ModelSpec())
    body = component.request_for(cols, 0, "0" * 16)
    body.pop("constitutional_hash", None)
    return body


@pytest.mark.parametrize("component", list(SEED_ROUTES))
def test_seed_routes_predict(deployed: dict[str, Trained], http: httpx.Client, constitution: ConstitutionSnapshot,
                             component: str, multi_agent_body: dict[str, Any]) -> None:
    headers = AUTH if component == "constitutional-ai" else {}
    r = http.post(f"{SEED_ROUTES[component]}/predict", json=predict_body(constitution, component, multi_agent_body),
                  headers=headers)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["constitutional_hash"] == constitution.hash
    assert r.headers["x-acgs-constitution-hash"] == constitution.hash
    assert "guard" in data and data["guard"] is not None


@pytest.mark.parametrize("component", list(SEED_ROUTES))
def test_health_metadata_openapi(deployed: dict[str, Trained], http: httpx.Client,
                                 constitution: ConstitutionSnapshot, component: str) -> None:
    prefix = SEED_ROUTES[component]
    headers = AUTH if component == "constitutional-ai" else {}
    health = http.get(f"{prefix}/health")
    assert health.status_code == 200 and health.json()["sha256"] == deployed[component].sha256
    meta = http.get(f"{prefix}/metadata", headers=headers).json()
    assert meta["component"] == component
    assert meta["constitution"] == {"name": constitution.name, "hash": constitution.hash,
                                    "hashAliases": constitution.hash_aliases,
                                    "principles": meta["constitution"]["principles"]}
    assert constitution.hash_aliases == ["cdd01ef066bc6cf2"]  # the default constitution's alias is served
    assert meta["model"]["sha256"] == deployed[component].sha256
    assert meta["model"]["compliance"]["constitutionHash"] == constitution.hash
    assert meta["model"]["metrics"]["accuracy"] > 0.3
    doc = http.get(f"{prefix}/openapi.json").json()
    assert "/predict" in doc["paths"]
    assert doc.get("servers", [{}])[0].get("url") == prefix  # Serve passes the prefix as root_path


def test_error_codes(deployed: dict[str, Trained], http: httpx.Client, constitution: ConstitutionSnapshot) -> None:
    url = "/constitutional-ai/predict"
    good = {"constitutional_hash": constitution.hash}
    assert http.post(url, json=good).status_code == 401
    assert http.post(url, json=good, headers={"x-api-key": "wrong"}).status_code == 401
    assert http.post(url, json=good, headers={"x-api-key": API_KEY}).status_code == 200
    r = http.post(url, json={"constitutional_hash": "0123456789abcdef"}, headers=AUTH)
    assert r.status_code == 409
    assert r.json()["served_hash"] == constitution.hash and r.json()["requested_hash"] == "0123456789abcdef"
    r = http.post(url, json={**good, "context": {"harm_score": 3}}, headers=AUTH)
    assert r.status_code == 422 and "harm_score" in r.json()["message"]
    r = http.post(url, content=json.dumps({**good, "user_request": "x" * 70_000}), headers=AUTH)
    assert r.status_code == 413
    assert http.get("/constitutional-ai/nope", headers=AUTH).status_code == 404
    assert http.get("/policy-governance/nope").status_code == 404
    assert http.get("/no-such-app/predict").status_code == 404
    for raw in (b"", b"{", b"[1,2", b"\xff\xfe", b'{"constitutional_hash": NaN}', b"1" * 5000):
        r = http.post(url, content=raw, headers={**AUTH, "content-type": "application/json"})
        assert 400 <= r.status_code < 500, (raw[:20], r.status_code, r.text)
    assert http.get("/constitutional-ai/health").status_code == 200  # the replica is still serving


def test_guard_override_over_http(deployed: dict[str, Trained], http: httpx.Client,
                                  constitution: ConstitutionSnapshot) -> None:
    """Whatever the trained model says, a critical-risk request is never served anything but deny."""
    r = http.post("/constitutional-ai/predict", headers=AUTH, json={
        "constitutional_hash": constitution.hash, "context": {"risk_level": "critical", "harm_score": 0.1}})
    assert r.status_code == 200
    data = r.json()
    assert data["decision"] == "deny"
    if data["guard"]["overridden"]:
        assert any(v["principle"] == "safety" for v in data["guard"]["violations"])


def test_batched_answers_equal_single_answers(deployed: dict[str, Trained], serve_env: ServeEnv,
                                              constitution: ConstitutionSnapshot) -> None:
    """64 concurrent distinct requests (batched by @serve.batch) get the same answers as one at a time."""
    bodies = [{"constitutional_hash": constitution.hash, "scenario": s,
               "context": {"risk_level": r, "harm_score": h / 10, "contains_pii": bool(h % 2), "automated": h > 5}}
              for s in ("general", "finance") for r in ("low", "medium", "high", "critical") for h in range(8)]

    async def fire() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=serve_env.base_url, timeout=60.0, headers=AUTH) as client:
            responses = await asyncio.gather(*(client.post("/constitutional-ai/predict", json=b) for b in bodies))
        assert all(r.status_code == 200 for r in responses)
        return [r.json() for r in responses]

    concurrent = asyncio.run(fire())
    with httpx.Client(base_url=serve_env.base_url, timeout=30.0, headers=AUTH) as client:
        sequential = [client.post("/constitutional-ai/predict", json=b).json() for b in bodies]
    assert len(concurrent) == len(sequential)
    for batched, single in zip(concurrent, sequential, strict=True):
        # a batched matmul may differ from a single-row one in the last float bits
        assert batched.pop("compliance_score") == pytest.approx(single.pop("compliance_score"), abs=1e-5)
        assert batched == single


def wait_for_metrics(http: httpx.Client, predicate: Callable[[dict[str, float]], bool], timeout: float = 20.0
                     ) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        r = http.get("/metrics")
        assert r.status_code == 200
        values = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                values[key] = s.value
        if predicate(values):
            return values
        time.sleep(0.5)
    raise AssertionError(f"metrics never satisfied the condition: {values}")


def test_platform_routes(deployed: dict[str, Trained], http: httpx.Client, constitution: ConstitutionSnapshot) -> None:
    health = http.get("/health")
    assert health.status_code == 200, health.text
    apps = health.json()["applications"]
    for component in SEED_ROUTES:
        assert apps[f"serving-it-{component}"]["status"] == "RUNNING"
    models = {m["application"]: m for m in http.get("/models").json()["models"]}
    for component, model in deployed.items():
        entry = models[f"serving-it-{component}"]
        assert entry["model"]["sha256"] == model.sha256
        assert entry["constitution"]["hash"] == constitution.hash
    app = "serving-it-constitutional-ai"
    counters = {  # counter -> how many requests this test adds to it
        f"acgs_serve_requests_total{{app={app},code=200,route=/predict}}": 1,
        f"acgs_serve_request_latency_seconds_count{{app={app},route=/predict}}": 3,
        f"acgs_serve_refusals_total{{app={app},reason=constitution_mismatch}}": 1,
        f"acgs_serve_refusals_total{{app={app},reason=unauthorized}}": 1,
    }
    # this test counts its own requests: earlier tests (or none, when it runs alone) may have sent others
    before = {name: wait_for_metrics(http, lambda v: True).get(name, 0.0) for name in counters}
    ok = http.post("/constitutional-ai/predict", json=predict_body(constitution, "constitutional-ai", {}),
                   headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert http.post("/constitutional-ai/predict", json={"constitutional_hash": "0" * 16},
                     headers=AUTH).status_code == 409
    assert http.post("/constitutional-ai/predict", json={"constitutional_hash": "0" * 16}).status_code == 401
    wait_for_metrics(http, lambda v: all(v.get(name, 0.0) >= before[name] + n for name, n in counters.items()))
