"""Constitution reconciliation as pure functions, against the real Rego engine."""

import hashlib
import json

import pytest
from pydantic import ValidationError

from acgs_operator.api.v1alpha1 import ConstitutionStatus
from acgs_operator.constitution import build as constitutions
from acgs_operator.events import Event
from acgs_operator.reasons import Reason

GOOD = 'package acgs.privacy\n\nviolation contains "pii exposed" if input.decision.exposes_pii\n'
BROKEN = "package acgs.broken\n\nviolation contains msg if {\n"


def spec(*modules: tuple[str, str]) -> dict:
    return {"principles": [{"id": pid, "severity": "critical", "rego": rego} for pid, rego in modules]}


def independent_hash(principles: list[dict]) -> str:
    filled = [{"description": "", "severity": "major", **p} for p in principles]
    canonical = json.dumps(filled, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_valid_constitution_hash_and_status() -> None:
    s = spec(("privacy", GOOD))
    verdict = constitutions.judge(s)
    assert verdict.valid and verdict.principles == 1
    assert verdict.hash == independent_hash(s["principles"])
    status = constitutions.status_for(verdict, 2, None, "2026-01-01T00:00:00Z").wire()
    assert status["phase"] == "Valid" and status["observedGeneration"] == 2 and status["hash"] == verdict.hash
    assert status["conditions"][0]["reason"] == "Compiled"


def test_compile_error_names_the_principle_and_keeps_the_engine_message() -> None:
    verdict = constitutions.judge(spec(("privacy", GOOD), ("broken", BROKEN)))
    assert not verdict.valid and set(verdict.errors) == {"broken"}
    status = constitutions.status_for(verdict, 1, None, "2026-01-01T00:00:00Z").wire()
    condition = status["conditions"][0]
    assert status["phase"] == "Invalid" and condition["status"] == "False"
    assert condition["reason"] == "CompileFailed" and "principle broken:" in condition["message"]


def test_hash_depends_on_order_and_content() -> None:
    a, b = ("privacy", GOOD), ("safety", GOOD.replace("privacy", "safety"))
    assert constitutions.judge(spec(a, b)).hash != constitutions.judge(spec(b, a)).hash


def test_malformed_spec_raises() -> None:
    with pytest.raises(ValidationError):
        constitutions.judge({"principles": [{"id": "Bad Id", "rego": GOOD}]})


NOW = "2026-01-01T00:00:00Z"


def test_decide_valid_first_time() -> None:
    verdict = constitutions.judge(spec(("privacy", GOOD)))
    d = constitutions.decide(verdict, ConstitutionStatus(), 1, NOW)
    assert d.status.wire() == {
        "phase": "Valid",
        "hash": verdict.hash,
        "principles": 1,
        "hashAliases": [],
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Valid",
                "status": "True",
                "reason": "Compiled",
                "message": "all 1 principles compile in the Rego engine",
                "lastTransitionTime": NOW,
                "observedGeneration": 1,
            }
        ],
    }
    message = f"all 1 principles compile in the Rego engine; hash {verdict.hash}"
    assert d.events == (Event.normal(Reason.COMPILED, message),)
    assert d.result == "valid"


def test_decide_hash_change_and_compile_failure() -> None:
    verdict = constitutions.judge(spec(("privacy", GOOD), ("broken", BROKEN)))
    current = ConstitutionStatus.model_validate({"hash": "0123456789abcdef", "phase": "Valid", "observedGeneration": 1})
    d = constitutions.decide(verdict, current, 2, NOW)
    assert d.status.phase == "Invalid" and d.status.hash == verdict.hash and d.result == "compile_failed"
    assert [(e.type, e.reason) for e in d.events] == [
        ("Warning", Reason.COMPILE_FAILED),
        ("Normal", Reason.HASH_CHANGED),
    ]
    assert d.events[1].message == f"constitution hash 0123456789abcdef -> {verdict.hash}"


def test_decide_invalid_spec_keeps_the_last_hash() -> None:
    current = ConstitutionStatus.model_validate({"hash": "0123456789abcdef", "principles": 3})
    d = constitutions.decide(constitutions.InvalidSpec("principles.0.id: bad"), current, 4, NOW)
    wire = d.status.wire()
    assert "hash" not in wire and "principles" not in wire, "merge-patch keeps the last good hash"
    assert wire["phase"] == "Invalid" and wire["conditions"][0]["reason"] == "InvalidSpec"
    assert d.events == (Event.warning(Reason.INVALID_SPEC, "principles.0.id: bad"),) and d.result == "invalid"


ALIAS, OTHER_ALIAS = "cdd01ef066bc6cf2", "00112233aabbccdd"


def with_aliases(*aliases: str) -> dict:
    return {**spec(("privacy", GOOD)), "hashAliases": list(aliases)}


