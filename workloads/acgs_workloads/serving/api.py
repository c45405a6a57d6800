"""The FastAPI application of one model deployment: ``POST /predict``, ``GET /health``, ``GET /metadata``.

Constructible without Ray (unit tests use FastAPI's TestClient); under Serve the routes live below the
deployment's route prefix, so ``/constitutional-ai/predict`` reaches ``/predict`` here.
"""

# no `from __future__ import annotations`: FastAPI must see the component's request model in the signature

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from acgs_workloads.serving.asgi import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from acgs_workloads.serving.service import ConstitutionHashMismatch, ModelService, NoCompliantDecision

log = logging.getLogger(__name__)
HASH_HEADER = "x-acgs-constitution-hash"


class ErrorBody(BaseModel):
    detail: Any
    constitutional_hash: str


class HashMismatchBody(ErrorBody):
    served_hash: str
    requested_hash: str


def field_messages(errors: list[Any]) -> str:
    """``body.context.harm_score: Input should be ...`` for each validation error."""
    parts = []
    for item in errors:
        loc = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_model_api(service: ModelService) -> FastAPI:
    """The FastAPI app serving ``service`` (middleware: metrics -> API key -> body limit -> routes)."""
    args = service.args
    served_hash = service.constitution_hash
    request_model = service.request_model
    app = FastAPI(
        title=f"ACGS {args.component}",
        version="v1alpha1",
        description=(
            f"ModelDeployment {args.deployment}: {args.component} under constitution "
            f"{args.constitution.name}@{served_hash}. Every request names the constitution it expects "
            "(`constitutional_hash`); the runtime guard never serves a decision that violates a critical principle."
        ),
    )

    async def predict(body: request_model, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        try:
            row = await service.predict(body)
        except ConstitutionHashMismatch as error:
            request.state.refusal = "constitution_mismatch"
            return JSONResponse(status_code=409, content={
                "detail": str(error), "constitutional_hash": served_hash,
                "served_hash": error.served, "requested_hash": error.requested,
            })
        except NoCompliantDecision as error:
            request.state.refusal = "no_compliant_decision"
            return JSONResponse(status_code=422, content={
                "detail": str(error), "constitutional_hash": served_hash, "violations": error.violations,
            })
        return JSONResponse(row)

    app.add_api_route(
        "/predict", predict, methods=["POST"], response_model=service.response_model,
        summary=f"{args.component} decision, checked by the runtime guard",
        responses={
            400: {"description": "The body cannot be parsed (not UTF-8)."},
            401: {"model": ErrorBody, "description": "Missing or wrong API key."},
            409: {"model": HashMismatchBody, "description": "The request expects another constitution."},
            413: {"model": ErrorBody, "description": "Body larger than maxBodyBytes."},
        },
    )

    @app.get("/health", summary="Replica health and what it serves")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/metadata", summary="Deployment, constitution, artifact digest, evaluated metrics and compliance")
    async def metadata() -> dict[str, Any]:
        return service.metadata()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]
        return JSONResponse(status_code=422, content={
            "detail": detail, "message": field_messages(errors), "constitutional_hash": served_hash,
        })

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("predict failed: %s", error)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error: {type(error).__name__}: {error}", "constitutional_hash": served_hash,
        })

    app.add_middleware(BodyLimitMiddleware, max_bytes=args.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, api_key_sha256=args.api_key_sha256)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, headers=[(HASH_HEADER.encode(),
                                                                              served_hash.encode())])
    return app
