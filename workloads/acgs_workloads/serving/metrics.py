"""Serving metrics: per-replica counters as plain JSON snapshots, merged by the platform into Prometheus text.

A replica has no ``/metrics`` route of its own: its counters (the decision audit's
``acgs_audit_events_total{kind,reason}`` included) reach Prometheus through the platform's ``GET /metrics``
(:meth:`ReplicaMetrics.prometheus` renders one replica alone, for tests and debugging).

Each ModelServer replica keeps cumulative counters (:class:`ReplicaMetrics`) and pushes its snapshot to
the platform application; the platform keeps the latest snapshot per replica (so counts of a replica
that died are kept, not reset) and renders the sum with :func:`render_prometheus`.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# seconds; the last bucket (+Inf) is implicit
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
Snapshot = dict[str, Any]


class ReplicaMetrics:
    """Cumulative request, latency, refusal and guard counters of one replica (thread-safe)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # route -> [bucket counts..., +Inf count, sum]
        self._refusals: dict[str, int] = {}
        self._overrides: dict[str, int] = {}
        self._decisions: dict[str, int] = {}
        self._models: dict[str, int] = {}  # predictions answered, by model ("primary", "canary")
        self._audit: dict[tuple[str, str], int] = {}  # (kind, reason) of the audit lines written

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (route, int(code))
            self._requests[key] = self._requests.get(key, 0) + 1
            row = self._latency.get(route)
            if row is None:
                row = self._latency[route] = [0.0] * (len(self.buckets) + 2)
            row[bisect.bisect_left(self.buckets, seconds)] += 1
            row[-1] += seconds

    def refusal(self, reason: str) -> None:
        with self._lock:
            self._refusals[reason] = self._refusals.get(reason, 0) + 1

    def override(self, principles: Iterable[str]) -> None:
        with self._lock:
            for principle in principles:
                self._overrides[principle] = self._overrides.get(principle, 0) + 1

    def decision(self, label: str) -> None:
        with self._lock:
            self._decisions[label] = self._decisions.get(label, 0) + 1

    def answered_by(self, model: str, n: int = 1) -> None:
        """``n`` predictions answered by ``model`` ("primary" or "canary")."""
        with self._lock:
            self._models[model] = self._models.get(model, 0) + n

    def audit(self, kind: str, reason: str) -> None:
        """One audit line written (:mod:`.audit`): a guard override or a refusal, by reason."""
        with self._lock:
            key = (kind, reason)
            self._audit[key] = self._audit.get(key, 0) + 1

    def prometheus(self, app: str = "replica") -> str:
        """This replica's counters alone, as Prometheus text (the platform renders the sum of all replicas)."""
        return render_prometheus({app: [self.snapshot()]})

    def snapshot(self) -> Snapshot:
        """A JSON-ready copy of the counters."""
        with self._lock:
            return {
                "buckets": list(self.buckets),
                "requests": [[route, code, n] for (route, code), n in sorted(self._requests.items())],
                "latency": {route: list(row) for route, row in self._latency.items()},
                "refusals": dict(self._refusals),
                "overrides": dict(self._overrides),
                "decisions": dict(self._decisions),
                "models": dict(self._models),
                "audit": [[kind, reason, n] for (kind, reason), n in sorted(self._audit.items())],
            }


def _add(into: dict[Any, float], key: Any, value: float) -> None:
    into[key] = into.get(key, 0) + value


