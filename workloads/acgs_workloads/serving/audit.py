"""The decision audit: one structured JSON line per guard override and per refusal, counted by (kind, reason).

Every refusal of the errors table (:mod:`.errors`: a wrong constitution hash, a missing or wrong API key, an
overloaded replica, a body too large, an invalid request, no compliant decision, ...) and every decision the
runtime guard replaced is written as ONE line of JSON (an :class:`AuditRecord`) to the logger ``acgs.audit``
and counted in ``acgs_audit_events_total{kind,reason}``. A line names the request only by a digest: it never
holds the request body, a header value, an API key or an error message (messages quote client input).

``request_digest`` is the sha256 (hex) of the raw body bytes when the HTTP layer refuses a request whose body
it has read (``digest_of: "body"``), of the canonical JSON of the validated request (keys sorted, no
whitespace, UTF-8) for a guard override, which happens inside the batch where only the parsed request is
at hand (``digest_of: "request"``), and null for a refusal made before the body is read (auth, overload,
size limit): a replica never reads an unauthenticated or unadmitted body just to audit it.

Cheap by design: nothing is computed for an approved request; a refused or overridden one costs one digest
and one log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from acgs_workloads.serving.errors import ConstitutionHashMismatch, NoCompliantDecision, ServingError
from acgs_workloads.serving.metrics import ReplicaMetrics

AUDIT_LOGGER = "acgs.audit"
EVENT: Final = "acgs.audit"
GUARD_OVERRIDE = "guard_override"
REFUSAL = "refusal"
OVERRIDE_STATUS = 200  # an overridden decision is served

Kind = Literal["guard_override", "refusal"]
log = logging.getLogger(AUDIT_LOGGER)
log.setLevel(logging.INFO)
_HASH = re.compile(r"^[0-9a-f]{16,64}$")


class AuditRecord(BaseModel):
    """One audit line. Identifiers and digests only: never the request body, a header or a secret."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["acgs.audit"] = Field(default=EVENT, description="Constant, for a log pipeline's filter.")
    ts: str = Field(description="UTC time, RFC 3339 with milliseconds.")
    kind: Kind
    reason: str = Field(description="The errors table's reason of a refusal, or guard_override.")
    status: int = Field(description="HTTP status answered (200 for an override: the replacement was served).")
    deployment: str = Field(description="namespace/name of the ModelDeployment.")
    component: str
    route: str | None = Field(default=None, description="/predict, /metadata, ... or other; null outside HTTP.")
    request_digest: str | None = Field(default=None, description="sha256 hex of the request (see digest_of).")
    digest_of: Literal["body", "request"] | None = Field(
        default=None, description="body: the raw body bytes; request: the canonical JSON of the validated request.")
    decision: str | None = Field(default=None, description="The decision served (guard overrides).")
    model_decision: str | None = Field(default=None, description="The model's own decision, when the guard "
                                       "replaced or refused it.")
    violated_principles: list[str] = Field(default_factory=list, description="Critical principles the model's "
                                           "decision violated.")
    constitution_hash: str = Field(description="The constitution hash served.")
    requested_hash: str | None = Field(default=None, description="The hash the request named (hash mismatch).")
    model_sha256: str | None = Field(default=None, description="sha256 of the served weights.")


def body_digest(raw: bytes) -> str:
    """sha256 (hex) of the raw request body bytes."""
    return hashlib.sha256(raw).hexdigest()


def request_digest(request: BaseModel | Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a parsed request (sorted keys, no whitespace, UTF-8)."""
    data = request.model_dump(mode="json") if isinstance(request, BaseModel) else dict(request)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write(record: AuditRecord, metrics: ReplicaMetrics | None = None) -> AuditRecord:
    """Write ``record`` as one JSON line to ``acgs.audit`` and count it by (kind, reason)."""
    log.info(record.model_dump_json())
    if metrics is not None:
        metrics.audit(record.kind, record.reason)
    return record


class _StderrHandler(logging.Handler):
    """The bare JSON line to the current ``sys.stderr`` (looked up per line: a test or Serve may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def ensure_handler() -> None:
    """Make audit lines visible where nothing else would show them: when neither ``acgs.audit`` nor an
    ancestor has a handler (a Ray worker configures none for the root logger), write each line, bare, to
    stderr (a Ray worker's ``.err`` log). Idempotent; a configured logging setup is left as it is."""
    if not log.hasHandlers():
        handler = _StderrHandler(logging.INFO)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


def _hash_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and _HASH.match(value) else None


@dataclass(frozen=True)
class Auditor:
    """What one replica serves (the constant part of its audit lines) and its counters."""

    deployment: str
    component: str
    constitution_hash: str
    model_sha256: str | None = None
    metrics: ReplicaMetrics | None = None

    def _record(self, **fields: Any) -> AuditRecord:
        return AuditRecord(ts=now(), deployment=self.deployment, component=self.component,
                           constitution_hash=self.constitution_hash, model_sha256=self.model_sha256, **fields)

    def refusal(self, error: ServingError, *, route: str | None = None, body: bytes | None = None) -> AuditRecord:
        """Audit a refusal of the errors table; ``body`` is the raw body when it was read (never logged)."""
        fields: dict[str, Any] = {}
        if body is not None:
            fields.update(request_digest=body_digest(body), digest_of="body")
        if isinstance(error, ConstitutionHashMismatch):
            fields["requested_hash"] = _hash_or_none(error.requested)
        if isinstance(error, NoCompliantDecision):
            fields.update(violated_principles=list(error.violations), model_decision=error.model_decision)
        return write(self._record(kind=REFUSAL, reason=error.reason, status=error.status_code, route=route,
                                  **fields), self.metrics)

    def override(self, request: BaseModel | Mapping[str, Any], *, decision: str, model_decision: str | None,
                 violated: Sequence[str], route: str | None = None) -> AuditRecord:
        """Audit a decision the runtime guard replaced (``decision`` was served instead of ``model_decision``)."""
        return write(self._record(
            kind=GUARD_OVERRIDE, reason=GUARD_OVERRIDE, status=OVERRIDE_STATUS, route=route,
            request_digest=request_digest(request), digest_of="request", decision=decision,
            model_decision=model_decision, violated_principles=list(violated),
        ), self.metrics)
