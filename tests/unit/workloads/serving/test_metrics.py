"""Replica counters, their merge across replicas and the Prometheus text exposition."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from acgs_workloads.serving.metrics import ReplicaMetrics, merge_snapshots, render_prometheus

pytestmark = pytest.mark.unit


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def replica(n_ok: int, n_409: int, latency: float) -> ReplicaMetrics:
    m = ReplicaMetrics()
    for _ in range(n_ok):
        m.observe_request("/predict", 200, latency)
        m.decision("escalate")
    for _ in range(n_409):
        m.observe_request("/predict", 409, latency)
        m.refusal("constitution_mismatch")
    m.override(["fairness", "safety"])
    return m


def test_snapshot_counts() -> None:
    snap = replica(3, 1, 0.003).snapshot()
    assert snap["requests"] == [["/predict", 200, 3], ["/predict", 409, 1]]
    assert snap["refusals"] == {"constitution_mismatch": 1}
    assert snap["overrides"] == {"fairness": 1, "safety": 1}
    row = snap["latency"]["/predict"]
    assert sum(row[:-1]) == 4 and row[-1] == pytest.approx(0.012)
    assert row[snap["buckets"].index(0.005)] == 4  # 3 ms falls in the le=0.005 bucket


def test_merge_sums_replicas() -> None:
    merged = merge_snapshots({"ns-cai": [replica(2, 0, 0.001).snapshot(), replica(5, 2, 0.2).snapshot()]})
    app = merged["ns-cai"]
    assert app["replicas"] == 2
    assert app["requests"][("/predict", 200)] == 7
    assert app["overrides"]["fairness"] == 2


def test_prometheus_exposition() -> None:
    text = render_prometheus({
        "ns-cai": [replica(2, 1, 0.001).snapshot(), replica(1, 0, 0.3).snapshot()],
        "ns-pg": [replica(4, 0, 0.02).snapshot()],
    })
    s = samples(text)
    assert s[("acgs_serve_requests_total", (("app", "ns-cai"), ("code", "200"), ("route", "/predict")))] == 3
    assert s[("acgs_serve_requests_total", (("app", "ns-cai"), ("code", "409"), ("route", "/predict")))] == 1
    assert s[("acgs_serve_refusals_total", (("app", "ns-cai"), ("reason", "constitution_mismatch")))] == 1
    assert s[("acgs_serve_guard_overrides_total", (("app", "ns-pg"), ("principle", "safety")))] == 1
    assert s[("acgs_serve_decisions_total", (("app", "ns-pg"), ("decision", "escalate")))] == 4
    assert s[("acgs_serve_replicas_reporting", (("app", "ns-cai"),))] == 2
    hist = (("app", "ns-cai"), ("route", "/predict"))
    assert s[("acgs_serve_request_latency_seconds_count", hist)] == 4
    assert s[("acgs_serve_request_latency_seconds_bucket", (*hist[:1], ("le", "0.001"), hist[1]))] == 3
    assert s[("acgs_serve_request_latency_seconds_bucket", (*hist[:1], ("le", "0.25"), hist[1]))] == 3
    assert s[("acgs_serve_request_latency_seconds_bucket", (*hist[:1], ("le", "+Inf"), hist[1]))] == 4
    assert s[("acgs_serve_request_latency_seconds_sum", hist)] == pytest.approx(0.303)


def test_empty_exposition_is_valid() -> None:
    assert list(text_string_to_metric_families(render_prometheus({})))
