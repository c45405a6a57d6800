"""The constitution hash: a stable digest of ``spec.principles`` (torch-free; the operator imports it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from acgs_workloads.contract import Principle


def as_principles(principles: Sequence[Principle] | Sequence[dict[str, Any]]) -> list[Principle]:
    """Validate ``principles`` (models or camelCase/snake_case dicts) into ``Principle`` models."""
    return [p if isinstance(p, Principle) else Principle.model_validate(p) for p in principles]


def canonical_json(principles: Sequence[Principle] | Sequence[dict[str, Any]]) -> str:
    """The canonical JSON of ``spec.principles``: wire dicts with defaults filled, sorted keys, no spaces."""
    wire = [p.wire() for p in as_principles(principles)]
    return json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def constitution_hash(principles: Sequence[Principle] | Sequence[dict[str, Any]]) -> str:
    """First 16 hex chars of sha256 over the canonical JSON of ``principles`` (order matters)."""
    return hashlib.sha256(canonical_json(principles).encode("utf-8")).hexdigest()[:16]
