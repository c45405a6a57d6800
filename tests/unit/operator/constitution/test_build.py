"""Constitution reconciliation as pure functions, against the real Rego engine."""

import hashlib
import json

import pytest
from pydantic import ValidationError

from acgs_operator.constitution import build as constitutions

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
    status = constitutions.status_for(verdict, 2, None, "2026-01-01T00:00:00Z")
    assert status["phase"] == "Valid" and status["observedGeneration"] == 2 and status["hash"] == verdict.hash
    assert status["conditions"][0]["reason"] == "Compiled"


def test_compile_error_names_the_principle_and_keeps_the_engine_message() -> None:
    verdict = constitutions.judge(spec(("privacy", GOOD), ("broken", BROKEN)))
    assert not verdict.valid and set(verdict.errors) == {"broken"}
    status = constitutions.status_for(verdict, 1, None, "2026-01-01T00:00:00Z")
    condition = status["conditions"][0]
    assert status["phase"] == "Invalid" and condition["status"] == "False"
    assert condition["reason"] == "CompileFailed" and "principle broken:" in condition["message"]


def test_hash_depends_on_order_and_content() -> None:
    a, b = ("privacy", GOOD), ("safety", GOOD.replace("privacy", "safety"))
    assert constitutions.judge(spec(a, b)).hash != constitutions.judge(spec(b, a)).hash


def test_malformed_spec_raises() -> None:
    with pytest.raises(ValidationError):
        constitutions.judge({"principles": [{"id": "Bad Id", "rego": GOOD}]})
