"""The runtime guard and the constitution evaluator it uses (bundle + decision cache; real engine, default rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from acgs_workloads.components import get
from acgs_workloads.constitution import ConstitutionEvaluator, Violations
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec
from acgs_workloads.serving.guard import candidate_order, guard_batch

pytestmark = pytest.mark.unit

DECISIONS = ("approve", "approve_with_safeguards", "escalate", "deny")
CAI = get("constitutional-ai")


def columns(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    return CAI.generate(n, seed, ModelSpec())


def decisions_for(cols: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    def build(rows: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
        return CAI.decisions({k: v[rows] for k, v in cols.items()}, classes)
    return build


def test_batched_bundle_agrees_with_the_reference_path(constitution: ConstitutionSnapshot) -> None:
    cols = columns(240)
    predicted = np.random.default_rng(1).integers(0, 4, 240)
    decisions = CAI.decisions(cols, predicted)
    evaluator = ConstitutionEvaluator(constitution)
    assert evaluator.plan.per_decision == ()  # every default principle is batched
    reference = [evaluator.evaluate_one(d) for d in decisions]  # original modules, one query per decision
    queries = evaluator.stats.queries
    assert evaluator.evaluate(decisions) == reference
    assert evaluator.stats.queries == queries + 1  # one engine evaluation for the whole batch
    assert any(reference) and not all(reference)  # the sample has both clean and violating decisions


def test_cache_answers_repeats_exactly(constitution: ConstitutionSnapshot) -> None:
    cols = columns(50, seed=9)
    decisions = CAI.decisions(cols, np.zeros(50, dtype=np.int64))
    evaluator = ConstitutionEvaluator(constitution, cache_size=1000)
    first = evaluator.evaluate(decisions)
    queries = evaluator.stats.queries
    second = evaluator.evaluate(decisions)
    assert first == second
    assert evaluator.stats.queries == queries  # no new engine query
    assert evaluator.stats.hits >= evaluator.stats.evaluated  # every distinct decision answered from the cache


def test_small_cache_never_loses_answers(constitution: ConstitutionSnapshot) -> None:
    cols = columns(40, seed=11)
    decisions = CAI.decisions(cols, np.zeros(40, dtype=np.int64))
    reference = ConstitutionEvaluator(constitution).evaluate(decisions)
    tiny = ConstitutionEvaluator(constitution, cache_size=3)
    assert tiny.evaluate(decisions) == reference
    assert tiny.evaluate(decisions[::-1]) == reference[::-1]


def test_candidate_order() -> None:
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    assert candidate_order(DECISIONS, 0, probs) == [2, 3]  # governance: escalate, then deny
    assert candidate_order(DECISIONS, 2, probs) == [3]
    other = ("a", "b", "c")
    assert candidate_order(other, 1, np.array([0.5, 0.3, 0.2])) == [0, 2]  # most probable first
    assert candidate_order(other, 1, np.array([0.0, 0.9, 0.1])) == [2]  # masked classes are never chosen


def request_cols(**context: Any) -> dict[str, np.ndarray]:
    from acgs_workloads.components.constitutional_ai import ConstitutionalRequest

    request = ConstitutionalRequest(constitutional_hash="0" * 16, context=context)
    return CAI.columns_from_requests([request], ModelSpec())


@pytest.mark.parametrize(
    ("context", "model_says", "served", "principles"),
    [
        ({"protected_attribute_used": True, "risk_level": "medium"}, 0, 2, ["fairness"]),
        ({"contains_pii": True, "consent": False}, 0, 2, ["privacy"]),
        ({"risk_level": "critical"}, 0, 3, ["safety"]),  # escalate violates safety too -> deny
        ({"risk_level": "critical"}, 2, 3, ["safety"]),
        ({"contains_pii": True, "consent": True}, 0, 0, []),  # clean: served as is
        ({"automated": True}, 0, 0, []),  # transparency is major: reported, not overridden
    ],
)
def test_guard_decisions(evaluator: ConstitutionEvaluator, context: dict[str, Any], model_says: int, served: int,
                         principles: list[str]) -> None:
    cols = request_cols(**context)
    probs = np.full((1, 4), 0.25)
    [row] = guard_batch(evaluator, DECISIONS, decisions_for(cols), np.array([model_says]), probs)
    assert row.final == served
    assert row.critical == principles
    assert row.report.overridden == bool(principles)
    if principles:
        assert row.report.original_decision == DECISIONS[model_says]
        assert {v.principle for v in row.report.violations} >= set(principles)
        assert all(v.severity == "critical" for v in row.report.violations if v.principle in principles)
        assert not any(v.severity == "critical" for v in row.report.remaining)


def test_guard_reports_major_violations_without_override(evaluator: ConstitutionEvaluator) -> None:
    cols = request_cols(automated=True, explanation_provided=False)
    [row] = guard_batch(evaluator, DECISIONS, decisions_for(cols), np.array([0]), np.full((1, 4), 0.25))
    assert not row.report.overridden
    assert [v.principle for v in row.report.remaining] == ["transparency"]


class EverythingCritical:
    """A constitution under which every decision violates a critical principle."""

    def __init__(self) -> None:
        self.severity = {"absolute": "critical"}
        self.calls: list[int] = []

    def evaluate(self, decisions: Sequence[dict[str, Any]]) -> list[Violations]:
        self.calls.append(len(decisions))
        return [{"absolute": ["nothing is allowed"]} for _ in decisions]


def test_guard_refuses_when_nothing_is_compliant() -> None:
    cols = request_cols()
    fake = EverythingCritical()
    rows = guard_batch(fake, DECISIONS, decisions_for(cols), np.array([0]), np.full((1, 4), 0.25))
    assert rows[0].final == -1 and rows[0].report.overridden
    assert fake.calls == [1, 2]  # the batch, then the candidates (escalate, deny) in one more query


def test_guard_batches_queries(constitution: ConstitutionSnapshot) -> None:
    cols = columns(64, seed=21)
    evaluator = ConstitutionEvaluator(constitution, cache_size=0)
    predicted = np.zeros(64, dtype=np.int64)  # approve everything
    rows = guard_batch(evaluator, DECISIONS, decisions_for(cols), predicted, np.full((64, 4), 0.25))
    assert evaluator.stats.queries == 2  # decisions + all replacement candidates, whatever the batch size
    reference = ConstitutionEvaluator(constitution)
    finals = np.array([r.final for r in rows])
    served = reference.evaluate(CAI.decisions(cols, finals))
    assert not any(reference.critical(found) for found in served)  # nothing served violates a critical principle
    assert any(r.report.overridden for r in rows)


def test_cpu_unless_a_gpu_is_assigned_and_visible() -> None:
    import torch

    from acgs_workloads.serving.model import pick_device

    assert pick_device(False).type == "cpu"
    assert pick_device(True).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_serving_guard_is_the_cached_constitution_evaluator(constitution: ConstitutionSnapshot) -> None:
    from acgs_workloads.constitution import SERVING_CACHE_SIZE
    from acgs_workloads.contract import ModelAppArgs
    from acgs_workloads.serving.service import guard_evaluator

    args = ModelAppArgs.model_validate({"deployment": "a/b", "component": "constitutional-ai", "modelUri": "/x",
                                        "modelSha256": "a" * 64, "constitution": constitution.wire()})
    evaluator = guard_evaluator(args)
    assert isinstance(evaluator, ConstitutionEvaluator) and evaluator.cache_size == SERVING_CACHE_SIZE


def test_no_cache_keeps_nothing(constitution: ConstitutionSnapshot) -> None:
    decisions = CAI.decisions(columns(10, seed=3), np.zeros(10, dtype=np.int64))
    evaluator = ConstitutionEvaluator(constitution)  # cache_size=0: labels and evaluation
    evaluator.evaluate(decisions)
    evaluator.evaluate(decisions)
    assert evaluator.stats.hits == 0 and evaluator.stats.queries == 2


def test_engine_errors_are_readable() -> None:
    from acgs_workloads.constitution import RegoEvalError
    from acgs_workloads.constitution.engine import CompiledQuery, new_interpreter, query_json

    interpreter = new_interpreter({"x.rego": "package x\n\nimport rego.v1\n\ny := foo.bar(1)\n"})
    with pytest.raises(RegoEvalError, match=r"Function not found: foo\.bar"):
        query_json(interpreter, "data.x.y")
    assert query_json(interpreter, "data.x.nothing") is None
    with pytest.raises(RegoEvalError):
        CompiledQuery({}, "data.nope.x + ")
    compiled = CompiledQuery({"a.rego": "package a\n\nimport rego.v1\n\ndouble := input.n * 2\n"}, "data.a.double")
    assert [compiled.run({"n": n}) for n in (1, 2, 3)] == [2, 4, 6]
