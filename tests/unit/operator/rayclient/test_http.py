"""The real Ray client's error mapping, over httpx's mock transport (no Ray needed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from acgs_operator.rayclient import DashboardClient, JobStatus, RayError, RayUnavailable


def client(handler: Any, token: str | None = None) -> DashboardClient:
    return DashboardClient("http://ray:8265/", transport=httpx.MockTransport(handler), token=token)


def test_job_round_trip_and_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"submission_id": json.loads(request.content)["submission_id"]})
        return httpx.Response(
            200, json={"submission_id": "s1", "status": "RUNNING", "metadata": {"a": "b"}, "start_time": 1000}
        )

    async def go() -> None:
        ray = client(handler, token="sekret")
        sid = await ray.submit_job(submission_id="s1", entrypoint="python -m x", runtime_env={}, metadata={})
        info = await ray.get_job(sid)
        assert info is not None and info.status is JobStatus.RUNNING and info.metadata == {"a": "b"}

    asyncio.run(go())
    assert all(r.headers["authorization"] == "Bearer sekret" for r in seen)
    assert seen[0].url.path == "/api/jobs/"


@pytest.mark.parametrize(
    ("code", "error"), [(500, RayUnavailable), (503, RayUnavailable), (400, RayError), (401, RayError)]
)
def test_status_codes_map_to_domain_errors(code: int, error: type[Exception]) -> None:
    ray = client(lambda request: httpx.Response(code, text="nope"))
    with pytest.raises(error) as info:
        asyncio.run(ray.put_serve_applications([{"name": "a"}]))
    if code == 401:
        assert "ACGS_RAY_AUTH_TOKEN_FILE" in str(info.value)
    if code == 400:
        assert not isinstance(info.value, RayUnavailable)


def test_unreachable_is_ray_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RayUnavailable, match="unreachable"):
        asyncio.run(client(handler).list_jobs())


def test_missing_job_is_none_and_serve_state_is_parsed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/jobs/"):
            return httpx.Response(404, text="not found")
        return httpx.Response(
            200,
            json={
                "applications": {
                    "ns-md": {
                        "status": "RUNNING",
                        "route_prefix": "/x",
                        "message": "",
                        "deployed_app_config": {"name": "ns-md"},
                        "deployments": {
                            "ModelServer": {
                                "target_num_replicas": 2,
                                "replicas": [{"state": "RUNNING"}, {"state": "STARTING"}],
                            }
                        },
                    }
                }
            },
        )

    async def go() -> None:
        ray = client(handler)
        assert await ray.get_job("nope") is None
        assert await ray.job_logs("nope") == ""
        apps = await ray.serve_applications()
        app = apps["ns-md"]
        assert app.status == "RUNNING" and app.config == {"name": "ns-md"}
        assert (app.replicas_running, app.replicas_target) == (1, 2)

    asyncio.run(go())
