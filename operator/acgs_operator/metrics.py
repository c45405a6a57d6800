"""Operator metrics (prometheus-client), served on ``ACGS_METRICS_PORT``."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter("acgs_operator_reconciles_total", "Reconciliations by kind and result", ["kind", "result"])
ERRORS = Counter("acgs_operator_errors_total", "Reconcile errors by kind and reason", ["kind", "reason"])
_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)
APPLY_TO_RUNNING = Histogram(
    "acgs_trainingjob_apply_to_running_seconds",
    "Seconds from creation to the Ray job RUNNING",
    buckets=_LATENCY_BUCKETS,
)
APPLY_TO_READY = Histogram(
    "acgs_modeldeployment_apply_to_ready_seconds",
    "Seconds from creation to the route serving",
    buckets=_LATENCY_BUCKETS,
)


class PhaseTracker(Collector):
    """The phase of every resource the operator has seen, exported as a gauge per kind and phase."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def record(self, kind: str, key: str, phase: str | None) -> None:
        if phase:
            self._phases[(kind, key)] = phase

    def forget(self, kind: str, key: str) -> None:
        self._phases.pop((kind, key), None)

    def counts(self) -> Tally[tuple[str, str]]:
        return Tally((kind, phase) for (kind, _), phase in self._phases.items())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("acgs_resources", "Resources by kind and phase", labels=["kind", "phase"])
        for (kind, phase), count in sorted(self.counts().items()):
            family.add_metric([kind, phase], count)
        yield family


PHASES = PhaseTracker()
REGISTRY.register(PHASES)


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")
