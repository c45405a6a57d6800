"""The Ray Serve application of one ModelDeployment: ingress deployment ``ModelServer``.

The operator's Serve config points at ``acgs_workloads.serving.app:build_app`` with :class:`ModelAppArgs`
as ``args``; the deployment's replicas, autoscaling and ``ray_actor_options`` come from the config's
``deployments: [{name: ModelServer, ...}]`` entry. A replica verifies the artifact's sha256 and compiles
the constitution in its constructor: a mismatch raises there, so Serve reports the application
``DEPLOY_FAILED`` with the message instead of serving a wrong model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
import torch
from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from acgs_workloads.contract import (
    DEFAULT_MAX_ONGOING_REQUESTS,
    DEFAULT_MAX_QUEUED_REQUESTS,
    DEFAULT_RETRY_AFTER_SECONDS,
    INGRESS_DEPLOYMENT,
    ModelAppArgs,
    parse_model_args,
)
from acgs_workloads.serving.api import create_model_api
from acgs_workloads.serving.errors import ModelNotLoaded
from acgs_workloads.serving.metrics_store import PUSH_INTERVAL_S, store_handle
from acgs_workloads.serving.service import ModelService

log = logging.getLogger("ray.serve")
# Defaults only: the operator's Serve config sets both from spec.queue (with backpressure_config, so the
# proxy's 503 for a full queue carries Retry-After).
MAX_ONGOING_REQUESTS = DEFAULT_MAX_ONGOING_REQUESTS
MAX_QUEUED_REQUESTS = DEFAULT_MAX_QUEUED_REQUESTS
TORCH_THREADS = 1


@serve.deployment(name=INGRESS_DEPLOYMENT, max_ongoing_requests=MAX_ONGOING_REQUESTS,
                  max_queued_requests=MAX_QUEUED_REQUESTS,
                  backpressure_config={"status_code": 503, "retry_after_s": DEFAULT_RETRY_AFTER_SECONDS},
                  health_check_period_s=5, graceful_shutdown_timeout_s=5)
@serve.ingress()
class ModelServer:
    """One replica (the Serve deployment ``INGRESS_DEPLOYMENT``): loads the verified artifact into a
    :class:`~acgs_workloads.serving.model.ServedModel`, answers the FastAPI routes through a
    :class:`~acgs_workloads.serving.service.ModelService`, adds ``@serve.batch``, pushes its metrics."""

    async def __init__(self, args: dict[str, Any]) -> None:  # type: ignore[misc]
        self.args: ModelAppArgs = parse_model_args(args)
        gpus = bool(ray.get_gpu_ids()) if ray.is_initialized() else False
        if not gpus:
            torch.set_num_threads(TORCH_THREADS)  # tiny models: one intra-op thread beats OpenMP spinning
        self.service = ModelService.from_args(self.args, gpus_assigned=gpus)
        if self.args.batching is not None:
            batched: Any = self.predict_batched
            batched.set_max_batch_size(self.args.batching.max_batch_size)
            batched.set_batch_wait_timeout_s(self.args.batching.batch_wait_timeout_s)
            self.service.batcher = self.predict_batched
        context = serve.get_replica_context()
        self._app_name = context.app_name
        self._replica = context.replica_id.unique_id
        self._pusher = asyncio.get_running_loop().create_task(self._push_metrics())
        log.info("ModelServer %s serving %s from %s (sha256 %s) under constitution %s on %s", self._replica,
                 self.args.component, self.args.model_uri, self.service.model.sha256, self.args.constitution.hash,
                 self.service.model.device)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_model_api(self.service)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def predict_batched(self, requests: list[Any]) -> list[Any]:
        return self.service.predict_batch(requests)

    async def model_metadata(self) -> dict[str, Any]:
        """What this deployment serves (the platform's ``GET /models`` calls this through a handle)."""
        return self.service.metadata()

    def check_health(self) -> None:
        if not self.service.model.ready:
            raise ModelNotLoaded()
        if self.args.verification is not None:  # the bytes on storage are still the bytes signed
            for model in self.service.models:
                model.verify(self.args.verification.public_keys)

    async def _push_metrics(self) -> None:
        store = None
        while True:
            await asyncio.sleep(PUSH_INTERVAL_S)
            try:
                if store is None:
                    store = store_handle()
                store.report.remote(self._app_name, self._replica, self.service.metrics.snapshot())
            except Exception as error:  # the store is best effort; serving goes on
                log.warning("cannot push metrics: %s", error)
                store = None


def build_app(args: dict[str, Any]) -> Application:
    """The Serve application for one ModelDeployment (``import_path: acgs_workloads.serving.app:build_app``).

    ``args`` are validated here (a bad field fails the deploy with a message naming it); the artifact is
    loaded and verified in each replica.
    """
    parsed = parse_model_args(args)
    return ModelServer.bind(parsed.wire())  # type: ignore[attr-defined]
