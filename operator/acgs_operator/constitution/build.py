"""Constitution reconciliation as pure functions: spec -> verdict -> decision (status model and events).

The hash is computed over ``spec.principles`` only; ``spec.hashAliases`` (other hashes a served route accepts)
are listed in the status and travel with the snapshot, without changing the hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acgs_operator.api.v1alpha1 import ConstitutionSpec, ConstitutionStatus
from acgs_operator.conditions import Condition, find, set_condition
from acgs_operator.events import Event
from acgs_operator.reasons import ConditionType, Reason
from acgs_workloads.constitution import compile_errors, constitution_hash
from acgs_workloads.contract import ConstitutionSnapshot, Principle


@dataclass(frozen=True)
class ConstitutionVerdict:
    hash: str
    principles: int
    errors: Mapping[str, str]  # principle id -> engine message
    aliases: tuple[str, ...] = ()  # spec.hashAliases, in spec order

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
        aliases=tuple(parsed.hash_aliases),
    )


@dataclass(frozen=True)
class InvalidSpec:
    """A spec the engine cannot even read (the API server let it through): a permanent failure."""

    message: str


@dataclass(frozen=True)
class Decision:
    status: ConstitutionStatus  # what to merge into status
    events: tuple[Event, ...]
    result: str  # acgs_operator_reconciles_total{result}: valid, compile_failed, invalid


def status_for(
    verdict: ConstitutionVerdict, generation: int | None, conditions: Sequence[Condition] | None, now: str
) -> ConstitutionStatus:
    reason = Reason.COMPILED if verdict.valid else Reason.COMPILE_FAILED
    return ConstitutionStatus(
        phase="Valid" if verdict.valid else "Invalid",
        hash=verdict.hash,
        principles=verdict.principles,
        hash_aliases=list(verdict.aliases),  # [] when none: a merge patch must drop removed aliases
        observed_generation=generation,
        conditions=set_condition(
            conditions, ConditionType.VALID, verdict.valid, reason, verdict.message, generation, now
        ),
    )


def invalid_status(
    message: str, generation: int | None, conditions: Sequence[Condition] | None, now: str
) -> ConstitutionStatus:
    return ConstitutionStatus(
        phase="Invalid",
        observed_generation=generation,
        conditions=set_condition(
            conditions, ConditionType.VALID, False, Reason.INVALID_SPEC, message, generation, now
        ),
    )


def decide(
    seen: ConstitutionVerdict | InvalidSpec, current: ConstitutionStatus, generation: int | None, now: str
) -> Decision:
    """Status and events for a judged spec (pure); ``current`` is the status read back."""
    if isinstance(seen, InvalidSpec):
        return Decision(
            status=invalid_status(seen.message, generation, current.conditions, now),
            events=(Event.warning(Reason.INVALID_SPEC, seen.message),),
            result="invalid",
        )
    verdict = seen
    if verdict.valid:
        judged = Event.normal(Reason.COMPILED, f"{verdict.message}; hash {verdict.hash}")
    else:
        judged = Event.warning(Reason.COMPILE_FAILED, verdict.message)
    changed = []
    if current.hash and current.hash != verdict.hash:
        changed.append(Event.normal(Reason.HASH_CHANGED, f"constitution hash {current.hash} -> {verdict.hash}"))
    if current.hash and list(current.hash_aliases or ()) != list(verdict.aliases):
        changed.append(
            Event.normal(
                Reason.HASH_ALIASES_CHANGED,
                f"hash aliases {_aliases(current.hash_aliases or ())} -> {_aliases(verdict.aliases)}",
            )
        )
    return Decision(
        status=status_for(verdict, generation, current.conditions, now),
        events=(judged, *changed),
        result="valid" if verdict.valid else "compile_failed",
    )


def _aliases(aliases: Sequence[str]) -> str:
    return "[" + ", ".join(aliases) + "]"


def rechecking(entry: Mapping[str, Any] | None) -> bool:
    """A Constitution that was checked (it has a hash) and has been edited since: its handler has not checked
    the new generation yet. Callers wait for that check instead of acting on the gap (a second or so)."""
    if entry is None:
        return False
    status = ConstitutionStatus.model_validate(entry.get("status") or {})
    return status.hash is not None and status.observed_generation != entry.get("generation")


def resolve(entry: Mapping[str, Any] | None, name: str) -> tuple[ConstitutionSnapshot | None, str]:
    """A Valid, up-to-date Constitution as a snapshot; otherwise None and why not.

    ``entry`` is what the constitutions index holds: ``{"spec", "status", "generation"}``.
    """
    if entry is None:
        return None, f"Constitution {name} not found"
    status = ConstitutionStatus.model_validate(entry.get("status") or {})
    valid = find(status.conditions, ConditionType.VALID)
    if status.observed_generation != entry.get("generation") or valid is None:
        return None, f"Constitution {name} has not been checked yet"
    if valid.status != "True":
        return None, f"Constitution {name} is not Valid: {valid.message}"
    if status.hash is None:  # Valid is written with the hash, in one patch
        return None, f"Constitution {name} has not been checked yet"
    spec = entry.get("spec") or {}
    principles = [Principle.model_validate(p) for p in spec.get("principles", [])]
    aliases = list(spec.get("hashAliases") or [])
    return ConstitutionSnapshot(name=name, hash=status.hash, principles=principles, hash_aliases=aliases), ""
