"""The constitution package: hash, compilation, loader, default manifest, batched evaluation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from acgs_workloads.constitution import (
    ConstitutionEvaluator,
    canonical_json,
    compile_errors,
    compiler,
    constitution_hash,
    load_constitution,
)
from acgs_workloads.constitution.loader import default_constitution_text
from acgs_workloads.constitution.rewrite import batch_module, calls, statements
from acgs_workloads.contract import ConstitutionSnapshot, Principle

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
GOOD = 'package acgs.p\n\nimport rego.v1\n\nviolation contains msg if {\n\tinput.x > 1\n\tmsg := "big"\n}\n'


def test_hash_is_sha256_prefix_of_canonical_wire_json_with_defaults() -> None:
    principles = [{"id": "p", "rego": GOOD}]
    expected = json.dumps(
        [{"description": "", "id": "p", "rego": GOOD, "severity": "major"}],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    assert canonical_json(principles) == expected
    assert constitution_hash(principles) == hashlib.sha256(expected.encode()).hexdigest()[:16]
    assert constitution_hash([Principle(id="p", rego=GOOD)]) == constitution_hash(principles)


def test_hash_changes_with_content_and_order() -> None:
    a = {"id": "a", "rego": GOOD}
    b = {"id": "b", "rego": GOOD.replace("acgs.p", "acgs.b")}
    assert constitution_hash([a, b]) != constitution_hash([b, a])
    assert constitution_hash([a]) != constitution_hash([{**a, "severity": "critical"}])


def test_compile_errors_reports_engine_messages() -> None:
    errors = compile_errors([
        {"id": "good", "rego": GOOD},
        {"id": "syntax", "rego": "package acgs.s\nviolation contains msg if {\n  input.x ==\n}\n"},
        {"id": "nopkg", "rego": "violation contains 1 if { true }"},
        {"id": "unknown-fn", "rego": 'package acgs.u\nviolation contains m if { m := nope(1) }\n'},
        {"id": "no-violation", "rego": "package acgs.n\nx := 1\n"},
        {"id": "dup", "rego": GOOD},
    ])
    assert set(errors) == {"syntax", "nopkg", "unknown-fn", "no-violation", "dup"}
    assert "syntax.rego:3" in errors["syntax"]
    assert "nope" in errors["unknown-fn"]
    assert compile_errors([{"id": "good", "rego": GOOD}]) == {}


def test_engine_orders_numbers_as_text_in_min_max_and_sort() -> None:
    # rego-cpp (regopy 1.5.2) gives min([5, 20]) == 20. When an engine upgrade fixes it, this fails: the
    # compile check then lets these built-ins through again, and the README's note on them is stale.
    assert compiler.misordering_builtins() == ("min", "max", "sort")


def test_modules_calling_a_misordering_builtin_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "misordering_builtins", lambda: ("min", "sort"))
    capped = GOOD.replace("input.x > 1", "min([input.x, 20]) > 1")
    errors = compile_errors([{"id": "capped", "rego": capped}])
    assert "`min`" in errors["capped"] and "`<` or `>`" in errors["capped"]
    # named only in a string or a comment, or as a field, it is not a call
    quoted = GOOD.replace('msg := "big"', 'msg := "min(1, 2) is big" # sort(x)\n\tinput.sort == 1')
    assert compile_errors([{"id": "quoted", "rego": quoted}]) == {}


def test_calls_finds_builtin_calls_in_code_only() -> None:
    assert calls("x := min([1, 2])", "min")
    assert calls("x := min ([1, 2])", "min")
    assert not calls("x := mins([1])", "min")
    assert not calls("x := input.min(1)", "min")
    assert not calls('x := "min(1)"  # min(2)', "min")


def test_default_constitution_compiles_and_manifest_is_identical(constitution: ConstitutionSnapshot) -> None:
    assert (ROOT / "manifests" / "constitution.yaml").read_text() == default_constitution_text()
    assert compile_errors(constitution.principles) == {}
    ids = {p.id for p in constitution.principles}
    assert {"privacy", "transparency", "accountability", "fairness", "safety"} <= ids
    assert constitution.hash == constitution_hash(constitution.principles)
    assert load_constitution(ROOT / "manifests" / "constitution.yaml") == constitution


def test_load_constitution_refuses_other_kinds() -> None:
    with pytest.raises(ValueError, match="kind"):
        load_constitution("apiVersion: acgs.io/v1alpha1\nkind: TrainingJob\nspec: {principles: []}\n")


def test_statements_split_top_level_rules() -> None:
    src = 'package a\n\nimport rego.v1\n\nx := {"a": "}"}\n\nviolation contains m if {\n\tx.a == "}"\n\tm := "y"\n}\n'
    assert [s.split()[0] for s in statements(src)] == ["package", "import", "x", "violation"]


def test_rewrite_turns_input_rules_into_functions() -> None:
    src = ('package acgs.h\n\nimport rego.v1\n\nrisky if input.risk > 2\n\n'
           'limit := 3\n\nviolation contains msg if {\n\trisky\n\tinput.n > limit\n\tmsg := "input too big"\n}\n')
    out = batch_module(src, "acgs_batch.h")
    assert out is not None
    assert "risky(acgs_input_) if" in out
    assert "acgs_input_.n > limit" in out
    assert '"input too big"' in out  # strings untouched


def test_batched_equals_per_decision_with_helpers() -> None:
    principles = [
        Principle(id="h", rego='package acgs.h\n\nimport rego.v1\n\nrisky if input.risk > 2\n\n'
                  'violation contains msg if {\n\trisky\n\tinput.ok != true\n'
                  '\tmsg := sprintf("r%v", [input.risk])\n}\n'),
        Principle(id="v", rego='package acgs.v\n\nimport rego.v1\n\nviolation contains "neg" if input.n < 0\n'),
    ]
    snapshot = ConstitutionSnapshot(name="t", hash=constitution_hash(principles), principles=principles)
    evaluator = ConstitutionEvaluator(snapshot)
    assert evaluator.plan.per_decision == ()
    decisions = [{"risk": r, "ok": r % 2 == 0, "n": r - 3} for r in range(7)]
    batched = evaluator.evaluate(decisions)
    assert batched == [evaluator.evaluate_one(d) for d in decisions]
    assert batched[3] == {"h": ["r3"]}
    assert batched[0] == {"v": ["neg"]}


def test_unsupported_module_falls_back_to_per_decision() -> None:
    principles = [Principle(id="w", rego='package acgs.w\n\nimport rego.v1\n\n'
                            'default risky := false\n\nrisky := true if input.r > 1\n\n'
                            'violation contains "r" if risky\n')]
    snapshot = ConstitutionSnapshot(name="t", hash=constitution_hash(principles), principles=principles)
    evaluator = ConstitutionEvaluator(snapshot)
    decisions = [{"r": 0}, {"r": 2}]
    assert evaluator.evaluate(decisions) == [evaluator.evaluate_one(d) for d in decisions]
    assert evaluator.evaluate(decisions)[1] == {"w": ["r"]}


def test_default_constitution_batched_equals_per_decision(evaluator: ConstitutionEvaluator) -> None:
    from acgs_workloads.components import get, names
    from acgs_workloads.contract import ModelSpec

    decisions = []
    for name in names():
        component = get(name)
        cols = component.generate(20, 3, ModelSpec())
        shuffled = cols["label"][::-1].copy()  # other labels than the reference: violations happen
        decisions += component.decisions(cols, shuffled) + component.decisions(cols, cols["label"])
    batched = evaluator.evaluate(decisions)
    assert batched == [evaluator.evaluate_one(d) for d in decisions]
    assert sum(1 for b in batched if b) > 10
