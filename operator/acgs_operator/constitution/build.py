"""Constitution reconciliation as pure functions: spec -> verdict -> status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acgs_operator.api.v1alpha1 import ConstitutionSpec
from acgs_operator.conditions import Condition, set_condition
from acgs_operator.reasons import ConditionType, Reason
from acgs_workloads.constitution import compile_errors, constitution_hash
from acgs_workloads.contract import ConstitutionSnapshot, Principle


@dataclass(frozen=True)
class ConstitutionVerdict:
    hash: str
    principles: int
    errors: Mapping[str, str]  # principle id -> engine message

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def message(self) -> str:
        if self.valid:
            return f"all {self.principles} principles compile in the Rego engine"
        return "; ".join(f"principle {pid}: {err}" for pid, err in sorted(self.errors.items()))


def judge(spec: Mapping[str, Any]) -> ConstitutionVerdict:
    """Compile every principle in the real Rego engine and hash the principles.

    Raises pydantic's ValidationError when the spec itself is malformed.
    """
    parsed = ConstitutionSpec.model_validate(spec)
    return ConstitutionVerdict(
        hash=constitution_hash(parsed.principles),
        principles=len(parsed.principles),
        errors=compile_errors(parsed.principles),
    )


def status_for(
    verdict: ConstitutionVerdict, generation: int | None, conditions: Sequence[Condition] | None, now: str
) -> dict[str, Any]:
    reason = Reason.COMPILED if verdict.valid else Reason.COMPILE_FAILED
    return {
        "phase": "Valid" if verdict.valid else "Invalid",
        "hash": verdict.hash,
        "principles": verdict.principles,
        "observedGeneration": generation,
        "conditions": set_condition(
            conditions, ConditionType.VALID, verdict.valid, reason, verdict.message, generation, now
        ),
    }


def invalid_status(
    message: str, generation: int | None, conditions: Sequence[Condition] | None, now: str
) -> dict[str, Any]:
    return {
        "phase": "Invalid",
        "observedGeneration": generation,
        "conditions": set_condition(
            conditions, ConditionType.VALID, False, Reason.INVALID_SPEC, message, generation, now
        ),
    }


def resolve(entry: Mapping[str, Any] | None, name: str) -> tuple[ConstitutionSnapshot | None, str]:
    """A Valid, up-to-date Constitution as a snapshot; otherwise None and why not.

    ``entry`` is what the constitutions index holds: ``{"spec", "status", "generation"}``.
    """
    if entry is None:
        return None, f"Constitution {name} not found"
    status, generation = entry.get("status") or {}, entry.get("generation")
    valid = next((c for c in status.get("conditions") or [] if c.get("type") == ConditionType.VALID), None)
    if status.get("observedGeneration") != generation or valid is None:
        return None, f"Constitution {name} has not been checked yet"
    if valid.get("status") != "True":
        return None, f"Constitution {name} is not Valid: {valid.get('message', '')}"
    principles = [Principle.model_validate(p) for p in (entry.get("spec") or {}).get("principles", [])]
    return ConstitutionSnapshot(name=name, hash=status["hash"], principles=principles), ""
