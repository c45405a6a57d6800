"""Pure ASGI middleware of the model routes: request metrics, API-key auth, admission and the body size limit.

Plain ASGI (no ``BaseHTTPMiddleware``) so the per-request cost stays in the microseconds. Refusals are the
exceptions of :mod:`.errors`, rendered by its one mapping (:func:`~.errors.error_response`); each refusal
leaves the error in the request's state, and :class:`MetricsMiddleware` (the outermost) counts it and writes
its audit line (:mod:`.audit`) once the answer is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from acgs_workloads.serving.audit import Auditor
from acgs_workloads.serving.auth import authorized
from acgs_workloads.serving.errors import (
    REASON_BY_CODE,
    BodyTooLarge,
    MalformedBody,
    Overloaded,
    ServingError,
    Unauthorized,
    error_response,
)
from acgs_workloads.serving.metrics import ReplicaMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMITTED_PATHS = frozenset({"/predict"})
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
KNOWN_ROUTES = frozenset({"/predict", "/health", "/metadata", "/openapi.json", "/docs", "/redoc"})
# keys of the request's state (``scope["state"]``, Starlette's ``request.state``)
REFUSAL_STATE = "refusal"  # the reason of the refusal answered
ERROR_STATE = "acgs_error"  # the ServingError answered, for the audit line
BODY_STATE = "acgs_body"  # the raw body read by BodyLimitMiddleware: digested only if the request is refused


def note_refusal(state: MutableMapping[str, Any], error: ServingError) -> None:
    """Leave ``error`` in the request's state, for the refusal counter and the audit line."""
    state[REFUSAL_STATE] = error.reason
    state[ERROR_STATE] = error


def relative_path(scope: Scope) -> str:
    """The path below the application's route prefix (Serve passes the prefix as ``root_path``)."""
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", "") or "")
    if root and root != "/" and path.startswith(root):
        path = path[len(root):]
    return path or "/"


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
                    ) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Send, error: ServingError, served_hash: str | None, scope: Scope | None = None) -> None:
    """Answer ``error`` as the table in :mod:`.errors` says (noted in ``scope``'s state, when given)."""
    if scope is not None:
        note_refusal(scope.setdefault("state", {}), error)
    status, body, headers = error_response(error, served_hash)
    await send_json(send, status, body, headers)


class MetricsMiddleware:
    """Counts every HTTP request by route and status code, with its latency and refusal reason; writes the
    audit line of a refusal of the errors table (with ``auditor``); adds ``headers`` (the served constitution
    hash) to every response."""

    def __init__(self, app: ASGIApp, metrics: ReplicaMetrics, headers: list[tuple[bytes, bytes]] | None = None,
                 auditor: Auditor | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.headers = list(headers or [])
        self.auditor = auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if self.headers:
                    message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            path = relative_path(scope)
            route = path if path in KNOWN_ROUTES else "other"
            self.metrics.observe_request(route, status, time.perf_counter() - started)
            state = scope.get("state") or {}
            if 400 <= status < 500 or state.get(REFUSAL_STATE):  # a 503 of the errors table names its reason
                reason = state.get(REFUSAL_STATE) or REASON_BY_CODE.get(status, f"http_{status}")
                self.metrics.refusal(str(reason))
            error = state.get(ERROR_STATE)
            if self.auditor is not None and isinstance(error, ServingError):
                body = state.get(BODY_STATE)
                self.auditor.refusal(error, route=route, body=body if isinstance(body, bytes) else None)


class ApiKeyMiddleware:
    """401 unless the request presents the API key whose sha256 is configured (health and docs stay open)."""

    def __init__(self, app: ASGIApp, api_key_sha256: str | None, served_hash: str | None = None) -> None:
        self.app = app
        self.api_key_sha256 = api_key_sha256
        self.served_hash = served_hash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.api_key_sha256 is not None
            and relative_path(scope) not in PUBLIC_PATHS
            and not authorized(scope.get("headers", []), self.api_key_sha256)
        ):
            await send_error(send, Unauthorized(), self.served_hash, scope)
            return
        await self.app(scope, receive, send)


class AdmissionMiddleware:
    """503 ``overloaded`` with ``Retry-After``, at once, for a prediction beyond ``limit`` in flight here.

    One counter per replica (the middleware lives in the replica's one FastAPI app and its one event loop,
    so no lock is needed). Ray Serve already holds each replica to ``max_ongoing_requests`` and refuses the
    excess in its proxy; this is the replica's own guarantee that it never works on more than its limit
    (requests that bypass Serve's accounting, a config drifting from the args), answered with the
    errors table's body (the limit, the served hash) and counted as a refusal.
    """

    def __init__(self, app: ASGIApp, limit: int, retry_after_seconds: int, served_hash: str | None = None,
                 paths: frozenset[str] = ADMITTED_PATHS) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.served_hash = served_hash
        self.paths = paths
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or relative_path(scope) not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_error(send, Overloaded(self.limit, self.retry_after_seconds), self.served_hash, scope)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, by ``Content-Length`` and by the bytes actually received.

    The body is read here (at most ``max_bytes + 1`` bytes are kept) and replayed to the application,
    so a chunked upload without ``Content-Length`` is held to the same limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, served_hash: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.served_hash = served_hash

    async def _refuse(self, scope: Scope, send: Send, size: str) -> None:
        await send_error(send, BodyTooLarge(size, self.max_bytes), self.served_hash, scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, MalformedBody("invalid Content-Length header"), self.served_hash, scope)
                    return
                if declared > self.max_bytes:
                    await self._refuse(scope, send, str(declared))
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send, f"more than {self.max_bytes}")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        scope.setdefault("state", {})[BODY_STATE] = body  # a reference: digested only for a refusal's audit line
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
