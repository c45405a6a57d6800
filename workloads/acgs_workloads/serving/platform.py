"""The platform Serve application at ``/`` (``import_path: acgs_workloads.serving.platform:build_platform``)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from acgs_workloads.contract import WithdrawnRoute, parse_platform_args
from acgs_workloads.serving.metrics import Snapshot
from acgs_workloads.serving.metrics_store import store_handle
from acgs_workloads.serving.platform_api import create_platform_api

CALL_TIMEOUT_S = 5.0


@serve.deployment(name="Platform", num_replicas=1, max_ongoing_requests=32, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Platform:
    """Answers ``/health``, ``/models`` and ``/metrics`` from Serve's status, model handles and the store."""

    def __init__(self, withdrawn: list[dict[str, Any]] | None = None) -> None:
        self._store = store_handle()
        self._withdrawn = [WithdrawnRoute.model_validate(w) for w in withdrawn or []]

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_platform_api(self, self._withdrawn)

    async def status(self) -> dict[str, Any]:
        status = await asyncio.to_thread(serve.status)
        return {"applications": {name: dataclasses.asdict(app) for name, app in status.applications.items()}}

    async def model_metadata(self, app: str) -> dict[str, Any]:
        handle = await asyncio.to_thread(serve.get_app_handle, app)
        result = await asyncio.wait_for(handle.model_metadata.remote(), timeout=CALL_TIMEOUT_S)
        return dict(result)

    async def snapshots(self) -> dict[str, list[Snapshot]]:
        status = await asyncio.to_thread(serve.status)
        live = list(status.applications)
        result = await asyncio.wait_for(self._store.snapshots.remote(live), timeout=CALL_TIMEOUT_S)
        return dict(result)


def build_platform(args: dict[str, Any] | None = None) -> Application:
    parsed = parse_platform_args(args)
    return Platform.bind([w.wire() for w in parsed.withdrawn])  # type: ignore[attr-defined]
