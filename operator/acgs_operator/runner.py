"""Run the operator in-process: ``acgs operator run`` (what the Deployment's container runs)."""

from __future__ import annotations

import asyncio

import kopf

from acgs_operator.config import OperatorConfig

_FORMATS = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}


def run(namespaces: list[str] | None = None, verbose: bool = False) -> None:
    import acgs_operator.handlers  # noqa: F401  (registers the handlers)

    config = OperatorConfig.from_env()
    kopf.configure(verbose=verbose, log_format=_FORMATS[config.log_format])
    liveness = f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            standalone=True,
            liveness_endpoint=liveness,
        )
    )
