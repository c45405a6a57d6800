"""The platform Serve application at ``/`` (``import_path: acgs_workloads.serving.platform:build_platform``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from acgs_workloads.contract import WithdrawnRoute, parse_platform_args
from acgs_workloads.serving.metrics import Snapshot
from acgs_workloads.serving.metrics_store import store_handle
from acgs_workloads.serving.platform_api import create_platform_api

CALL_TIMEOUT_S = 5.0
REFRESH_INTERVAL_S = 0.5
log = logging.getLogger("ray.serve")


@serve.deployment(name="Platform", num_replicas=1, max_ongoing_requests=32, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Platform:
    """Answers ``/health``, ``/models`` and ``/metrics`` from state a background task keeps current.

    Every :data:`REFRESH_INTERVAL_S` the task reads Serve's status and the metrics store; a model's metadata is
    fetched from its replicas once per deployment of its application (``last_deployed_time_s``). A request
    reads that state: no Serve or actor call on the request path, so these routes cost what FastAPI costs.
    A ``/health`` that would answer 503 from state up to half a second old refreshes it first.
    """

    async def __init__(self, withdrawn: list[dict[str, Any]] | None = None) -> None:  # type: ignore[misc]
        self._store = store_handle()
        self._withdrawn = [WithdrawnRoute.model_validate(w) for w in withdrawn or []]
        self._status: dict[str, Any] | None = None
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}  # app -> (last deployed, metadata)
        self._lock = asyncio.Lock()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_platform_api(self, self._withdrawn)

    async def refresh(self) -> None:
        """Read Serve's status and every replica's metrics snapshot (one at a time)."""
        async with self._lock:
            status = await asyncio.to_thread(serve.status)
            self._status = {"applications": {name: dataclasses.asdict(app)
                                             for name, app in status.applications.items()}}
            live = list(status.applications)
            result = await asyncio.wait_for(self._store.snapshots.remote(live), timeout=CALL_TIMEOUT_S)
            self._snapshots = dict(result)

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # the next round tries again; requests read the last good state
                log.warning("platform state not refreshed: %s", error)
            await asyncio.sleep(REFRESH_INTERVAL_S)

    async def status(self, fresh: bool = False) -> dict[str, Any]:
        if self._status is None or fresh:
            await self.refresh()
        assert self._status is not None
        return self._status

    async def model_metadata(self, app: str) -> dict[str, Any]:
        deployed = float(((self._status or {}).get("applications", {}).get(app) or {}).get("last_deployed_time_s")
                         or 0.0)
        cached = self._metadata.get(app)
        if cached is not None and cached[0] == deployed:
            return cached[1]
        handle = await asyncio.to_thread(serve.get_app_handle, app)
        result = dict(await asyncio.wait_for(handle.model_metadata.remote(), timeout=CALL_TIMEOUT_S))
        self._metadata[app] = (deployed, result)
        return result

    async def snapshots(self) -> dict[str, list[Snapshot]]:
        if self._status is None:
            await self.refresh()
        return self._snapshots


def build_platform(args: dict[str, Any] | None = None) -> Application:
    parsed = parse_platform_args(args)
    return Platform.bind([w.wire() for w in parsed.withdrawn])  # type: ignore[attr-defined]
