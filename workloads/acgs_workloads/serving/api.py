"""The FastAPI application of one model deployment: ``POST /predict``, ``GET /health``, ``GET /metadata``.

Constructible without Ray (unit tests use FastAPI's TestClient); under Serve the routes live below the
deployment's route prefix, so ``/constitutional-ai/predict`` reaches ``/predict`` here. Refusals are the
exceptions of :mod:`.errors`, answered through its one mapping table; each is counted and written as one
audit line (:mod:`.audit`) by the metrics middleware.
"""

# no `from __future__ import annotations`: FastAPI must see the component's request model in the signature

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from acgs_workloads.serving import audit
from acgs_workloads.serving.asgi import (
    AdmissionMiddleware,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    MetricsMiddleware,
    note_refusal,
)
from acgs_workloads.serving.errors import InvalidRequest, ServingError, error_response, openapi_responses
from acgs_workloads.serving.service import ModelService

log = logging.getLogger(__name__)
HASH_HEADER = "x-acgs-constitution-hash"


def create_model_api(service: ModelService) -> FastAPI:
    """The FastAPI app serving ``service`` (middleware: metrics -> API key -> admission -> body limit -> routes)."""
    args = service.args
    served_hash = service.constitution_hash
    request_model = service.request_model
    audit.ensure_handler()
    app = FastAPI(
        title=f"ACGS {args.component}",
        version="v1alpha1",
        description=(
            f"ModelDeployment {args.deployment}: {args.component} under constitution "
            f"{args.constitution.name}@{served_hash}. Every request names the constitution it expects "
            "(`constitutional_hash`: the served hash or one of its aliases "
            f"[{', '.join(args.constitution.hash_aliases)}]); every answer carries the served hash. "
            "The runtime guard never serves a decision that violates a critical principle."
        ),
    )

    async def predict(body: request_model) -> JSONResponse:  # type: ignore[valid-type]
        return JSONResponse(await service.predict(body))

    app.add_api_route(
        "/predict", predict, methods=["POST"], response_model=service.response_model,
        summary=f"{args.component} decision, checked by the runtime guard",
        responses=openapi_responses(),
    )

    @app.get("/health", summary="Replica health and what it serves")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/metadata", summary="Deployment, constitution, artifact digest, evaluated metrics and compliance")
    async def metadata() -> dict[str, Any]:
        return service.metadata()

    def render(request: Request, error: ServingError) -> JSONResponse:
        note_refusal(request.scope.setdefault("state", {}), error)
        status, content, headers = error_response(error, served_hash)
        return JSONResponse(status_code=status, content=content,
                            headers={k.decode(): v.decode() for k, v in headers})

    @app.exception_handler(ServingError)
    async def refused(request: Request, error: ServingError) -> JSONResponse:
        return render(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return render(request, InvalidRequest(list(error.errors())))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("predict failed: %s", error)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error: {type(error).__name__}: {error}", "constitutional_hash": served_hash,
        })

    app.add_middleware(BodyLimitMiddleware, max_bytes=args.max_body_bytes, served_hash=served_hash)
    app.add_middleware(AdmissionMiddleware, limit=args.queue.max_ongoing_requests,
                       retry_after_seconds=args.queue.retry_after_seconds, served_hash=served_hash)
    app.add_middleware(ApiKeyMiddleware, api_key_sha256=args.api_key_sha256, served_hash=served_hash)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, auditor=service.auditor,
                       headers=[(HASH_HEADER.encode(), served_hash.encode())])
    return app
