"""Operator metrics (prometheus-client), served on ``ACGS_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

RECONCILES = Counter("acgs_operator_reconciles_total", "Reconciliations by kind and result", ["kind", "result"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")