def merge_snapshots(snapshots: Mapping[str, Iterable[Snapshot]]) -> dict[str, Any]:
    """Sum the snapshots of every replica of every application: ``{app: {requests, latency, ...}}``."""
    merged: dict[str, Any] = {}
    for app, replicas in snapshots.items():
        requests: dict[tuple[str, int], float] = {}
        latency: dict[str, list[float]] = {}
        refusals: dict[str, float] = {}
        overrides: dict[str, float] = {}
        decisions: dict[str, float] = {}
        models: dict[str, float] = {}
        audit: dict[tuple[str, str], float] = {}
        buckets: list[float] = list(LATENCY_BUCKETS)
        count = 0
        for snap in replicas:
            count += 1
            buckets = list(snap.get("buckets", buckets))
            for route, code, n in snap.get("requests", []):
                _add(requests, (str(route), int(code)), n)
            for route, row in snap.get("latency", {}).items():
                acc = latency.setdefault(route, [0.0] * len(row))
                for i, v in enumerate(row):
                    acc[i] += v
            for key, target in (("refusals", refusals), ("overrides", overrides), ("decisions", decisions),
                                ("models", models)):
                for label, n in snap.get(key, {}).items():
                    _add(target, str(label), n)
            for kind, reason, n in snap.get("audit", []):  # absent from a replica of an older version
                _add(audit, (str(kind), str(reason)), n)
        merged[app] = {
            "replicas": count, "buckets": buckets, "requests": requests, "latency": latency,
            "refusals": refusals, "overrides": overrides, "decisions": decisions, "models": models, "audit": audit,
        }
    return merged


class _MergedCollector(Collector):
    def __init__(self, merged: dict[str, Any]) -> None:
        self.merged = merged

    def collect(self) -> Iterable[Any]:
        requests = CounterMetricFamily(
            "acgs_serve_requests", "HTTP requests answered by ACGS model servers.", labels=["app", "route", "code"]
        )
        latency = HistogramMetricFamily(
            "acgs_serve_request_latency_seconds", "Time to answer a request inside a model replica.",
            labels=["app", "route"],
        )
        refusals = CounterMetricFamily("acgs_serve_refusals", "Requests refused, by reason.", labels=["app", "reason"])
        overrides = CounterMetricFamily(
            "acgs_serve_guard_overrides",
            "Decisions the runtime guard replaced because they violated a critical principle.",
            labels=["app", "principle"],
        )
        decisions = CounterMetricFamily("acgs_serve_decisions", "Decisions served, by label.",
                                        labels=["app", "decision"])
        models = CounterMetricFamily(
            "acgs_serve_predictions", "Predictions answered, by model: primary, or the canary (spec.canary).",
            labels=["app", "model"],
        )
        audit = CounterMetricFamily(
            "acgs_audit_events",
            "Decision audit lines written (logger acgs.audit): guard overrides and refusals, by reason.",
            labels=["app", "kind", "reason"],
        )
        replicas = GaugeMetricFamily("acgs_serve_replicas_reporting", "Replicas whose counters are included.",
                                     labels=["app"])
        for app in sorted(self.merged):
            data = self.merged[app]
            replicas.add_metric([app], data["replicas"])
            for (route, code), n in sorted(data["requests"].items()):
                requests.add_metric([app, route, str(code)], n)
            for route, row in sorted(data["latency"].items()):
                cumulative, running = [], 0.0
                for bound, n in zip([*data["buckets"], float("inf")], row[:-1], strict=True):
                    running += n
                    cumulative.append((_le(bound), running))
                latency.add_metric([app, route], cumulative, sum_value=row[-1])
            for reason, n in sorted(data["refusals"].items()):
                refusals.add_metric([app, reason], n)
            for principle, n in sorted(data["overrides"].items()):
                overrides.add_metric([app, principle], n)
            for decision, n in sorted(data["decisions"].items()):
                decisions.add_metric([app, decision], n)
            for model, n in sorted(data.get("models", {}).items()):
                models.add_metric([app, model], n)
            for (kind, reason), n in sorted(data.get("audit", {}).items()):
                audit.add_metric([app, kind, reason], n)
        yield from (requests, latency, refusals, overrides, decisions, models, audit, replicas)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def render_prometheus(snapshots: Mapping[str, Iterable[Snapshot]]) -> str:
    """Prometheus text exposition (format 0.0.4) of the merged replica snapshots."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MergedCollector(merge_snapshots(snapshots)))
    return generate_latest(registry).decode("utf-8")


PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
