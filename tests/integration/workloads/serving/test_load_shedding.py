"""Load shedding end to end: the Serve application the operator builds (``spec.queue`` with small limits, one
replica) under a real open-loop overload from vegeta. Every answer is 200 or a fast 503 with ``Retry-After``:
no timeout, no other 5xx, nothing crashes (the replica still answers afterwards).

Timings are printed (run with ``-s``), not asserted: this machine is shared with other work.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec
from acgs_operator.devenv.binaries import cache_dir
from acgs_operator.modeldeployment import build as mds
from acgs_workloads.contract import ConstitutionSnapshot

from .conftest import ServeEnv, Trained
from .test_model_apps import deploy

pytestmark = pytest.mark.integration

# well above what one replica with 4 slots serves on a 2-core machine; ACGS_SHED_RPS=800 is the issue's rate
RATE, SECONDS = int(os.environ.get("ACGS_SHED_RPS", "400")), 5
QUEUE = {"maxOngoingRequests": 4, "maxQueuedRequests": 8, "retryAfterSeconds": 2}


def vegeta() -> str:
    found = shutil.which("vegeta") or str(cache_dir() / "bin" / "vegeta")
    if not Path(found).is_file():
        pytest.skip("vegeta is missing: make setup (acgs dev build-binaries --only vegeta) builds it")
    return found


@pytest.fixture(scope="module")
def shedding(serve_env: ServeEnv, trained: Callable[[str], Trained], constitution: ConstitutionSnapshot
             ) -> dict[str, Any]:
    """The application ``serve_application`` builds for the spec, deployed with its deployment options."""
    model = trained("constitutional-ai")
    spec = ModelDeploymentSpec.model_validate({
        "model": {"uri": model.uri, "sha256": model.sha256}, "constitutionRef": {"name": "default"},
        "routePrefix": "/shed", "replicas": 1, "resources": {"cpus": 0.5}, "queue": QUEUE,
        "batching": {"maxBatchSize": 4},
    })
    evidence = mds.ModelEvidence(component=model.component, uri=model.uri, sha256=model.sha256,
                                 constitution_hash=constitution.hash, score=1.0)
    app = mds.serve_application(namespace="it", name="shed", spec=spec, evidence=evidence, constitution=constitution)
    options = {k: v for k, v in app["deployments"][0].items() if k != "name"}
    assert (options["max_ongoing_requests"], options["max_queued_requests"]) == (4, 8)
    deploy(serve_env, app["name"], app["import_path"], app["args"], app["route_prefix"], **options)
    return app


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_overload_is_answered_with_fast_503s_carrying_retry_after(
    shedding: dict[str, Any], serve_env: ServeEnv, http: httpx.Client, constitution: ConstitutionSnapshot,
    tmp_path: Path,
) -> None:
    body = {"scenario": "general", "user_request": "Access to customer data for analysis",
            "constitutional_hash": constitution.hash}
    first = http.post("/shed/predict", json=body)
    assert first.status_code == 200, first.text

    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"method": "POST", "url": f"{serve_env.base_url}/shed/predict",
                                   "body": base64.b64encode(json.dumps(body).encode()).decode(),
                                   "header": {"Content-Type": ["application/json"]}}) + "\n")
    raw = tmp_path / "results.bin"
    with raw.open("wb") as sink:
        attack = subprocess.run([vegeta(), "attack", f"-targets={targets}", "-format=json", f"-rate={RATE}/s",
                                 f"-duration={SECONDS}s", "-timeout=10s", "-keepalive=true"], stdout=sink,
                                timeout=SECONDS + 40, check=False)
    assert attack.returncode == 0
    encoded = subprocess.run([vegeta(), "encode", "--to", "json", str(raw)], capture_output=True, check=True,
                             text=True, timeout=60).stdout
    results = [json.loads(line) for line in encoded.splitlines() if line.strip()]
    assert len(results) >= RATE * SECONDS * 0.9

    codes: dict[int, int] = {}
    latency: dict[int, list[float]] = {200: [], 503: []}
    by_replica = 0
    for result in results:
        code = int(result["code"])
        codes[code] = codes.get(code, 0) + 1
        assert code in (200, 503), (code, result.get("error"), base64.b64decode(result.get("body") or b"")[:300])
        latency[code].append(result["latency"] / 1e6)
        if code == 503:
            headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
            assert headers.get("retry-after") == [str(QUEUE["retryAfterSeconds"])], headers
            text = base64.b64decode(result.get("body") or b"")
            if text.startswith(b"{"):  # the replica's own refusal: the errors table's body
                refusal = json.loads(text)
                assert refusal["limit"] == {"maxOngoingRequests": 4}, refusal
                assert refusal["constitutional_hash"] == constitution.hash
                by_replica += 1
            else:  # Serve's proxy: the queue in front of the replica is full
                assert b"backpressure" in text, text[:300]
    assert codes.get(200) and codes.get(503), codes  # overloaded for real, and still serving

    figures = (
        f"{RATE} RPS x {SECONDS} s against 1 replica (maxOngoingRequests 4, maxQueuedRequests 8): "
        f"{len(results)} requests, {codes.get(200, 0)} x 200, {codes.get(503, 0)} x 503 "
        f"({by_replica} from the replica, {codes.get(503, 0) - by_replica} from Serve's proxy), "
        f"200 p50 {percentile(latency[200], 0.5):.1f} ms p99 {percentile(latency[200], 0.99):.1f} ms, "
        f"503 p50 {percentile(latency[503], 0.5):.1f} ms p99 {percentile(latency[503], 0.99):.1f} ms"
    )
    print("\nload shedding:", figures)

    time.sleep(1.0)  # nothing crashed: the same replica still serves
    assert http.post("/shed/predict", json=body).status_code == 200
    health = http.get("/shed/health")
    assert health.status_code == 200, health.text
