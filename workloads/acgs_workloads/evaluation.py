"""Evaluation of a trained component: classification metrics, constitutional compliance (batched Rego),
latency/throughput of the served model (:class:`~acgs_workloads.serving.model.ServedModel` with the runtime
guard, exactly what a model server runs per request), and gate verdicts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acgs_workloads.constitution import ConstitutionEvaluator, compliance_share, violation_counts
from acgs_workloads.contract import (
    ComplianceReport,
    ConstitutionSnapshot,
    GateResult,
    GatesSpec,
    ModelSpec,
    TrainingMetrics,
    ViolationCount,
)

LATENCY_REQUESTS = 200


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over the classes present in ``y_true`` or ``y_pred``.

    A class never predicted has precision 0 (and never present, recall 0), as in scikit-learn's
    ``zero_division=0``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of equal shape")
    labels = np.union1d(y_true, y_pred)
    tp = np.array([np.sum((y_pred == c) & (y_true == c)) for c in labels], dtype=np.float64)
    predicted = np.array([np.sum(y_pred == c) for c in labels], dtype=np.float64)
    actual = np.array([np.sum(y_true == c) for c in labels], dtype=np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def compliance_report(evaluator: ConstitutionEvaluator, decisions: Sequence[Mapping[str, Any]],
                      threshold: float) -> ComplianceReport:
    """Share of decisions without any violation, with violation counts per principle (batched engine queries)."""
    results = evaluator.evaluate(decisions)
    score = compliance_share(results)
    counts = violation_counts(results, [p.id for p in evaluator.principles])
    return ComplianceReport(
        constitution_hash=evaluator.constitution.hash,
        score=round(score, 6),
        threshold=threshold,
        passed=score >= threshold,
        evaluated_examples=len(results),
        violations=[ViolationCount(principle=pid, count=n) for pid, n in counts.items()],
    )


@dataclass
class LatencyProfile:
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    p95_ms: float
    requests: int


def latency_profile(predict: Callable[[Any], Any], requests: Sequence[Mapping[str, Any]]) -> LatencyProfile:
    """Time ``predict`` on each request (one call each, after one warm-up call)."""
    if not requests:
        raise ValueError("latency_profile needs at least one request")
    predict(requests[0])
    samples = np.empty(len(requests), dtype=np.float64)
    start = time.perf_counter()
    for i, request in enumerate(requests):
        t0 = time.perf_counter()
        predict(request)
        samples[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return LatencyProfile(
        p50_ms=float(np.percentile(samples, 50) * 1e3),
        p99_ms=float(np.percentile(samples, 99) * 1e3),
        p95_ms=float(np.percentile(samples, 95) * 1e3),
        throughput_rps=float(len(requests) / total) if total > 0 else 0.0,
        requests=len(requests),
    )


def gate_verdict(gates: GatesSpec, metrics: TrainingMetrics, compliance: ComplianceReport) -> GateResult:
    """Check every set gate; one failure line per gate missed."""
    failures: list[str] = []

    def below(name: str, value: float | None, minimum: float | None) -> None:
        if minimum is None:
            return
        if value is None or value < minimum:
            failures.append(f"{name} {value if value is None else round(value, 4)} < minimum {minimum}")

    below("accuracy", metrics.accuracy, gates.min_accuracy)
    below("f1", metrics.f1, gates.min_f1)
    below("compliance", compliance.score, gates.min_compliance)
    if gates.max_p99_latency_ms is not None and (
        metrics.p99_latency_ms is None or metrics.p99_latency_ms > gates.max_p99_latency_ms
    ):
        failures.append(f"p99 latency {metrics.p99_latency_ms} ms > maximum {gates.max_p99_latency_ms} ms")
    return GateResult(passed=not failures, failures=failures)


@dataclass
class EvaluationResult:
    metrics: TrainingMetrics
    compliance: ComplianceReport
    gates: GateResult
    latency: LatencyProfile
    label_agreement: float
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_component(
    component: Any,
    model: Any,
    spec: ModelSpec,
    test: Mapping[str, np.ndarray],
    constitution: ConstitutionSnapshot,
    gates: GatesSpec,
    *,
    loss: float | None = None,
    samples_per_second: float | None = None,
    evaluator: ConstitutionEvaluator | None = None,
) -> EvaluationResult:
    """Everything a run reports about a trained model on its held-out split."""
    import torch

    from acgs_workloads.components.base import predict_arrays
    from acgs_workloads.constitution import SERVING_CACHE_SIZE
    from acgs_workloads.serving.model import ServedModel

    cols = dict(test)
    component.prepare_for_inference(model)
    predicted, _ = predict_arrays(model, component.inputs(cols, spec), component.input_dtype,
                                  classes=len(component.classes))
    scores = classification_metrics(cols["label"], predicted)
    evaluator = evaluator or ConstitutionEvaluator(constitution)
    compliance = compliance_report(evaluator, component.decisions(cols, predicted), gates.min_compliance)
    reference = evaluator.evaluate(component.decisions(cols, cols["label"]))
    # the latency gate measures what a model server runs per request: the served model and its runtime guard
    served = ServedModel(component).load_state(
        {k: v.detach().clone() for k, v in model.state_dict().items()}, spec, constitution.hash)
    guard = ConstitutionEvaluator(constitution, cache_size=SERVING_CACHE_SIZE)
    n = min(LATENCY_REQUESTS, len(predicted))
    latency = latency_profile(lambda request: served.predict(request, guard),
                              [component.request_for(cols, i, constitution.hash) for i in range(n)])
    metrics = TrainingMetrics(
        accuracy=round(scores["accuracy"], 6),
        precision=round(scores["precision"], 6),
        recall=round(scores["recall"], 6),
        f1=round(scores["f1"], 6),
        loss=loss,
        samples_per_second=samples_per_second,
        p99_latency_ms=round(latency.p99_ms, 4),
        p50_latency_ms=round(latency.p50_ms, 4),
        p95_latency_ms=round(latency.p95_ms, 4),
    )
    with torch.no_grad():
        extra = component.extra_metrics(model, cols, predicted, spec)
        language = getattr(component, "language_report", None)
        if language is not None:  # text components: held-out wordings, red-team and benign sets
            report = language(model, spec, constitution, served, guard)
            metrics = metrics.model_copy(update=report.metrics)
            extra.update(report.extra)
    return EvaluationResult(
        metrics=metrics,
        compliance=compliance,
        gates=gate_verdict(gates, metrics, compliance),
        latency=latency,
        label_agreement=compliance_share(reference),
        extra=extra,
    )
