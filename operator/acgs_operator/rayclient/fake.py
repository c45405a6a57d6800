"""An in-memory ``RayClient`` for unit tests: same contract, state you can drive by hand."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from acgs_operator.rayclient.base import JobInfo, JobStatus, RayError, RayUnavailable, ServeApplication


@dataclass
class FakeRayClient:
    dashboard_url: str = "http://fake-ray:8265"
    jobs: dict[str, JobInfo] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    entrypoints: dict[str, str] = field(default_factory=dict)
    applications: dict[str, ServeApplication] = field(default_factory=dict)
    submissions: int = 0
    serve_puts: int = 0
    unavailable: bool = False

    def _check(self) -> None:
        if self.unavailable:
            raise RayUnavailable(f"Ray dashboard {self.dashboard_url} unreachable (fake)")

    # --- test controls
    def set_job(self, submission_id: str, status: JobStatus, message: str = "", logs: str | None = None) -> None:
        self.jobs[submission_id] = replace(self.jobs[submission_id], status=status, message=message)
        if logs is not None:
            self.logs[submission_id] = logs

    def set_app_status(self, name: str, status: str, message: str = "") -> None:
        self.applications[name] = replace(self.applications[name], status=status, message=message)

    # --- RayClient
    async def submit_job(
        self,
        *,
        submission_id: str,
        entrypoint: str,
        runtime_env: dict[str, Any],
        metadata: dict[str, str],
        entrypoint_num_cpus: float = 0,
    ) -> str:
        self._check()
        if submission_id in self.jobs:
            raise RayError(f"Job with submission_id {submission_id} already exists")
        self.jobs[submission_id] = JobInfo(submission_id, JobStatus.PENDING, metadata=dict(metadata))
        self.entrypoints[submission_id] = entrypoint
        self.logs[submission_id] = ""
        self.submissions += 1
        return submission_id

    async def get_job(self, submission_id: str) -> JobInfo | None:
        self._check()
        return self.jobs.get(submission_id)

    async def stop_job(self, submission_id: str) -> bool:
        self._check()
        job = self.jobs.get(submission_id)
        if job is None or job.status.terminal:
            return False
        self.jobs[submission_id] = replace(job, status=JobStatus.STOPPED, message="Job was intentionally stopped.")
        return True

    async def job_logs(self, submission_id: str) -> str:
        self._check()
        return self.logs.get(submission_id, "")

    async def list_jobs(self) -> list[JobInfo]:
        self._check()
        return list(self.jobs.values())

    async def serve_applications(self) -> dict[str, ServeApplication]:
        self._check()
        return copy.deepcopy(self.applications)

    async def put_serve_applications(
        self, applications: list[dict[str, Any]], http_options: dict[str, Any] | None = None
    ) -> None:
        self._check()
        self.http_options = http_options
        self.serve_puts += 1
        names = {app["name"] for app in applications}
        if len(names) != len(applications):
            raise RayError("duplicate application names")
        kept = {}
        for app in applications:
            old = self.applications.get(app["name"])
            unchanged = old is not None and old.config == app
            kept[app["name"]] = (
                old
                if unchanged and old is not None
                else ServeApplication(app["name"], "DEPLOYING", route_prefix=app.get("route_prefix"), config=app)
            )
        self.applications = kept

    async def delete_serve_applications(self) -> None:
        self._check()
        self.applications = {}
