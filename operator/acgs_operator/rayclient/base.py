"""The Ray client interface and the values it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class RayError(RuntimeError):
    """Ray answered, but refused the request (bad entrypoint, invalid Serve config, ...)."""


class RayUnavailable(RayError):
    """Ray could not be reached (connection refused, timeout, 5xx): retry later, lose nothing."""


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass(frozen=True)
class JobInfo:
    submission_id: str
    status: JobStatus
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    start_time_ms: int | None = None
    end_time_ms: int | None = None


@dataclass(frozen=True)
class ServeApplication:
    name: str
    status: str  # NOT_STARTED, DEPLOYING, DEPLOY_FAILED, RUNNING, UNHEALTHY, DELETING
    message: str = ""
    route_prefix: str | None = None
    config: dict[str, Any] | None = None  # the declarative config it was deployed with, if any
    replicas_running: int = 0
    replicas_target: int = 0


class RayClient(Protocol):
    """What the operator needs from a Ray cluster."""

    dashboard_url: str

    async def submit_job(
        self,
        *,
        submission_id: str,
        entrypoint: str,
        runtime_env: dict[str, Any],
        metadata: dict[str, str],
        entrypoint_num_cpus: float = 0,
    ) -> str: ...

    async def get_job(self, submission_id: str) -> JobInfo | None: ...

    async def stop_job(self, submission_id: str) -> bool: ...

    async def job_logs(self, submission_id: str) -> str: ...

    async def list_jobs(self) -> list[JobInfo]: ...

    async def serve_applications(self) -> dict[str, ServeApplication]: ...

    async def put_serve_applications(
        self, applications: list[dict[str, Any]], http_options: dict[str, Any] | None = None
    ) -> None: ...

    async def delete_serve_applications(self) -> None: ...
