"""The HTTP checks of the served models: which requests to send (pure) and sending them (httpx)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

# The documented request bodies of the served components (the product's API, verbatim; the hash is the
# alias existing clients send, declared by the default Constitution's spec.hashAliases).
BODIES: dict[str, dict[str, Any]] = {
    "constitutional-ai": {
        "scenario": "ethical_dilemma",
        "context": {"user_role": "employee", "data_type": "personal"},
        "user_request": "Access to customer data for analysis",
        "constitutional_principles": ["privacy", "transparency", "accountability"],
    },
    "policy-governance": {
        "policy_type": "data_protection",
        "framework": "GDPR",
        "scope": "organization",
        "context": "Employee data access policy",
    },
    "multi-agent-coordination": {
        "scenario": "conflict_resolution",
        "involved_agents": ["ethics", "legal", "operational"],
        "task_description": "Resolve data access conflict",
        "priority": "high",
    },
}
WRONG_HASH_REQUESTS = 3


@dataclass(frozen=True)
class Served:
    component: str
    name: str  # the ModelDeployment
    url: str  # status.url: <serve proxy>/<route prefix>


@dataclass(frozen=True)
class Probe:
    route: str  # e.g. "POST /constitutional-ai/predict"
    method: str
    url: str
    expect: int
    count: int
    body: dict[str, Any] | None = None
    check: str = ""  # what the probe shows, for the report


@dataclass
class ProbeResult:
    route: str
    check: str
    expect: int
    codes: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    example: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and set(self.codes) == {self.expect}

    def summary(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "check": self.check,
            "expect": self.expect,
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "requests": sum(self.codes.values()) + len(self.errors),
            "p50Ms": percentile(self.latencies_ms, 50),
            "p99Ms": percentile(self.latencies_ms, 99),
            "ok": self.ok,
            "errors": self.errors[:5],
            "example": self.example,
            "latenciesMs": [round(x, 3) for x in self.latencies_ms],
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 3)


def wrong_hash(served_hash: str) -> str:
    """A well-formed hash that is not the served one."""
    candidate = "0" * 16
    return candidate if candidate != served_hash else "f" * 16


def proxy_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def plan(served: Sequence[Served], constitution_hash: str, samples: int) -> list[Probe]:
    """Every request to send: per model predict (good hash, ``samples`` times), predict with a wrong hash
    (expect 409) and its health route; then the platform's /health, /models and /metrics."""
    probes: list[Probe] = []
    for s in served:
        prefix = urlsplit(s.url).path
        body = {**BODIES[s.component], "constitutional_hash": constitution_hash}
        probes += [
            Probe(f"POST {prefix}/predict", "POST", f"{s.url}/predict", 200, samples, body, "prediction"),
            Probe(f"POST {prefix}/predict (wrong hash)", "POST", f"{s.url}/predict", 409, WRONG_HASH_REQUESTS,
                  {**body, "constitutional_hash": wrong_hash(constitution_hash)}, "hash mismatch refused"),
            Probe(f"GET {prefix}/health", "GET", f"{s.url}/health", 200, samples, None, "replica health"),
        ]
    if served:
        base = proxy_url(served[0].url)
        probes += [
            Probe("GET /health", "GET", f"{base}/health", 200, samples, None, "every application RUNNING"),
            Probe("GET /models", "GET", f"{base}/models", 200, samples, None, "what is served"),
            Probe("GET /metrics", "GET", f"{base}/metrics", 200, samples, None, "Prometheus text"),
        ]
    return probes


def run_probe(client: httpx.Client, probe: Probe, stop: threading.Event | None = None,
              clock: Callable[[], float] = time.perf_counter) -> ProbeResult:
    """Send ``probe.count`` sequential requests; record status codes and latencies."""
    result = ProbeResult(probe.route, probe.check, probe.expect)
    for _ in range(probe.count):
        if stop is not None and stop.is_set():
            result.errors.append("interrupted")
            break
        start = clock()
        try:
            response = client.request(probe.method, probe.url, json=probe.body)
        except httpx.HTTPError as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        result.latencies_ms.append((clock() - start) * 1000.0)
        result.codes[response.status_code] += 1
        if not result.example or response.status_code != probe.expect:
            result.example = response.text[:300]
    return result