def test_aliases_are_listed_in_status_and_do_not_change_the_hash() -> None:
    plain, aliased = constitutions.judge(spec(("privacy", GOOD))), constitutions.judge(with_aliases(ALIAS))
    assert aliased.hash == plain.hash, "the hash is computed over spec.principles only"
    assert aliased.aliases == (ALIAS,) and plain.aliases == ()
    d = constitutions.decide(aliased, ConstitutionStatus(), 1, NOW)
    assert d.status.wire()["hashAliases"] == [ALIAS] and d.status.hash == plain.hash
    assert [e.reason for e in d.events] == [Reason.COMPILED], "no alias event on the first check"


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (None, (ALIAS,), f"hash aliases [] -> [{ALIAS}]"),  # a status written before aliases existed
        ([ALIAS], (ALIAS, OTHER_ALIAS), f"hash aliases [{ALIAS}] -> [{ALIAS}, {OTHER_ALIAS}]"),
        ([ALIAS, OTHER_ALIAS], (), f"hash aliases [{ALIAS}, {OTHER_ALIAS}] -> []"),
    ],
    ids=["added", "another", "removed"],
)
def test_decide_alias_change_is_an_event(before: list[str] | None, after: tuple[str, ...], message: str) -> None:
    verdict = constitutions.judge(with_aliases(*after))
    current = ConstitutionStatus(hash=verdict.hash, phase="Valid", observed_generation=1, hash_aliases=before)
    d = constitutions.decide(verdict, current, 2, NOW)
    assert d.events[1:] == (Event.normal(Reason.HASH_ALIASES_CHANGED, message),), "the hash itself did not change"
    assert d.status.wire()["hashAliases"] == list(after), "[] is written: a merge patch drops removed aliases"


@pytest.mark.parametrize("before", [None, []], ids=["unset", "empty"])
def test_decide_without_alias_change_has_no_alias_event(before: list[str] | None) -> None:
    verdict = constitutions.judge(spec(("privacy", GOOD)))
    current = ConstitutionStatus(hash=verdict.hash, phase="Valid", observed_generation=1, hash_aliases=before)
    assert [e.reason for e in constitutions.decide(verdict, current, 2, NOW).events] == [Reason.COMPILED]


@pytest.mark.parametrize(
    ("aliases", "error"),
    [
        (["CDD01EF066BC6CF2"], "should match pattern"),
        (["cdd01ef066bc6cf"], "at least 16 characters"),
        ([ALIAS, ALIAS], "duplicate hash aliases: cdd01ef066bc6cf2"),
        ([f"{i:016x}" for i in range(17)], "at most 16 items"),
    ],
    ids=["uppercase", "short", "duplicate", "too-many"],
)
def test_malformed_aliases_are_refused_naming_the_field(aliases: list[str], error: str) -> None:
    with pytest.raises(ValidationError, match="hashAliases") as raised:
        constitutions.judge(with_aliases(*aliases))
    assert error in str(raised.value)


def entry(status: dict, generation: int = 1) -> dict:
    return {"spec": spec(("privacy", GOOD)), "status": status, "generation": generation}


VALID = {"type": "Valid", "status": "True", "reason": "Compiled", "message": ""}


@pytest.mark.parametrize(
    ("index_entry", "why"),
    [
        (None, "Constitution default not found"),
        (entry({}), "Constitution default has not been checked yet"),
        (
            entry({"hash": "cdd01ef066bc6cf2", "observedGeneration": 1, "conditions": [VALID]}, generation=2),
            "Constitution default has not been checked yet",
        ),
        (
            entry({"observedGeneration": 1, "conditions": [{**VALID, "status": "False", "message": "principle x"}]}),
            "Constitution default is not Valid: principle x",
        ),
    ],
    ids=["missing", "unchecked", "stale", "invalid"],
)
def test_resolve_refuses(index_entry: dict | None, why: str) -> None:
    assert constitutions.resolve(index_entry, "default") == (None, why)


def test_resolve_a_valid_constitution() -> None:
    status = {"hash": "cdd01ef066bc6cf2", "observedGeneration": 1, "conditions": [VALID], "kopf": {"x": 1}}
    snapshot, why = constitutions.resolve(entry(status), "default")
    assert why == "" and snapshot is not None
    assert snapshot.name == "default" and snapshot.hash == "cdd01ef066bc6cf2"
    assert [p.id for p in snapshot.principles] == ["privacy"]


def test_resolve_carries_the_aliases_into_the_snapshot() -> None:
    status = {"hash": "cd5ebfe6b284d24b", "observedGeneration": 1, "conditions": [VALID], "hashAliases": [ALIAS]}
    snapshot, _ = constitutions.resolve({"spec": with_aliases(ALIAS), "status": status, "generation": 1}, "default")
    assert snapshot is not None and snapshot.hash == "cd5ebfe6b284d24b" and snapshot.hash_aliases == [ALIAS]
    assert snapshot.wire()["hashAliases"] == [ALIAS] and snapshot.accepted_hashes == ("cd5ebfe6b284d24b", ALIAS)
    plain, _ = constitutions.resolve(entry({**status, "hashAliases": []}), "default")
    assert plain is not None and plain.hash_aliases == []


@pytest.mark.parametrize(
    ("index_entry", "rechecking"),
    [
        (None, False),
        (entry({}), False),  # never checked: resolve says so, and a deployment is Blocked until it is
        (entry({"hash": "cdd01ef066bc6cf2", "observedGeneration": 1, "conditions": [VALID]}), False),
        (entry({"hash": "cdd01ef066bc6cf2", "observedGeneration": 1, "conditions": [VALID]}, generation=2), True),
    ],
    ids=["missing", "unchecked", "checked", "edited"],
)
def test_rechecking_is_an_edit_not_yet_checked(index_entry: dict | None, rechecking: bool) -> None:
    assert constitutions.rechecking(index_entry) is rechecking
