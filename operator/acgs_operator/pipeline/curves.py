"""Training curves: the progress events a run printed, read back from its Ray job log."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from acgs_operator.api.v1alpha1 import TrainingJobStatus
from acgs_operator.pipeline.stages import status_of
from acgs_operator.rayclient import RayError
from acgs_operator.rayclient.http import DashboardClient
from acgs_workloads.contract import ProgressEvent, parse_events


def loss_curve(log_text: str) -> list[dict[str, Any]]:
    """``[{step, epoch, loss, percent}]`` from every progress event with a loss, in step order (pure).

    A restarted run prints steps again from its checkpoint; the later point wins.
    """
    points: dict[int, dict[str, Any]] = {}
    for event in parse_events(log_text):
        if isinstance(event, ProgressEvent) and event.progress.loss is not None:
            p = event.progress
            points[p.step] = {"step": p.step, "epoch": p.epoch, "loss": p.loss, "percent": p.percent}
    return [points[k] for k in sorted(points)]


def job_ref(training_job: dict[str, Any] | None) -> tuple[str, str] | None:
    """(dashboard URL, submission id) from ``status.rayJob``, if the job was submitted."""
    ray_job = status_of(training_job, TrainingJobStatus).ray_job
    if ray_job is not None and ray_job.dashboard_url and ray_job.submission_id:
        return ray_job.dashboard_url, ray_job.submission_id
    return None


def _token() -> str | None:
    path = os.environ.get("ACGS_RAY_AUTH_TOKEN_FILE")
    return Path(path).read_text().strip() if path else None


async def _logs(dashboard_url: str, submission_id: str) -> str:
    client = DashboardClient(dashboard_url, timeout=30.0, token=_token())
    try:
        return await client.job_logs(submission_id)
    finally:
        await client.aclose()


def fetch_curve(training_job: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str]:
    """The loss curve of a TrainingJob's Ray job, and an error message ('' when it was read)."""
    ref = job_ref(training_job)
    if ref is None:
        return [], "the TrainingJob has no Ray job in its status"
    try:
        return loss_curve(asyncio.run(_logs(*ref))), ""
    except RayError as exc:
        return [], str(exc)
