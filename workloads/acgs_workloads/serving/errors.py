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
409   constitution_mismatch       the request's ``constitutional_hash`` is neither the served hash nor one of its
                                  aliases; the body names both (:class:`ConstitutionHashMismatch`)
413   body_too_large              the body exceeds ``maxBodyBytes`` (:class:`BodyTooLarge`)
422   invalid_request             a field is missing or invalid; the body names the field (:class:`InvalidRequest`)
503   model_not_loaded            the replica has no model loaded (:class:`ModelNotLoaded`)
503   overloaded                  the replica already works on ``queue.maxOngoingRequests`` predictions;
                                  answered at once with ``Retry-After`` and the limit (:class:`Overloaded`)
====  ==========================  =====================================================================

Ray Serve refuses most excess load before it reaches a replica: beyond ``queue.maxQueuedRequests`` waiting
requests its proxy answers 503 with ``Retry-After`` itself (the deployment's ``backpressure_config``, a
plain-text body). :class:`Overloaded` is the replica's own check of the same per-replica limit, for a
request that reaches a replica that is already full.

404, 405 and 415 come from the router itself (``unknown_route``, ``method_not_allowed``,
``unsupported_media_type``). Every error body carries ``detail`` and the served ``constitutional_hash``.
Every refusal of the table (not the router's) is also written as one JSON audit line and counted in
``acgs_audit_events_total{kind="refusal",reason}`` (:mod:`.audit`).
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

    def __init__(self, violations: Sequence[str], model_decision: str | None = None) -> None:
        super().__init__("no decision for this request satisfies the critical principles: " + ", ".join(violations))
        self.violations = list(violations)
        self.model_decision = model_decision  # for the audit line; not part of the body

    def fields(self) -> dict[str, Any]:
        return {"violations": self.violations}


class ConstitutionHashMismatch(ServingError):
    """The request expects another constitution than the one served."""

    status_code = 409
    reason = "constitution_mismatch"
    description = "The request expects another constitution; the body names the served hash and its aliases."

    def __init__(self, served: str, requested: str, aliases: Sequence[str] = ()) -> None:
        accepted = f" (or its aliases {', '.join(aliases)})" if aliases else ""
        super().__init__(f"request expects constitution {requested}, this deployment serves {served}{accepted}")
        self.served = served
        self.requested = requested
        self.aliases = list(aliases)

    def fields(self) -> dict[str, Any]:
        return {"served_hash": self.served, "requested_hash": self.requested, "hash_aliases": self.aliases}


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


class Overloaded(ServingError):
    """The replica already works on its limit of predictions (``queue.maxOngoingRequests``): refuse at once,
    with ``Retry-After``, instead of letting the request wait until it times out."""

    status_code = 503
    reason = "overloaded"
    description = "Overloaded: the replica already works on queue.maxOngoingRequests requests; retry after Retry-After."

    def __init__(self, limit: int, retry_after_seconds: int) -> None:
        super().__init__(
            f"overloaded: this replica already works on {limit} requests (queue.maxOngoingRequests={limit}); "
            f"retry after {retry_after_seconds} s"
        )
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds

    def fields(self) -> dict[str, Any]:
        return {"limit": {"maxOngoingRequests": self.limit}, "retry_after_seconds": self.retry_after_seconds}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after_seconds).encode())]


ERRORS: tuple[type[ServingError], ...] = (
    MalformedBody, Unauthorized, NoCompliantDecision, ConstitutionHashMismatch, BodyTooLarge, InvalidRequest,
    ModelNotLoaded, Overloaded,
)
ROUTER_REASONS = {404: "unknown_route", 405: "method_not_allowed", 415: "unsupported_media_type"}
# the reason of a status answered without naming its reason: the first row of the table with that code
REASON_BY_CODE: dict[int, str] = {**ROUTER_REASONS, **{e.status_code: e.reason for e in reversed(ERRORS)}}


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
    hash_aliases: list[str]


class NoCompliantDecisionBody(ErrorBody):
    violations: list[str]


class InvalidRequestBody(ErrorBody):
    message: str


class OverloadedBody(ErrorBody):
    limit: dict[str, int] | None = None
    retry_after_seconds: int | None = None


_BODIES: dict[type[ServingError], type[ErrorBody]] = {
    ConstitutionHashMismatch: HashMismatchBody, NoCompliantDecision: NoCompliantDecisionBody,
    InvalidRequest: InvalidRequestBody, Overloaded: OverloadedBody,
}


def openapi_responses() -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of ``POST /predict``: every row of the table with its body model (rows that share a
    code share one entry: the descriptions joined, the last row's body model, whose fields are optional)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for e in ERRORS:
        entry = responses.get(e.status_code)
        if entry is None:
            responses[e.status_code] = {"model": _BODIES.get(e, ErrorBody), "description": e.description}
        else:
            entry["description"] += " Or: " + e.description
            entry["model"] = _BODIES.get(e, entry["model"])
    return responses
