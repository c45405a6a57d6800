"""The real Ray client: the dashboard's Jobs and Serve REST APIs over HTTP (httpx)."""

from __future__ import annotations

from typing import Any

import httpx

from acgs_operator.rayclient.base import JobInfo, JobStatus, RayError, RayUnavailable, ServeApplication

SUBMIT_TIMEOUT = 90.0


def _job(data: dict[str, Any]) -> JobInfo:
    return JobInfo(
        submission_id=str(data.get("submission_id") or data.get("job_id")),
        status=JobStatus(data["status"]),
        message=data.get("message") or "",
        metadata=dict(data.get("metadata") or {}),
        start_time_ms=data.get("start_time"),
        end_time_ms=data.get("end_time"),
    )


def _application(name: str, data: dict[str, Any]) -> ServeApplication:
    """One application of GET /api/serve/applications/. A failed application's own message is generic
    ("deploying failed"); the cause (e.g. an artifact digest mismatch) is in its deployments' messages."""
    running = target = 0
    messages = [data.get("message") or ""]
    for deployment in (data.get("deployments") or {}).values():
        if deployment.get("status") not in (None, "HEALTHY", "UPDATING") and deployment.get("message"):
            messages.append(str(deployment["message"]))
        replicas = deployment.get("replicas") or []
        running += sum(1 for r in replicas if r.get("state") == "RUNNING")
        target += int(deployment.get("target_num_replicas") or 0)
    return ServeApplication(
        name=name,
        status=data.get("status", "NOT_STARTED"),
        message="; ".join(m for m in messages if m),
        route_prefix=data.get("route_prefix"),
        config=data.get("deployed_app_config"),
        replicas_running=running,
        replicas_target=target,
    )


class DashboardClient:
    """``RayClient`` over a Ray dashboard URL such as ``http://127.0.0.1:8265``."""

    def __init__(
        self,
        dashboard_url: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ):
        self.dashboard_url = dashboard_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=self.dashboard_url, timeout=timeout, transport=transport, headers=headers
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RayUnavailable(f"Ray dashboard {self.dashboard_url} unreachable: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise RayError(
                f"Ray dashboard {self.dashboard_url} refused the operator ({response.status_code}): the cluster uses "
                "token authentication; set ACGS_RAY_AUTH_TOKEN_FILE to a file holding its token"
            )
        if response.status_code >= 500:
            raise RayUnavailable(f"Ray dashboard {method} {path} -> {response.status_code}: {response.text[:500]}")
        return response

    async def submit_job(
        self,
        *,
        submission_id: str,
        entrypoint: str,
        runtime_env: dict[str, Any],
        metadata: dict[str, str],
        entrypoint_num_cpus: float = 0,
    ) -> str:
        body = {
            "submission_id": submission_id,
            "entrypoint": entrypoint,
            "runtime_env": runtime_env,
            "metadata": metadata,
            "entrypoint_num_cpus": entrypoint_num_cpus,
        }
        # Ray starts the job's supervisor actor before it answers: allow for a busy cluster
        response = await self._request("POST", "/api/jobs/", json=body, timeout=SUBMIT_TIMEOUT)
        if response.status_code >= 400:
            raise RayError(f"job submission {submission_id} refused ({response.status_code}): {response.text[:500]}")
        return str(response.json().get("submission_id", submission_id))

    async def get_job(self, submission_id: str) -> JobInfo | None:
        response = await self._request("GET", f"/api/jobs/{submission_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise RayError(f"GET job {submission_id} -> {response.status_code}: {response.text[:500]}")
        return _job(response.json())

    async def stop_job(self, submission_id: str) -> bool:
        response = await self._request("POST", f"/api/jobs/{submission_id}/stop")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise RayError(f"stop job {submission_id} -> {response.status_code}: {response.text[:500]}")
        return bool(response.json().get("stopped", False))

    async def job_logs(self, submission_id: str) -> str:
        response = await self._request("GET", f"/api/jobs/{submission_id}/logs")
        if response.status_code == 404:
            return ""
        if response.status_code >= 400:
            raise RayError(f"logs of job {submission_id} -> {response.status_code}: {response.text[:500]}")
        return str(response.json().get("logs", ""))

    async def list_jobs(self) -> list[JobInfo]:
        response = await self._request("GET", "/api/jobs/")
        if response.status_code >= 400:
            raise RayError(f"list jobs -> {response.status_code}: {response.text[:500]}")
        return [_job(item) for item in response.json()]

    async def serve_applications(self) -> dict[str, ServeApplication]:
        response = await self._request("GET", "/api/serve/applications/")
        if response.status_code >= 400:
            raise RayError(f"GET Serve applications -> {response.status_code}: {response.text[:500]}")
        apps = response.json().get("applications") or {}
        return {name: _application(name, data) for name, data in apps.items()}

    async def put_serve_applications(
        self, applications: list[dict[str, Any]], http_options: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {"applications": applications}
        if http_options:
            body["http_options"] = http_options
        response = await self._request("PUT", "/api/serve/applications/", json=body)
        if response.status_code >= 400:
            raise RayError(f"Serve config refused ({response.status_code}): {response.text[:1000]}")

    async def delete_serve_applications(self) -> None:
        response = await self._request("DELETE", "/api/serve/applications/")
        if response.status_code >= 400:
            raise RayError(f"DELETE Serve applications -> {response.status_code}: {response.text[:500]}")
