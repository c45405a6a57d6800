"""Operator configuration, read once at startup from the environment (ACGS_*)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field

FINALIZER = "acgs.io/finalizer"
ANNOTATION_PREFIX = "acgs.io"


class OperatorConfig(BaseModel):
    ray_address: str = Field(default="http://127.0.0.1:8265", description="Default Ray dashboard URL.")
    artifact_root: str = Field(default="/tmp/acgs-artifacts", description="Where training runs write artifacts.")
    ray_auth_token_file: str = Field(default="", description="File with the Ray cluster's auth token, if it uses one.")
    ray_python: str = Field(default="python", description="Python on the Ray nodes that runs the training entrypoint.")
    serve_http_host: str = Field(default="0.0.0.0", description="Host Ray Serve's HTTP proxy binds to.")
    serve_http_port: int = Field(default=8000, ge=1, le=65535, description="Port of Ray Serve's HTTP proxy.")
    serve_url: str = Field(
        default="", description="Base URL of Ray Serve's HTTP proxy; default: dashboard host, port 8000."
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Prometheus metrics port; 0 disables.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Liveness probe port; 0 disables.")
    consistency_timeout: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Seconds kopf waits for its own status patch to come back through the watch before it "
        "processes the next event of that object (kopf's default is 5; see benchmarks/bench_operator_latency.py).",
    )
    watch_server_timeout: int = Field(default=300, ge=10, description="Seconds the API server keeps a watch open.")
    # Measured with reliability case 9 (1,000 TrainingJobs at once, 2 cores): kopf's defaults (no limit, 5 s)
    # peaked at 205-214 MB RSS and reconciled all in 40-41 s; 100 workers that exit after 1 s idle: 167-168 MB, 43-45 s.
    worker_limit: int = Field(
        default=100, ge=0, description="Most objects kopf processes at once (0: no limit); bounds memory in bursts."
    )
    worker_idle_timeout: float = Field(
        default=1.0, gt=0.0, le=60.0, description="Seconds an object's idle kopf worker waits before it exits."
    )
    log_format: str = Field(default="full", pattern="^(plain|full|json)$")
    signing_key_secret: str = Field(
        default="",
        pattern=r"^$|^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*(:[-._a-zA-Z0-9]+)?$",
        description=(
            "namespace/name[:key] of the Secret with the PEM private key that signs trained models (key "
            "private.pem by default), for TrainingJobs without spec.signing; empty: such models are not signed."
        ),
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        values = {name: env[f"ACGS_{name.upper()}"] for name in cls.model_fields if f"ACGS_{name.upper()}" in env}
        return cls.model_validate(values)
