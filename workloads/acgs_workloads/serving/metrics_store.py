"""A tiny detached Ray actor holding the latest metrics snapshot of every ModelServer replica.

Replicas push their cumulative snapshots every :data:`PUSH_INTERVAL_S` seconds (fire and forget); the
platform reads them all for ``GET /metrics``. Detached, so it outlives replicas (a dead replica's counts
are kept) and does not depend on the platform application being deployed first.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from acgs_workloads.serving.metrics import Snapshot

STORE_NAME = "acgs-serving-metrics"
STORE_NAMESPACE = "acgs"
PUSH_INTERVAL_S = 1.0


class MetricsStore:
    """``{app: {replica: snapshot}}`` with the time of each report."""

    def __init__(self) -> None:
        self._snapshots: dict[str, dict[str, tuple[float, Snapshot]]] = {}

    def report(self, app: str, replica: str, snapshot: Snapshot) -> None:
        self._snapshots.setdefault(app, {})[replica] = (time.time(), snapshot)

    def snapshots(self, apps: list[str] | None = None) -> dict[str, list[Snapshot]]:
        """Snapshots per application (only ``apps`` when given)."""
        return {
            app: [snap for _, snap in replicas.values()]
            for app, replicas in self._snapshots.items()
            if apps is None or app in apps
        }

    def forget(self, app: str) -> None:
        self._snapshots.pop(app, None)

    def reporters(self) -> dict[str, dict[str, float]]:
        return {app: {r: t for r, (t, _) in replicas.items()} for app, replicas in self._snapshots.items()}


def store_handle() -> Any:
    """The store actor, created on first use (0 CPUs, detached, restarted if it dies)."""
    actor = ray.remote(MetricsStore).options(
        name=STORE_NAME, namespace=STORE_NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1,
    )
    return actor.remote()
