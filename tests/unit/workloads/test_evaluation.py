"""Evaluation: metrics against hand-computed values, compliance reports, gates and latency."""

from __future__ import annotations

import numpy as np
import pytest

from acgs_workloads.constitution import ConstitutionEvaluator
from acgs_workloads.contract import ComplianceReport, GatesSpec, TrainingMetrics
from acgs_workloads.evaluation import classification_metrics, compliance_report, gate_verdict, latency_profile

pytestmark = pytest.mark.unit


def test_macro_metrics_by_hand() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    m = classification_metrics(y_true, y_pred)
    # class 0: p 1/2 r 1/2; class 1: p 2/3 r 1; class 2: p 1 r 1/2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    f1 = [0.5, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert m["f1"] == pytest.approx(sum(f1) / 3)
    assert classification_metrics(np.array([1]), np.array([2]))["precision"] == 0.0
    with pytest.raises(ValueError):
        classification_metrics(np.array([]), np.array([]))


def test_compliance_report_counts_per_principle(evaluator: ConstitutionEvaluator) -> None:
    request = {"contains_pii": True, "consent": False, "risk_level": "critical", "has_audit_trail": True,
               "explanation_provided": True, "protected_attribute_used": False, "human_oversight_available": True,
               "automated": False, "harm_score": 0.1}
    decisions = [
        {"component": "constitutional-ai", "decision": "deny", "safeguards": [], "request": request},
        {"component": "constitutional-ai", "decision": "approve", "safeguards": [], "request": request},
    ]
    report = compliance_report(evaluator, decisions, 0.9)
    assert report.score == 0.5 and not report.passed and report.evaluated_examples == 2
    counts = {v.principle: v.count for v in report.violations}
    assert counts["privacy"] == 1 and counts["safety"] == 1 and counts["fairness"] == 0


def test_gates() -> None:
    compliance = ComplianceReport(constitution_hash="0" * 16, score=0.95, threshold=0.9, passed=True,
                                  evaluated_examples=10)
    metrics = TrainingMetrics(accuracy=0.8, f1=0.7, p99_latency_ms=12.0)
    assert gate_verdict(GatesSpec(), metrics, compliance).passed
    verdict = gate_verdict(GatesSpec(min_accuracy=0.9, min_f1=0.5, min_compliance=0.99, max_p99_latency_ms=10),
                           metrics, compliance)
    assert not verdict.passed and len(verdict.failures) == 3
    assert any("accuracy" in f for f in verdict.failures) and any("p99" in f for f in verdict.failures)


def test_latency_profile_times_real_calls() -> None:
    calls: list[object] = []

    def echo(request: object) -> object:
        calls.append(request)
        return request

    profile = latency_profile(echo, [{"i": i} for i in range(20)])
    assert len(calls) == 21 and profile.requests == 20
    assert 0 < profile.p50_ms <= profile.p99_ms and profile.throughput_rps > 0
