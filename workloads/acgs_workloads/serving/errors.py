"""The model server's domain errors and the ONE table that maps them to HTTP answers.

Both the FastAPI routes (:mod:`.api`) and the pure ASGI middleware (:mod:`.asgi`) render an error with
:func:`error_response`; the OpenAPI ``responses`` of ``POST /predict`` and the refusal reasons counted in
``acgs_serve_refusals_total{reason}`` come from the same table.

====  ==========================  =====================================================================
code  reason (metrics label)      raised when
====  ==========================  =====================================================================
400   malformed_body              the ``Content-Length`` header is not a number (:class:`MalformedBody`)
401   unauthorized                auth is on and the request has no valid API key (:class:`Unauthorized`)
403   no_compliant_decision       every decision for the request violates a critical principle of the
                                  constitution, so the runtime guard refuses it (:class:`NoCompliantDecision`)
409   constitution_mismatch       the request's ``constitutional_hash`` is not the served one; the body names
                                  the served hash (:class:`ConstitutionHashMismatch`)
413   body_too_large              the body exceeds ``maxBodyBytes`` (:class:`BodyTooLarge`)
422   invalid_request             a field is missing or invalid; the body names the field (:class:`InvalidRequest`)
503   model_not_loaded            the replica has no model loaded (:class:`ModelNotLoaded`)
====  ==========================  =====================================================================

404, 405 and 415 come from the router itself (``unknown_route``, ``method_not_allowed``,
``unsupported_media_type``). Every error body carries ``detail`` and the served ``constitutional_hash``.
:class:`ModelLoadError` is not an HTTP answer: it fails the replica's constructor (Serve reports
``DEPLOY_FAILED`` with the message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel


class ModelLoadError(RuntimeError):
    """The artifact cannot be served (wrong component, unreadable, trained under another constitution)."""


class ServingError(Exception):
    """A request the model server refuses; ``status_code`` and ``reason`` are its row of the table."""

    status_code: ClassVar[int] = 500
    reason: ClassVar[str] = "internal_error"
    description: ClassVar[str] = "Internal error."

    def fields(self) -> dict[str, Any]:
        """Fields of the JSON body beyond ``detail`` and ``constitutional_hash``."""
        return {}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []


class MalformedBody(ServingError):
    status_code = 400
    reason = "malformed_body"
    description = "The body cannot be read (invalid Content-Length)."


class Unauthorized(ServingError):
    status_code = 401
    reason = "unauthorized"
    description = "Missing or wrong API key."

    def __init__(self) -> None:
        super().__init__("missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b'Bearer realm="acgs"')]


class NoCompliantDecision(ServingError):
    """Every possible decision for the request violates a critical principle; the guard refuses it."""

    status_code = 403
    reason = "no_compliant_decision"
    description = "Every decision for this request violates a critical principle; the runtime guard refuses it."

    def __init__(self, violations: Sequence[str]) -> None:
        super().__init__("no decision for this request satisfies the critical principles: " + ", ".join(violations))
        self.violations = list(violations)

    def fields(self) -> dict[str, Any]:
        return {"violations": self.violations}


class ConstitutionHashMismatch(ServingError):
    """The request expects another constitution than the one served."""

    status_code = 409
    reason = "constitution_mismatch"
    description = "The request expects another constitution; the body names the served hash."

    def __init__(self, served: str, requested: str) -> None:
        super().__init__(f"request expects constitution {requested}, this deployment serves {served}")
        self.served = served
        self.requested = requested

    def fields(self) -> dict[str, Any]:
        return {"served_hash": self.served, "requested_hash": self.requested}


class BodyTooLarge(ServingError):
    status_code = 413
    reason = "body_too_large"
    description = "Body larger than maxBodyBytes."

    def __init__(self, size: str, limit: int) -> None:
        super().__init__(f"request body of {size} bytes exceeds the limit of {limit} bytes")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")]


class InvalidRequest(ServingError):
    """Validation errors of the request body (pydantic's list: ``type``, ``loc``, ``msg``)."""

    status_code = 422
    reason = "invalid_request"
    description = "A field is missing or invalid; `message` and `detail[].loc` name it."

    def __init__(self, errors: Sequence[Any]) -> None:
        self.errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]
        super().__init__(field_messages(errors))

    def fields(self) -> dict[str, Any]:
        return {"detail": self.errors, "message": str(self)}


class ModelNotLoaded(ServingError):
    status_code = 503
    reason = "model_not_loaded"
    description = "The replica has no model loaded."

    def __init__(self, what: str = "model") -> None:
        super().__init__(f"{what} is not loaded")


ERRORS: tuple[type[ServingError], ...] = (
    MalformedBody, Unauthorized, NoCompliantDecision, ConstitutionHashMismatch, BodyTooLarge, InvalidRequest,
    ModelNotLoaded,
)
ROUTER_REASONS = {404: "unknown_route", 405: "method_not_allowed", 415: "unsupported_media_type"}
REASON_BY_CODE: dict[int, str] = {**ROUTER_REASONS, **{e.status_code: e.reason for e in ERRORS}}


def field_messages(errors: Sequence[Any]) -> str:
    """``body.context.harm_score: Input should be ...`` for each validation error."""
    parts = []
    for item in errors:
        loc = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def error_response(error: ServingError, served_hash: str | None) -> tuple[int, dict[str, Any], list[tuple[bytes,
                                                                                                       bytes]]]:
    """(status, JSON body, extra headers) of ``error``: the one rendering of every refusal."""
    body: dict[str, Any] = {"detail": str(error)}
    if served_hash is not None:
        body["constitutional_hash"] = served_hash
    body.update(error.fields())
    return error.status_code, body, error.headers()


# ---------------------------------------------------------------------- OpenAPI


class ErrorBody(BaseModel):
    detail: Any
    constitutional_hash: str


class HashMismatchBody(ErrorBody):
    served_hash: str
    requested_hash: str


class NoCompliantDecisionBody(ErrorBody):
    violations: list[str]


class InvalidRequestBody(ErrorBody):
    message: str


_BODIES: dict[type[ServingError], type[ErrorBody]] = {
    ConstitutionHashMismatch: HashMismatchBody, NoCompliantDecision: NoCompliantDecisionBody,
    InvalidRequest: InvalidRequestBody,
}


def openapi_responses() -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of ``POST /predict``: every row of the table with its body model."""
    return {e.status_code: {"model": _BODIES.get(e, ErrorBody), "description": e.description} for e in ERRORS}
