"""The operator's contract end to end: a Serve REST config (PUT /api/serve/applications/) with
``import_path: acgs_workloads.serving.app:build_app``, replicas and actor options per ``ModelServer``;
a wrong artifact digest fails its application. (Killing one of two replicas under load is reliability case 5,
tests/reliability/test_serve_replica_kill.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from acgs_workloads.contract import ConstitutionSnapshot

from .conftest import ServeEnv, Trained, app_args

pytestmark = pytest.mark.integration

GOOD, BAD, AUTO = "cfg-good", "cfg-bad", "cfg-auto"


def application(name: str, prefix: str, args: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "route_prefix": prefix, "import_path": "acgs_workloads.serving.app:build_app",
            "args": args, "deployments": [{"name": "ModelServer", **deployment}]}


def serve_status(dashboard: str) -> dict[str, Any]:
    r = httpx.get(f"{dashboard}/api/serve/applications/", timeout=30)
    r.raise_for_status()
    return dict(r.json().get("applications", {}))


def wait_status(dashboard: str, wanted: dict[str, str], timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    apps: dict[str, Any] = {}
    while time.monotonic() < deadline:
        apps = serve_status(dashboard)
        if all(apps.get(n, {}).get("status") == s for n, s in wanted.items()):
            return apps
        time.sleep(1.0)
    raise AssertionError(f"applications never reached {wanted}: "
                         f"{ {n: (a.get('status'), a.get('message', '')[-300:]) for n, a in apps.items()} }")


@pytest.fixture(scope="module")
def configured(serve_env: ServeEnv, ray_head: Any, trained: Callable[[str], Trained],
               constitution: ConstitutionSnapshot) -> Iterator[dict[str, Any]]:
    model = trained("constitutional-ai")
    good = app_args(model, constitution, "good")
    bad = app_args(model, constitution, "bad", modelSha256="0" * 64)
    config = {"applications": [
        application(GOOD, "/constitutional-ai", good,
                    {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 0}}),
        application(BAD, "/bad-digest", bad, {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.5}}),
        application(AUTO, "/autoscaled", app_args(model, constitution, "auto", batching={"maxBatchSize": 4}),
                    {"autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2},
                     "ray_actor_options": {"num_cpus": 0.25, "num_gpus": 0}}),
        {"name": "acgs-platform", "route_prefix": "/",
         "import_path": "acgs_workloads.serving.platform:build_platform", "args": {}},
    ]}
    dashboard = ray_head.dashboard_url
    r = httpx.put(f"{dashboard}/api/serve/applications/", json=config, timeout=60)
    assert r.status_code == 200, r.text
    apps = wait_status(dashboard, {GOOD: "RUNNING", BAD: "DEPLOY_FAILED", AUTO: "RUNNING",
                                   "acgs-platform": "RUNNING"})
    try:
        yield {"apps": apps, "dashboard": dashboard, "model": model}
    finally:
        httpx.delete(f"{dashboard}/api/serve/applications/", timeout=60)


def test_config_deploys_the_model_with_replicas(configured: dict[str, Any], http: httpx.Client,
                                               constitution: ConstitutionSnapshot) -> None:
    deployment = configured["apps"][GOOD]["deployments"]["ModelServer"]
    assert [r["state"] for r in deployment["replicas"]] == ["RUNNING", "RUNNING"], deployment.keys()
    assert deployment["deployment_config"]["ray_actor_options"]["num_cpus"] == 0.5
    r = http.post("/constitutional-ai/predict", json={"constitutional_hash": constitution.hash})
    assert r.status_code == 200 and r.json()["constitutional_hash"] == constitution.hash


def test_autoscaling_config_is_applied(configured: dict[str, Any], http: httpx.Client,
                                       constitution: ConstitutionSnapshot) -> None:
    deployment = configured["apps"][AUTO]["deployments"]["ModelServer"]
    autoscaling = deployment["deployment_config"]["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
    assert autoscaling["target_ongoing_requests"] == 2
    r = http.post("/autoscaled/predict", json={"constitutional_hash": constitution.hash})
    assert r.status_code == 200, r.text
    assert http.get("/autoscaled/metadata").json()["batching"] == {"maxBatchSize": 4, "batchWaitTimeoutMs": 2.0}


def test_wrong_digest_fails_the_application_with_a_clear_message(configured: dict[str, Any],
                                                                  http: httpx.Client) -> None:
    app = configured["apps"][BAD]
    message = app["message"] + " ".join(d.get("message", "") for d in app["deployments"].values())
    assert "ArtifactDigestMismatch" in message or "refusing to load" in message, message[-2000:]
    assert configured["model"].sha256 in message and "0" * 64 in message
    assert http.post("/bad-digest/predict", json={}).status_code in (404, 503)
    health = http.get("/health")
    assert health.status_code == 503
    assert health.json()["applications"][BAD]["status"] == "DEPLOY_FAILED"
    models = {m["application"]: m for m in http.get("/models").json()["models"]}
    assert models[BAD]["status"] == "DEPLOY_FAILED" and "sha256" in models[BAD]["message"]
    assert models[GOOD]["model"]["sha256"] == configured["model"].sha256
