"""The one startup handler: operator settings, configuration and the metrics endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf

from acgs_operator import metrics
from acgs_operator.config import ANNOTATION_PREFIX, FINALIZER, OperatorConfig
from acgs_operator.rayclient import DashboardClient, RayClient
from acgs_operator.rayclient.registry import RayClients


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    config = OperatorConfig.from_env()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.consistency_timeout = config.consistency_timeout
    settings.watching.server_timeout = config.watch_server_timeout
    settings.queueing.worker_limit = config.worker_limit or None
    settings.queueing.idle_timeout = config.worker_idle_timeout  # a held worker slot blocks other objects
    settings.watching.client_timeout = config.watch_server_timeout + 30
    settings.watching.connect_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10, 30]
    # kopf's own per-object log lines stay in the log; events are posted by handlers with typed reasons
    settings.posting.level = logging.WARNING
    memo.config = config
    memo.rays = RayClients(config.ray_address, factory=dashboard_factory(config.ray_auth_token_file))
    memo.serve_lock = asyncio.Lock()  # the Serve REST API replaces the whole config: one writer at a time
    memo.core_v1 = kubernetes_core_v1()
    memo.custom = kubernetes_custom_objects()
    metrics.serve(config.metrics_port)
    logger.info("ACGS operator configured: %s", config.model_dump())


def dashboard_factory(token_file: str) -> Callable[[str], RayClient]:
    token = Path(token_file).read_text().strip() if token_file else None
    return lambda address: DashboardClient(address, token=token)


def kubernetes_core_v1() -> Any:
    """A CoreV1Api for reading Secrets (in-cluster credentials, else the current kubeconfig)."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.CoreV1Api()


def kubernetes_custom_objects() -> Any:
    """A CustomObjectsApi (ModelDeployments with onConstitutionChange retrain patch their TrainingJob)."""
    import kubernetes

    return kubernetes.client.CustomObjectsApi()


@kopf.on.probe(id="config")
def config_probe(memo: kopf.Memo, **_: Any) -> str:
    return "loaded" if getattr(memo, "config", None) else "missing"
