"""The platform routes (/health, /models, /metrics) over a fake source of Serve status and metrics."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from acgs_workloads.serving.metrics import ReplicaMetrics, Snapshot
from acgs_workloads.serving.platform_api import create_platform_api, model_apps, summarize_status

pytestmark = pytest.mark.unit


def app_status(status: str, ingress: str = "ModelServer", message: str = "") -> dict[str, Any]:
    return {"status": status, "message": message, "last_deployed_time_s": 1.0,
            "deployments": {ingress: {"status": "HEALTHY" if status == "RUNNING" else "UNHEALTHY",
                                      "status_trigger": "CONFIG_UPDATE_COMPLETED",
                                      "replica_states": {"RUNNING": 2}, "message": message}}}


class FakeSource:
    def __init__(self, apps: dict[str, Any], snapshots: dict[str, list[Snapshot]] | None = None) -> None:
        self.apps = apps
        self._snapshots = snapshots or {}

    async def status(self, fresh: bool = False) -> dict[str, Any]:
        return {"applications": self.apps}

    async def model_metadata(self, app: str) -> dict[str, Any]:
        if app == "ns-broken":
            raise TimeoutError("no answer")
        return {"deployment": app.replace("-", "/", 1), "constitution": {"hash": "cd5ebfe6b284d24b"},
                "model": {"sha256": "a" * 64}}

    async def snapshots(self) -> dict[str, list[Snapshot]]:
        return self._snapshots


def test_summarize_status() -> None:
    summary = summarize_status({"applications": {"ns-cai": app_status("RUNNING"),
                                                 "acgs-platform": app_status("RUNNING", "Platform")}})
    assert summary["status"] == "healthy"
    assert summary["applications"]["ns-cai"]["deployments"]["ModelServer"]["replicaStates"] == {"RUNNING": 2}
    assert model_apps(summary) == ["ns-cai"]


def test_health_is_503_when_an_app_failed() -> None:
    apps = {"ns-cai": app_status("RUNNING"),
            "ns-bad": app_status("DEPLOY_FAILED", message="artifact x has sha256 y, expected z")}
    with TestClient(create_platform_api(FakeSource(apps))) as c:
        r = c.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert "expected z" in r.json()["applications"]["ns-bad"]["message"]


def test_health_ok() -> None:
    with TestClient(create_platform_api(FakeSource({"ns-cai": app_status("RUNNING")}))) as c:
        assert c.get("/health").status_code == 200


def test_models_lists_model_apps_with_digests() -> None:
    apps = {"ns-cai": app_status("RUNNING"), "ns-broken": app_status("RUNNING"),
            "ns-bad": app_status("DEPLOY_FAILED", message="boom"), "acgs-platform": app_status("RUNNING", "Platform")}
    with TestClient(create_platform_api(FakeSource(apps))) as c:
        models = {m["application"]: m for m in c.get("/models").json()["models"]}
    assert set(models) == {"ns-cai", "ns-broken", "ns-bad"}
    assert models["ns-cai"]["constitution"]["hash"] == "cd5ebfe6b284d24b"
    assert models["ns-cai"]["model"]["sha256"] == "a" * 64
    assert models["ns-broken"]["error"].startswith("TimeoutError")
    assert models["ns-bad"] == {"application": "ns-bad", "status": "DEPLOY_FAILED",
                                "message": "boom\nModelServer: boom"}


def test_metrics_exposition() -> None:
    m = ReplicaMetrics()
    m.observe_request("/predict", 200, 0.002)
    m.override(["fairness"])
    source = FakeSource({"ns-cai": app_status("RUNNING")}, {"ns-cai": [m.snapshot(), m.snapshot()]})
    with TestClient(create_platform_api(source)) as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["acgs_serve_requests"].samples[0].value == 2
    assert families["acgs_serve_guard_overrides"].samples[0].labels == {"app": "ns-cai", "principle": "fairness"}


def test_a_withdrawn_route_says_why_with_503_and_other_unknown_routes_are_404() -> None:
    from acgs_workloads.contract import WithdrawnRoute

    withdrawn = [
        WithdrawnRoute(application="ns-cai", prefix="/constitutional-ai", reason="Reevaluating",
                       message="re-evaluating the model under constitution 1111111111111111", retry_after_seconds=2),
        WithdrawnRoute(application="ns-pg", prefix="/policy-governance", reason="SignatureInvalid",
                       message="model has no signature"),
    ]
    client = TestClient(create_platform_api(FakeSource({}), withdrawn))
    answer = client.post("/constitutional-ai/predict", json={"user_request": "x"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["reason"] == "Reevaluating" and "1111111111111111" in answer.json()["detail"]
    blocked = client.get("/policy-governance/health")
    assert blocked.status_code == 503 and "retry-after" not in blocked.headers
    assert blocked.json()["reason"] == "SignatureInvalid"
    assert client.post("/constitutional-ai-other/predict").status_code == 404, "a prefix matches whole segments"
    assert client.get("/nothing").status_code == 404
    assert client.get("/health").status_code == 200, "the platform's own routes come first"


def test_health_never_answers_503_from_state_that_may_be_stale() -> None:
    class StaleThenFresh(FakeSource):
        async def status(self, fresh: bool = False) -> dict[str, Any]:
            if fresh:  # the application became RUNNING since the background task last looked
                return {"applications": {"ns-cai": app_status("RUNNING")}}
            return {"applications": {"ns-cai": app_status("DEPLOYING")}}

    client = TestClient(create_platform_api(StaleThenFresh({})))
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["applications"]["ns-cai"]["status"] == "RUNNING"
    still = TestClient(create_platform_api(FakeSource({"ns-cai": app_status("DEPLOY_FAILED")})))
    assert still.get("/health").status_code == 503, "a fresh look that is still unhealthy is 503"


def test_models_does_not_list_an_application_as_deploying_from_state_that_may_be_stale() -> None:
    class StaleThenFresh(FakeSource):
        async def status(self, fresh: bool = False) -> dict[str, Any]:
            return {"applications": {"ns-cai": app_status("RUNNING" if fresh else "DEPLOYING")}}

    models = TestClient(create_platform_api(StaleThenFresh({}))).get("/models").json()["models"]
    assert models[0]["status"] == "RUNNING" and models[0]["model"]["sha256"] == "a" * 64
