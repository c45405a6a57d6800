"""Serving benchmark: the constitutional-ai predict route through Ray Serve vs. bare uvicorn vs. a Serve no-op,
and the goals of "Serving at the Ray Serve floor".

One run trains a small constitutional-ai model (plain torch) and measures, phase by phase (``--phases``, a comma
list; default all):

- ``micro``: the pieces of a request in this process, without HTTP (model, guard engines, ``predict_batch``);
- ``bare``: the same FastAPI app (service, guard, middleware) under one uvicorn worker, no Ray;
- ``noop``: a Serve no-op deployment, the floor (proxy -> router -> replica -> ``{ok: true}``);
- ``route``: the predict route as the operator deploys a ModelDeployment with its defaults (cached runtime guard,
  no batching, ``spec.queue`` defaults, ``max_surge_percent`` 100): the Serve config comes from the operator's
  ``serve_application`` builder and goes through the dashboard's Serve REST API, next to the platform application;
- ``variants``: the other Serve configurations (batching, larger queue, access log off, guard off), built alike;
- ``platform``: ``GET /health``, ``/models``, ``/metrics`` of the platform application at 50 RPS;
- ``overload``: 2x and 4x the route's peak rate for ``--burst-seconds``, each followed by 100 RPS to watch it
  recover (needs ``route``);
- ``canary``: a second model (another training seed) answering 20 % of the requests;
- ``rollout``: the model replaced by the second one while 100 RPS flow.

Every Serve phase runs on one Serve instance: the platform application (route prefix ``/``) stays deployed
beside what is measured, the no-op included, as the operator deploys it beside every model application.

Load comes from vegeta (open loop): p50/p99 at 100 RPS, then a rate ladder for the peak rate (100 % success and
p99 <= 50 ms); wrk (closed loop, 8 connections) when installed. Requests cycle through a pool of distinct bodies
drawn from the component's generator. The results table and the goals table (markdown: measured figure, target,
met / not met) are printed and saved to ``reports/benchmarks/serving.json`` (key ``goals``), with a latency
histogram ``serving_latency.png`` and the overload timeline ``serving_overload.png``.

    python benchmarks/bench_serving.py                 # starts its own Ray head
    python benchmarks/bench_serving.py --phases noop,route,overload --burst-seconds 10
    RAY_ADDRESS=127.0.0.1:6379 python benchmarks/bench_serving.py

vegeta: `make setup` builds it into ~/.cache/acgs/bin (`acgs dev build-binaries --only vegeta`); wrk: apt install wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPORTS, load_average, write_json

T = TypeVar("T")
COMPONENT: Final = "constitutional-ai"
FIXED_RPS = 100
P99_BUDGET_MS = 50.0
PEAK_SUCCESS = 1.0  # the peak rate is the highest one answered entirely with 2xx, p99 within P99_BUDGET_MS
LADDER = (50, 100, 200, 300, 400, 600, 800, 1000, 1300, 1600, 2000)
VEGETA_TIMEOUT_S = 10
PHASES = ("micro", "bare", "noop", "route", "variants", "platform", "overload", "canary", "rollout")

# the goals of "Serving at the Ray Serve floor"
P50_MARGIN_MS = 1.0  # route p50 <= no-op p50 + 1 ms at 100 RPS
P99_FACTOR = 1.5  # route p99 <= 1.5x no-op p99 at 100 RPS
PEAK_FACTOR = 0.8  # route peak >= 0.8x no-op peak
PEAK_TARGET_RPS = 1000  # the figure to beat on 2 cores
OVERLOAD_FACTORS = (2, 4)
GOODPUT_SHARE = 0.9  # HTTP 200 per second under overload >= 90 % of the peak
REFUSAL_P99_MS = 20.0
MAX_WAIT_MS = 1000.0
RECOVERY_FACTOR = 1.5  # a 1-s window is recovered when its p99 is within 1.5x the 100-RPS p99 (and all 200)
RECOVERY_GOAL_S = 5.0
PLATFORM_RPS = 50
PLATFORM_ROUTES = ("/health", "/models", "/metrics")
PLATFORM_P99_MS = 10.0
CANARY_PERCENT = 20
CANARY_TOLERANCE = 3.0  # percentage points
CANARY_REQUESTS = 2000
ROLLOUT_LEAD_S = 5.0  # load runs this long before the redeploy
DEPLOY_TIMEOUT_S = 300.0


# --------------------------------------------------------------------------- tools


def tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidate = Path.home() / ".cache" / "acgs" / "bin" / name
    return str(candidate) if candidate.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (0-100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- load generators


@dataclass
class Attack:
    rate: int
    requests: int
    success: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput: float
    codes: dict[str, int]


def write_targets(path: Path, url: str, bodies: Sequence[bytes] = (), method: str = "POST") -> Path:
    """vegeta JSON targets: one POST per body (cycled through), or one bodiless request."""
    with path.open("w") as out:
        if not bodies:
            out.write(json.dumps({"method": method, "url": url}) + "\n")
        for body in bodies:
            out.write(json.dumps({"method": method, "url": url, "body": base64.b64encode(body).decode(),
                                  "header": {"Content-Type": ["application/json"]}}) + "\n")
    return path


def attack_command(vegeta: str, targets: Path, rate: int, seconds: float, max_body: int = -1) -> list[str]:
    return [vegeta, "attack", f"-targets={targets}", "-format=json", f"-rate={rate}/s", f"-duration={seconds}s",
            f"-timeout={VEGETA_TIMEOUT_S}s", "-keepalive=true", f"-max-body={max_body}"]


def vegeta_run(vegeta: str, targets: Path, rate: int, seconds: float, raw: Path, max_body: int = -1) -> Path:
    """Attack at ``rate`` for ``seconds``; the binary results go to ``raw``."""
    with raw.open("wb") as sink:
        subprocess.run(attack_command(vegeta, targets, rate, seconds, max_body), stdout=sink, check=True)
    return raw


def vegeta_attack(vegeta: str, targets: Path, rate: int, seconds: float, raw: Path | None = None) -> Attack:
    out = vegeta_run(vegeta, targets, rate, seconds, raw or targets.with_suffix(f".{rate}.bin"))
    report = json.loads(subprocess.run([vegeta, "report", "-type=json", str(out)], capture_output=True,
                                       check=True, text=True).stdout)
    lat = report["latencies"]
    return Attack(rate=rate, requests=int(report["requests"]), success=float(report["success"]),
                  p50_ms=lat["50th"] / 1e6, p90_ms=lat["90th"] / 1e6, p99_ms=lat["99th"] / 1e6,
                  max_ms=lat["max"] / 1e6, throughput=float(report["throughput"]),
                  codes={str(k): int(v) for k, v in (report.get("status_codes") or {}).items()})


def vegeta_latencies_ms(vegeta: str, raw: Path) -> list[float]:
    csv = subprocess.run([vegeta, "encode", "--to", "csv", str(raw)], capture_output=True, check=True,
                         text=True).stdout
    return [int(line.split(",")[2]) / 1e6 for line in csv.splitlines() if line]


@dataclass(frozen=True, slots=True)
class Hit:
    """One request of a vegeta run, from ``vegeta encode --to json`` (which carries the response headers)."""

    start: float  # epoch seconds the request was sent
    latency_ms: float
    code: int  # 0: no response (timeout, connection error)
    error: str
    retry_after: str | None  # the Retry-After header, if any
    sha256: str | None = None  # ``model_sha256`` of a 200 answer, when the bodies were kept


def _answered_by(body: str | None) -> str | None:
    if not body:
        return None
    try:
        value = json.loads(base64.b64decode(body)).get("model_sha256")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def vegeta_hits(vegeta: str, raw: Path, bodies: bool = False) -> list[Hit]:
    """Every request of ``raw``, in the order sent (``bodies``: read ``model_sha256`` from the 200 answers)."""
    proc = subprocess.Popen([vegeta, "encode", "--to", "json", str(raw)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    hits = []
    for line in proc.stdout:
        if not line.strip():
            continue
        r = json.loads(line)
        headers = r.get("headers") or {}
        retry_after = next((v[0] for k, v in headers.items() if k.lower() == "retry-after" and v), None)
        code = int(r.get("code") or 0)
        hits.append(Hit(start=datetime.fromisoformat(r["timestamp"]).timestamp(), latency_ms=r["latency"] / 1e6,
                        code=code, error=r.get("error") or "", retry_after=retry_after,
                        sha256=_answered_by(r.get("body")) if bodies and code == 200 else None))
    if proc.wait() != 0:
        raise RuntimeError(f"vegeta encode {raw} failed ({proc.returncode})")
    return sorted(hits, key=lambda h: h.start)


WRK_LUA = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def wrk_closed_loop(wrk: str, url: str, bodies_file: Path, connections: int, seconds: int) -> dict[str, float]:
    script = bodies_file.with_suffix(".lua")
    script.write_text(WRK_LUA % bodies_file)
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec"))
    p99 = next(_ms(line.split()[1]) for line in out.splitlines() if line.strip().startswith("99%"))
    p50 = next(_ms(line.split()[1]) for line in out.splitlines() if line.strip().startswith("50%"))
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": non2xx}


def _ms(text: str) -> float:
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


# --------------------------------------------------------------------------- measurements


@dataclass
class Result:
    name: str
    description: str
    fixed: Attack | None = None
    peak_rps: float = 0.0  # highest sustained rate with 100 % success and p99 within P99_BUDGET_MS
    max_rps: float = 0.0  # highest sustained rate with >= 99.9 % success, whatever the tail
    ladder: list[Attack] = field(default_factory=list)
    wrk: dict[str, float] | None = None
    load_avg: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def measure(name: str, description: str, url: str, bodies: list[bytes], work: Path, vegeta: str,
            wrk: str | None, seconds: float, step_seconds: float, ladder: Sequence[int] = LADDER) -> Result:
    result = Result(name=name, description=description, load_avg=load_average())
    targets = write_targets(work / f"{name}.targets", url, bodies)
    vegeta_attack(vegeta, targets, FIXED_RPS, 3)  # warm-up: caches, JIT paths, connection pools
    result.fixed = vegeta_attack(vegeta, targets, FIXED_RPS, seconds, raw=work / f"{name}.fixed.bin")
    for rate in ladder:
        attack = vegeta_attack(vegeta, targets, rate, step_seconds)
        result.ladder.append(attack)
        if attack.success >= 0.999:
            result.max_rps = max(result.max_rps, attack.throughput)
        if attack.success >= PEAK_SUCCESS and attack.p99_ms <= P99_BUDGET_MS:
            result.peak_rps = max(result.peak_rps, attack.throughput)
        # past saturation (or with tails far over budget) higher rates only queue
        if attack.success < 0.999 or attack.p99_ms > 20 * P99_BUDGET_MS or attack.throughput < 0.9 * rate:
            break
    if wrk:
        lines = work / f"{name}.bodies"
        lines.write_text("\n".join(b.decode() for b in bodies) + "\n")
        time.sleep(1.0)
        result.wrk = wrk_closed_loop(wrk, url, lines, connections=8, seconds=5)
    f = result.fixed
    print(f"  {name}: p50 {f.p50_ms:.2f} ms p99 {f.p99_ms:.2f} ms at {FIXED_RPS} RPS "
          f"(success {f.success:.4f}); peak {result.peak_rps:.0f} RPS (100 % success, p99 <= "
          f"{P99_BUDGET_MS:.0f} ms), max {result.max_rps:.0f} RPS; load {result.load_avg:.1f}", flush=True)
    return result


# --------------------------------------------------------------------------- the models and their bodies


@dataclass(frozen=True)
class Model:
    uri: str  # the artifact directory
    sha256: str


def train_model(root: Path, run_id: str = "bench-cai", seed: int = 42) -> tuple[Model, Any]:
    """A small constitutional-ai model; another ``seed`` (initialisation, data order) gives other weights."""
    from acgs_workloads.constitution import default_constitution
    from acgs_workloads.contract import DatasetSpec, GeneratorSpec, ModelSpec, TrainingSpec, TrainRunConfig
    from acgs_workloads.train import run

    constitution = default_constitution()
    cfg = TrainRunConfig(run_id=run_id, component=COMPONENT, constitution=constitution,
                         dataset=DatasetSpec(generator=GeneratorSpec(examples=4000, seed=11)),
                         model=ModelSpec(hidden_size=64, layers=2),
                         training=TrainingSpec(epochs=3, batch_size=64, seed=seed), artifact_root=str(root),
                         use_ray=False)
    trained = run(cfg).model
    return Model(uri=trained.uri.rsplit("/", 1)[0], sha256=trained.sha256), constitution


def request_bodies(constitution_hash: str, count: int) -> list[bytes]:
    from acgs_workloads.components import get
    from acgs_workloads.contract import ModelSpec

    component = get(COMPONENT)
    cols = component.generate(count, 2024, ModelSpec())
    return [json.dumps(component.request_for(cols, i, constitution_hash)).encode() for i in range(count)]


# --------------------------------------------------------------------------- targets


def bare_uvicorn(args_file: Path, port: int) -> subprocess.Popen[bytes]:
    """The bare uvicorn process; its output (an audit line per guard override) goes to ``uvicorn.log`` beside
    ``args_file``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with args_file.with_name("uvicorn.log").open("wb") as log:
        return subprocess.Popen([sys.executable, __file__, "--bare-uvicorn", str(args_file), str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def run_bare_uvicorn(args_file: str, port: int) -> None:
    """The same FastAPI app (service, guard, middleware) under one uvicorn worker, no Ray."""
    import torch
    import uvicorn

    from acgs_workloads.contract import parse_model_args
    from acgs_workloads.serving.api import create_model_api
    from acgs_workloads.serving.service import ModelService

    torch.set_num_threads(1)
    service = ModelService.from_args(parse_model_args(json.loads(Path(args_file).read_text())))
    uvicorn.run(create_model_api(service), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class ServeVariant:
    name: str
    description: str
    runtime_guard: bool = True
    batching: dict[str, float] | None = None
    max_ongoing_requests: int | None = None  # spec.queue.maxOngoingRequests; None: the operator's default
    access_log: bool = True


VARIANTS = (
    ServeVariant("serve-guard-cached", "Serve, ModelDeployment defaults: cached guard, no batching, default queue"),
    ServeVariant("serve-cached-batch8", "Serve, cached guard, @serve.batch(8, 2 ms)",
                 batching={"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0}),
    ServeVariant("serve-cached-batch32", "Serve, cached guard, @serve.batch(32, 1 ms), maxOngoingRequests 128",
                 batching={"maxBatchSize": 32, "batchWaitTimeoutMs": 1.0}, max_ongoing_requests=128),
    ServeVariant("serve-batch32-quiet", "as serve-cached-batch32, per-request access log off (logging_config)",
                 batching={"maxBatchSize": 32, "batchWaitTimeoutMs": 1.0}, max_ongoing_requests=128, access_log=False),
    ServeVariant("serve-guard-off", "Serve, runtime guard off, batch(8, 2 ms)", runtime_guard=False,
                 batching={"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0}),
)
PRIMARY = VARIANTS[0]  # "the route" of the goals: what a ModelDeployment with default settings serves
NAMESPACE = "bench"


def model_app(variant: ServeVariant, model: Model, constitution: Any, canary: Model | None = None,
              canary_percent: int = CANARY_PERCENT) -> dict[str, Any]:
    """The Serve application the operator writes for a ModelDeployment with ``variant``'s settings (its
    ``serve_application``: ``spec.queue`` as max_ongoing_requests / max_queued_requests / backpressure_config,
    max_surge_percent, one replica of 1 CPU), plus what only the benchmark sets: ``OMP_NUM_THREADS=1`` and the
    access-log switch. ``canary`` goes into the args as ``ModelAppArgs.canary`` (validated here)."""
    from acgs_operator.api.v1alpha1 import ModelDeploymentSpec
    from acgs_operator.modeldeployment.build import ModelEvidence, serve_application
    from acgs_workloads.contract import ModelAppArgs

    spec: dict[str, Any] = {"model": {"uri": model.uri, "sha256": model.sha256}, "constitutionRef": {"name": "bench"},
                            "compliance": {"runtimeGuard": variant.runtime_guard}}
    if variant.batching:
        spec["batching"] = variant.batching
    if variant.max_ongoing_requests:
        spec["queue"] = {"maxOngoingRequests": variant.max_ongoing_requests}
    evidence = ModelEvidence(component=COMPONENT, uri=model.uri, sha256=model.sha256,
                             constitution_hash=constitution.hash, score=None)
    app = serve_application(namespace=NAMESPACE, name=variant.name, spec=ModelDeploymentSpec.model_validate(spec),
                            evidence=evidence, constitution=constitution)
    app["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": "1"}}
    if not variant.access_log:
        app["deployments"][0]["logging_config"] = {"enable_access_log": False, "log_level": "WARNING"}
    if canary is not None:
        app["args"] = ModelAppArgs.model_validate({**app["args"], "canary": {
            "modelUri": canary.uri, "modelSha256": canary.sha256, "trafficPercent": canary_percent}}).wire()
    return app


class DeployFailed(RuntimeError):
    """Serve reports the application DEPLOY_FAILED or UNHEALTHY (the message is Serve's)."""


class ServeRest:
    """The Serve REST API of the Ray dashboard through the operator's own client: the path the operator deploys
    by. Each PUT replaces the declarative applications; ``serve.run`` ones (the no-op) are left alone."""

    def __init__(self, dashboard_url: str, http_options: dict[str, Any]) -> None:
        self.dashboard_url = dashboard_url if "://" in dashboard_url else f"http://{dashboard_url}"
        self.http_options = http_options  # as Serve was started: the PUT then changes nothing there

    def _call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        from acgs_operator.rayclient.http import DashboardClient

        async def call() -> T:
            client = DashboardClient(self.dashboard_url, timeout=60.0)
            try:
                return await fn(client)
            finally:
                await client.aclose()

        return asyncio.run(call())

    def put(self, apps: list[dict[str, Any]]) -> float:
        """PUT the applications; the time of the call (epoch seconds)."""
        called = time.time()
        self._call(lambda c: c.put_serve_applications(apps, http_options=self.http_options))
        return called

    def wait_running(self, apps: Iterable[dict[str, Any]], timeout: float = DEPLOY_TIMEOUT_S) -> float:
        """Seconds until Serve runs every app of ``apps`` with its ``args`` and has removed the others the PUT
        dropped; :class:`DeployFailed` with Serve's message when one of them fails."""
        wanted = {app["name"]: app.get("args") or {} for app in apps}
        start = time.monotonic()
        while True:
            current = self._call(lambda c: c.serve_applications())
            pending = []
            for name, args in wanted.items():
                app = current.get(name)
                deployed = app is not None and ((app.config or {}).get("args") or {}) == args
                if app is not None and deployed and app.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                    raise DeployFailed(f"{name} {app.status}: {app.message}")
                if app is None or not deployed or app.status != "RUNNING":
                    pending.append(f"{name} {app.status if app else 'absent'}")
            # an application the PUT removed still holds its replica (and a CPU) until it is gone
            pending += [f"{name} DELETING" for name, app in current.items() if app.status == "DELETING"]
            if not pending:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise DeployFailed(f"not running after {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(0.5)

    def deploy(self, apps: list[dict[str, Any]]) -> float:
        """PUT ``apps`` and wait until they run; the seconds that took."""
        self.put(apps)
        return self.wait_running(apps)


def deploy_noop() -> str:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(name="Noop", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
    class Noop:
        async def __call__(self, request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse({"ok": True})

    serve.run(Noop.bind(), name="bench-noop", route_prefix="/noop")  # type: ignore[attr-defined]
    return "bench-noop"


# --------------------------------------------------------------------------- goal phases


@dataclass
class Second:
    """One 1-s window of a run, by the time each request was sent."""

    t: float  # seconds since the origin of the timeline (a burst's start)
    sent: int
    ok: int  # HTTP 200
    refused: int  # HTTP 503
    other: int  # neither 200 nor 503 (code 0: no response)
    p99_ms: float | None  # of every request of the window; None when it sent none


def per_second(hits: Sequence[Hit], start: float, seconds: float, offset: float = 0.0) -> list[Second]:
    count = max(1, math.ceil(seconds - 1e-6))
    buckets: list[list[Hit]] = [[] for _ in range(count)]
    for hit in hits:
        buckets[min(count - 1, max(0, int(hit.start - start)))].append(hit)
    out = []
    for i, bucket in enumerate(buckets):
        ok, refused = sum(h.code == 200 for h in bucket), sum(h.code == 503 for h in bucket)
        out.append(Second(t=offset + i, sent=len(bucket), ok=ok, refused=refused, other=len(bucket) - ok - refused,
                          p99_ms=percentile([h.latency_ms for h in bucket], 99) if bucket else None))
    return out


@dataclass
class Recovery:
    """The steady rate right after a burst, in 1-s windows."""

    rate: int  # the steady rate (see steady_rate)
    baseline_p99_ms: float  # the route's p99 at that rate, measured before the bursts
    limit_ms: float
    seconds: float | None  # start of the first window within limit_ms and answered all 200; None: none was
    requests: int
    failed: int
    timeline: list[Second]  # t from the burst's start


@dataclass
class Burst:
    """Overload: ``rate`` offered for ``seconds`` (a multiple of the route's peak)."""

    label: str  # "2x", "4x"
    rate: int
    seconds: float
    requests: int
    ok: int
    goodput_rps: float  # HTTP 200 per second of the burst
    refused: int  # 503
    other_5xx: int
    no_response: int  # code 0: timeouts and connection errors
    other_codes: dict[str, int]  # anything else (4xx, 3xx)
    refused_p99_ms: float | None
    max_ms: float  # the longest any request waited (answered or not)
    refused_without_retry_after: int
    retry_after_values: list[str]
    errors: dict[str, int]  # vegeta's error texts, most frequent first
    timeline: list[Second]
    recovery: Recovery | None = None


def analyse_burst(label: str, rate: int, seconds: float, hits: Sequence[Hit]) -> Burst:
    codes = Counter(h.code for h in hits)
    refused = [h for h in hits if h.code == 503]
    start = hits[0].start if hits else 0.0
    return Burst(
        label=label, rate=rate, seconds=seconds, requests=len(hits), ok=codes[200],
        goodput_rps=codes[200] / seconds, refused=codes[503],
        other_5xx=sum(n for c, n in codes.items() if 500 <= c < 600 and c != 503), no_response=codes[0],
        other_codes={str(c): n for c, n in sorted(codes.items()) if c not in (0, 200) and not 500 <= c < 600},
        refused_p99_ms=percentile([h.latency_ms for h in refused], 99) if refused else None,
        max_ms=max((h.latency_ms for h in hits), default=0.0),
        refused_without_retry_after=sum(h.retry_after is None for h in refused),
        retry_after_values=sorted({h.retry_after for h in refused if h.retry_after is not None}),
        errors=dict(Counter(h.error for h in hits if h.error).most_common(5)),
        timeline=per_second(hits, start, seconds),
    )


def analyse_recovery(hits: Sequence[Hit], seconds: float, rate: int, baseline_p99_ms: float, origin: float
                     ) -> Recovery:
    start = hits[0].start if hits else origin
    timeline = per_second(hits, start, seconds, offset=start - origin)
    limit = RECOVERY_FACTOR * baseline_p99_ms
    back = next((w.t - (start - origin) for w in timeline
                 if w.sent and w.ok == w.sent and w.p99_ms is not None and w.p99_ms <= limit), None)
    return Recovery(rate=rate, baseline_p99_ms=baseline_p99_ms, limit_ms=limit, seconds=back, requests=len(hits),
                    failed=sum(h.code != 200 for h in hits), timeline=timeline)


def steady_rate(route: Result) -> int:
    """The load of the phases that watch something else than capacity (recovery, canary, rollout): 100 RPS, or
    half the route's peak where the route cannot carry 100 RPS (else those phases measure overload again)."""
    capacity = route.peak_rps or route.max_rps or FIXED_RPS
    return FIXED_RPS if capacity >= 2 * FIXED_RPS else max(10, min(FIXED_RPS, round(capacity / 2)))


def burst_then_recovery(vegeta: str, targets: Path, rate: int, burst_seconds: float, recovery_seconds: float,
                        burst_raw: Path, recovery_raw: Path, steady_rps: int) -> None:
    """``rate`` for ``burst_seconds``, then ``steady_rps`` for ``recovery_seconds`` from the moment the burst stops
    offering load (not when its last answers arrive: vegeta waits up to its timeout for those). Response bodies
    are dropped."""
    with burst_raw.open("wb") as burst_out, recovery_raw.open("wb") as recovery_out:
        started = time.monotonic()
        burst = subprocess.Popen(attack_command(vegeta, targets, rate, burst_seconds, max_body=0), stdout=burst_out)
        try:
            time.sleep(max(0.0, started + burst_seconds - time.monotonic()))
            subprocess.run(attack_command(vegeta, targets, steady_rps, recovery_seconds, max_body=0),
                           stdout=recovery_out, check=True)
        finally:
            burst.wait()
    if burst.returncode != 0:
        raise subprocess.CalledProcessError(burst.returncode, burst.args)


def overload_phase(vegeta: str, work: Path, targets: Path, peak_rps: float, steady_rps: int,
                   burst_seconds: float, recovery_seconds: float) -> list[Burst]:
    """The route's p99 at ``steady_rps``; then each multiple of the peak for ``burst_seconds``, followed at once
    by ``steady_rps`` for ``recovery_seconds``."""
    baseline_p99_ms = vegeta_attack(vegeta, targets, steady_rps, 5).p99_ms
    print(f"  overload: baseline p99 {baseline_p99_ms:.1f} ms at the steady {steady_rps} RPS", flush=True)
    bursts = []
    for factor in OVERLOAD_FACTORS:
        label, rate = f"{factor}x", max(1, round(factor * peak_rps))
        print(f"  overload {label}: {rate} RPS for {burst_seconds:g} s, then {steady_rps} RPS for "
              f"{recovery_seconds:g} s", flush=True)
        burst_raw, recovery_raw = work / f"overload-{label}.bin", work / f"recovery-{label}.bin"
        burst_then_recovery(vegeta, targets, rate, burst_seconds, recovery_seconds, burst_raw, recovery_raw,
                            steady_rps)
        hits = vegeta_hits(vegeta, burst_raw)
        burst = analyse_burst(label, rate, burst_seconds, hits)
        rec = burst.recovery = analyse_recovery(vegeta_hits(vegeta, recovery_raw), recovery_seconds, steady_rps,
                                                baseline_p99_ms, origin=hits[0].start if hits else time.time())
        burst_raw.unlink()
        recovery_raw.unlink()
        refused_p99 = "-" if burst.refused_p99_ms is None else f"{burst.refused_p99_ms:.1f} ms"
        print(f"    {burst.requests} sent, {burst.goodput_rps:.0f} x 200/s, 503 {burst.refused} "
              f"(p99 {refused_p99}, {burst.refused_without_retry_after} without Retry-After), "
              f"other 5xx {burst.other_5xx}, no response {burst.no_response}, other {burst.other_codes}; "
              f"max {burst.max_ms:.0f} ms; recovered after "
              f"{'never' if rec.seconds is None else f'{rec.seconds:.0f} s'} ({rec.failed} failed)", flush=True)
        bursts.append(burst)
    return bursts


def platform_phase(vegeta: str, work: Path, serve_url: str, seconds: float) -> dict[str, Attack]:
    out = {}
    for route in PLATFORM_ROUTES:
        targets = write_targets(work / f"platform-{route.strip('/')}.targets", f"{serve_url}{route}", method="GET")
        vegeta_attack(vegeta, targets, PLATFORM_RPS, 2)  # warm-up
        attack = out[route] = vegeta_attack(vegeta, targets, PLATFORM_RPS, seconds)
        print(f"  platform GET {route}: p50 {attack.p50_ms:.2f} ms p99 {attack.p99_ms:.2f} ms at {PLATFORM_RPS} RPS "
              f"(success {attack.success:.4f}, codes {attack.codes})", flush=True)
    return out


@dataclass
class CanaryResult:
    percent: int
    rate: int = FIXED_RPS
    requests: int = 0
    ok: int = 0
    canary: int = 0  # 200 answers naming the canary's sha256
    primary: int = 0
    unnamed: int = 0  # 200 answers naming neither
    share: float | None = None  # % of the 200 answers given by the canary
    codes: dict[str, int] = field(default_factory=dict)
    deploy_s: float | None = None
    error: str = ""  # why it was not measured


def canary_phase(vegeta: str, work: Path, rest: ServeRest, serve_url: str, targets: Path, primary: Model,
                 canary: Model, constitution: Any, platform: dict[str, Any], rate: int) -> CanaryResult:
    """The primary model with ``canary`` answering CANARY_PERCENT % of the requests; CANARY_REQUESTS at
    ``rate`` with the answers kept, counted by the ``model_sha256`` they name."""
    result = CanaryResult(percent=CANARY_PERCENT, rate=rate)
    try:
        app = model_app(PRIMARY, primary, constitution, canary=canary)
        result.deploy_s = rest.deploy([app, platform])
        health = httpx.get(f"{serve_url}/{COMPONENT}/health", timeout=10).json()
        if not (health.get("canary") or {}).get("sha256") == canary.sha256:
            raise RuntimeError(f"the replica does not report the canary: health {health.get('canary')!r}")
        seconds = math.ceil(CANARY_REQUESTS / rate)
        hits = vegeta_hits(vegeta, vegeta_run(vegeta, targets, rate, seconds, work / "canary.bin"),
                           bodies=True)
    except Exception as error:  # the serving side may not support canaries yet: report, do not crash
        result.error = f"{type(error).__name__}: {error}"
        print(f"  canary not measured: {result.error}", flush=True)
        return result
    answered = Counter(h.sha256 for h in hits if h.code == 200)
    result.requests, result.ok = len(hits), sum(answered.values())
    result.canary, result.primary = answered[canary.sha256], answered[primary.sha256]
    result.unnamed = result.ok - result.canary - result.primary
    result.codes = {str(c): n for c, n in sorted(Counter(h.code for h in hits).items())}
    result.share = 100.0 * result.canary / result.ok if result.ok else None
    print(f"  canary {CANARY_PERCENT} %: {result.canary} of {result.ok} answers "
          f"({result.share or 0:.1f} %), {result.primary} primary, {result.unnamed} unnamed; codes {result.codes}",
          flush=True)
    return result


@dataclass
class RolloutResult:
    seconds: float  # the load's duration; the redeploy came ROLLOUT_LEAD_S into it
    rate: int = FIXED_RPS
    max_surge_percent: int | None = None
    requests: int = 0
    failed: int = 0  # anything but 200
    codes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    old_answers: int = 0
    new_answers: int = 0
    switch_s: float | None = None  # from the redeploy call until the last answer naming the old sha256
    serve_running_s: float | None = None  # from the redeploy call until Serve runs the new args
    error: str = ""


def rollout_phase(vegeta: str, work: Path, rest: ServeRest, serve_url: str, targets: Path, old: Model, new: Model,
                  constitution: Any, platform: dict[str, Any], seconds: float, rate: int) -> RolloutResult:
    """Serve ``old``; under 100 RPS, redeploy the same application with ``new`` (the operator's config, its
    max_surge_percent); count failed requests and the time until every answer names ``new``."""
    result = RolloutResult(seconds=seconds, rate=rate)
    try:
        before, after = model_app(PRIMARY, old, constitution), model_app(PRIMARY, new, constitution)
        result.max_surge_percent = after["deployments"][0].get("max_surge_percent")
        rest.deploy([before, platform])
        wait_http(f"{serve_url}/{COMPONENT}/health")
        raw = work / "rollout.bin"
        with raw.open("wb") as sink:
            load = subprocess.Popen(attack_command(vegeta, targets, rate, seconds), stdout=sink)
            try:
                time.sleep(ROLLOUT_LEAD_S)
                called = rest.put([after, platform])
                rest.wait_running([after, platform])
                result.serve_running_s = time.time() - called
            finally:
                load.wait()
        hits = vegeta_hits(vegeta, raw, bodies=True)
    except Exception as error:  # a failed redeploy is a finding, not a crash
        result.error = f"{type(error).__name__}: {error}"
        print(f"  rollout not measured: {result.error}", flush=True)
        return result
    result.requests = len(hits)
    result.failed = sum(h.code != 200 for h in hits)
    result.codes = {str(c): n for c, n in sorted(Counter(h.code for h in hits).items())}
    result.errors = dict(Counter(h.error for h in hits if h.error).most_common(5))
    old_ends = [h.start + h.latency_ms / 1000 for h in hits if h.code == 200 and h.sha256 == old.sha256]
    result.old_answers = len(old_ends)
    result.new_answers = sum(h.code == 200 and h.sha256 == new.sha256 for h in hits)
    answers = [h for h in hits if h.code == 200]
    if answers and answers[-1].sha256 == new.sha256:
        result.switch_s = max(0.0, max(old_ends, default=called) - called)
    print(f"  rollout: {result.failed} failed of {result.requests} (codes {result.codes}); old answers "
          f"{result.old_answers}, new {result.new_answers}; every answer new after "
          f"{'-' if result.switch_s is None else f'{result.switch_s:.1f} s'}; Serve RUNNING after "
          f"{result.serve_running_s or 0:.1f} s", flush=True)
    return result


# --------------------------------------------------------------------------- goals


@dataclass
class Goal:
    id: str
    goal: str
    target: str
    measured: str = "-"
    met: bool | None = None  # None: not measured
    why_not: str = ""

    @property
    def status(self) -> str:
        if self.met is None:
            return f"not measured: {self.why_not}"
        return "met" if self.met else "not met"

    def wire(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class Findings:
    """What the phases measured."""

    results: list[Result] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    route_serve_config: dict[str, Any] | None = None  # the primary application's config, less its args
    platform: dict[str, Attack] = field(default_factory=dict)
    overload_base_rps: float | None = None  # the peak the bursts are multiples of
    overload_base: str = "peak"  # where it came from: the route's peak, else its max RPS, else the fixed rate
    bursts: list[Burst] = field(default_factory=list)
    canary: CanaryResult | None = None
    rollout: RolloutResult | None = None

    def result(self, name: str) -> Result | None:
        return next((r for r in self.results if r.name == name), None)


def _ms_pair(value: float, other: float) -> str:
    return f"{value:.2f} ms (no-op {other:.2f} ms)"


def latency_goals(noop: Result | None, route: Result | None) -> list[Goal]:
    """Goals 1 and 2: the route against the Serve no-op at 100 RPS and at the peak."""
    p50 = Goal("1a", f"route p50 <= no-op p50 + {P50_MARGIN_MS:g} ms at {FIXED_RPS} RPS", "no-op p50 + 1 ms")
    p99 = Goal("1b", f"route p99 <= {P99_FACTOR:g}x no-op p99 at {FIXED_RPS} RPS", f"{P99_FACTOR:g}x no-op p99")
    peak = Goal("2a", f"route peak >= {PEAK_FACTOR:g}x no-op peak (100 % success, p99 <= {P99_BUDGET_MS:g} ms)",
                f"{PEAK_FACTOR:g}x no-op peak")
    floor = Goal("2b", f"route peak >= {PEAK_TARGET_RPS:,} RPS on {os.cpu_count()} cores (target to beat)",
                 f">= {PEAK_TARGET_RPS:,} RPS")
    if route is None or route.fixed is None:
        for goal in (p50, p99, peak, floor):
            goal.why_not = "phase route skipped"
        return [p50, p99, peak, floor]
    floor.measured, floor.met = f"{route.peak_rps:.0f} RPS", route.peak_rps >= PEAK_TARGET_RPS
    if noop is None or noop.fixed is None:
        for goal in (p50, p99, peak):
            goal.why_not = "phase noop skipped"
        return [p50, p99, peak, floor]
    r, n = route.fixed, noop.fixed
    p50.target, p50.measured = f"<= {n.p50_ms + P50_MARGIN_MS:.2f} ms", _ms_pair(r.p50_ms, n.p50_ms)
    p50.met = r.p50_ms <= n.p50_ms + P50_MARGIN_MS
    p99.target = f"<= {P99_FACTOR * n.p99_ms:.2f} ms"
    p99.measured = f"{_ms_pair(r.p99_ms, n.p99_ms)}, {r.p99_ms / n.p99_ms:.2f}x" if n.p99_ms else "-"
    p99.met = r.p99_ms <= P99_FACTOR * n.p99_ms
    peak.target = f">= {PEAK_FACTOR * noop.peak_rps:.0f} RPS"
    if noop.peak_rps:
        peak.measured = (f"route {route.peak_rps:.0f} RPS, no-op {noop.peak_rps:.0f} RPS "
                         f"({route.peak_rps / noop.peak_rps:.2f}x)")
        peak.met = route.peak_rps >= PEAK_FACTOR * noop.peak_rps
    else:
        peak.why_not = "no ladder step of the no-op met the criterion"
    return [p50, p99, peak, floor]


def overload_goals(findings: Findings) -> list[Goal]:
    """Goal 3, for each burst: goodput, only 503 refusals, fast 503s with Retry-After, no long wait, recovery."""
    if not findings.bursts:
        return [Goal(f"3{k} {f}x", what, target, why_not="phase overload skipped")
                for f in OVERLOAD_FACTORS for k, what, target in (
                    ("a", f"goodput at {f}x peak", f">= {GOODPUT_SHARE:.0%} of peak"),
                    ("b", f"refusals at {f}x peak are 503", "503 only"),
                    ("c", f"503 p99 at {f}x peak", f"<= {REFUSAL_P99_MS:g} ms"),
                    ("d", f"longest wait at {f}x peak", f"<= {MAX_WAIT_MS / 1000:g} s"),
                    ("e", f"Retry-After on every 503 at {f}x peak", "every 503"),
                    ("f", f"recovery after {f}x peak", f"<= {RECOVERY_GOAL_S:g} s"))]
    peak = findings.overload_base_rps or 0.0
    goals = []
    for b in findings.bursts:
        rec = b.recovery
        assert rec is not None
        others = b.other_5xx + b.no_response + sum(b.other_codes.values())
        goals += [
            Goal(f"3a {b.label}", f"goodput (200/s) at {b.label} peak ({b.rate} RPS for {b.seconds:g} s)",
                 f">= {GOODPUT_SHARE * peak:.0f}/s ({GOODPUT_SHARE:.0%} of {findings.overload_base} {peak:.0f})",
                 f"{b.goodput_rps:.0f}/s ({b.goodput_rps / peak:.0%} of {peak:.0f})" if peak
                 else f"{b.goodput_rps:.0f}/s",
                 b.goodput_rps >= GOODPUT_SHARE * peak),
            Goal(f"3b {b.label}", f"refusals at {b.label} are 503", "no other non-200 code",
                 f"503: {b.refused}; other 5xx: {b.other_5xx}; no response (0): {b.no_response}; "
                 f"other: {b.other_codes or 0} (of {b.requests})", others == 0),
            Goal(f"3c {b.label}", f"503 p99 latency at {b.label}", f"<= {REFUSAL_P99_MS:g} ms",
                 "no 503" if b.refused_p99_ms is None else f"{b.refused_p99_ms:.1f} ms",
                 b.refused_p99_ms is None or b.refused_p99_ms <= REFUSAL_P99_MS),
            Goal(f"3d {b.label}", f"longest wait of any request at {b.label}", f"<= {MAX_WAIT_MS:g} ms",
                 f"{b.max_ms:.0f} ms", b.max_ms <= MAX_WAIT_MS),
            Goal(f"3e {b.label}", f"Retry-After on every 503 at {b.label}", "every 503",
                 f"{b.refused - b.refused_without_retry_after} of {b.refused} (values {b.retry_after_values or '-'})",
                 b.refused_without_retry_after == 0),
            Goal(f"3f {b.label}", f"seconds until a 1-s window at the steady {rec.rate} RPS is back within "
                 f"{RECOVERY_FACTOR:g}x its p99 before the bursts (all 200)",
                 f"<= {RECOVERY_GOAL_S:g} s (p99 <= {rec.limit_ms:.1f} ms)",
                 f"{'never in ' + str(len(rec.timeline)) + ' s' if rec.seconds is None else f'{rec.seconds:.0f} s'}"
                 f" ({rec.failed} of {rec.requests} failed)",
                 rec.seconds is not None and rec.seconds <= RECOVERY_GOAL_S),
        ]
    return goals


def platform_goals(findings: Findings) -> list[Goal]:
    goals = []
    for route in PLATFORM_ROUTES:
        goal = Goal(f"4 {route}", f"platform GET {route} p99 at {PLATFORM_RPS} RPS", f"<= {PLATFORM_P99_MS:g} ms")
        attack = findings.platform.get(route)
        if attack is None:
            goal.why_not = "phase platform skipped"
        else:
            goal.measured = (f"p50 {attack.p50_ms:.2f} ms, p99 {attack.p99_ms:.2f} ms, "
                             f"success {attack.success:.4f}")
            goal.met = attack.p99_ms <= PLATFORM_P99_MS and attack.success >= 1.0
        goals.append(goal)
    return goals


def canary_goal(canary: CanaryResult | None) -> Goal:
    goal = Goal("5", f"share answered by a {CANARY_PERCENT} % canary", f"{CANARY_PERCENT} +/- {CANARY_TOLERANCE:g} %")
    if canary is None:
        goal.why_not = "phase canary skipped"
    elif canary.error or canary.share is None:
        goal.why_not = canary.error or "no request answered"
    else:
        goal.measured = (f"{canary.share:.1f} % ({canary.canary} of {canary.ok} answers, {canary.requests} sent, "
                         f"codes {canary.codes})")
        goal.met = abs(canary.share - CANARY_PERCENT) <= CANARY_TOLERANCE
    return goal


def rollout_goal(rollout: RolloutResult | None) -> Goal:
    rate = rollout.rate if rollout is not None else FIXED_RPS
    goal = Goal("6", f"failed requests while the model is replaced under {rate} RPS", "0 failed")
    if rollout is None:
        goal.why_not = "phase rollout skipped"
    elif rollout.error:
        goal.why_not = rollout.error
    else:
        switched = ("never within the run" if rollout.switch_s is None
                    else f"{rollout.switch_s:.1f} s after the redeploy call")
        goal.measured = (f"{rollout.failed} of {rollout.requests} failed (codes {rollout.codes}); every answer names "
                         f"the new model {switched}; max_surge_percent {rollout.max_surge_percent}")
        goal.met = rollout.failed == 0 and rollout.switch_s is not None
    return goal


def evaluate_goals(findings: Findings) -> list[Goal]:
    return [*latency_goals(findings.result("serve-noop"), findings.result(PRIMARY.name)),
            *overload_goals(findings), *platform_goals(findings), canary_goal(findings.canary),
            rollout_goal(findings.rollout)]


def goals_table(goals: Sequence[Goal]) -> str:
    rows = ["| # | goal | target | measured | status |", "|---|---|---|---|---|"]
    rows += [f"| {g.id} | {g.goal} | {g.target} | {g.measured} | {g.status} |".replace("\n", " ") for g in goals]
    return "\n".join(rows)


# --------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    rows = [("target", "p50 ms @100", "p99 ms @100", "success", "peak RPS (100%, p99<50ms)", "max RPS", "wrk c=8 RPS",
             "wrk p99 ms", "load")]
    for r in results:
        f = r.fixed
        assert f is not None
        rows.append((r.name, f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", f"{f.success:.4f}", f"{r.peak_rps:.0f}",
                     f"{r.max_rps:.0f}",
                     f"{r.wrk['rps']:.0f}" if r.wrk else "-", f"{r.wrk['p99_ms']:.2f}" if r.wrk else "-",
                     f"{r.load_avg:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def histogram(results: dict[str, list[float]], path: Path) -> None:
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    values_all = [v for vs in results.values() for v in vs if v > 0]
    low, high = (min(values_all), max(values_all)) if values_all else (0.1, 10.0)
    bins = np.logspace(np.log10(max(low, 0.05)), np.log10(max(high, low * 10)), 80)
    for name, values in results.items():
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5,
                label=f"{name} (n={len(values)}, p99 {percentile(values, 99):.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency (ms, log scale) at {FIXED_RPS} RPS, open loop (vegeta)")
    ax.set_ylabel("requests")
    ax.set_title("ACGS constitutional-ai predict: Ray Serve vs bare uvicorn vs Serve no-op")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def overload_figure(bursts: Sequence[Burst], peak_rps: float, path: Path, base: str = "peak") -> None:
    """Per second of each burst and of the 100 RPS after it: goodput (200/s), 503/s and p99."""
    plt = _pyplot()
    fig, (good, refused, p99) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for burst, color in zip(bursts, ("tab:blue", "tab:red", "tab:green", "tab:purple"), strict=False):
        segments = [(burst.timeline, "-", f"{burst.label} peak ({burst.rate} RPS)")]
        if burst.recovery:
            segments.append((burst.recovery.timeline, "--", f"then {burst.recovery.rate} RPS"))
        for seconds, style, label in segments:
            xs = [s.t for s in seconds]
            good.plot(xs, [s.ok for s in seconds], color=color, linestyle=style, marker=".", label=label)
            refused.plot(xs, [s.refused for s in seconds], color=color, linestyle=style, marker=".", label=label)
            p99.plot(xs, [s.p99_ms if s.p99_ms is not None else float("nan") for s in seconds], color=color,
                     linestyle=style, marker=".", label=label)
        for ax in (good, refused, p99):
            ax.axvline(burst.seconds, color=color, linestyle=":", linewidth=1)
        if burst.recovery:
            p99.axhline(burst.recovery.limit_ms, color="grey", linestyle="--", linewidth=1)
    good.axhline(GOODPUT_SHARE * peak_rps, color="grey", linestyle="--", linewidth=1,
                 label=f"{GOODPUT_SHARE:.0%} of {base} {peak_rps:.0f} RPS")
    p99.axhline(MAX_WAIT_MS, color="black", linestyle="--", linewidth=1, label=f"{MAX_WAIT_MS:g} ms")
    good.set_ylabel("HTTP 200 per second")
    refused.set_ylabel("HTTP 503 per second")
    p99.set_ylabel("p99 latency (ms, log), all requests")
    p99.set_yscale("log")
    p99.set_xlabel("seconds since the burst began (dotted: end of the burst; dashed grey: recovery limit)")
    good.set_title("Overload of the constitutional-ai route, then its steady rate")
    for ax in (good, refused, p99):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- in-process costs


def micro(model_dir: str, sha256: str, constitution: Any, bodies: list[bytes], repeats: int = 200) -> dict[str, Any]:
    """Milliseconds per call of the pieces of a request, in this process (no HTTP): the model, the guard's
    evaluator (reference path, bundle without cache, cache hits) on one decision and on a batch, and the whole
    ``predict_batch``."""
    import numpy as np
    import torch

    from acgs_workloads.constitution import SERVING_CACHE_SIZE, ConstitutionEvaluator
    from acgs_workloads.contract import parse_model_args
    from acgs_workloads.serving.model import ServedModel
    from acgs_workloads.serving.service import ModelService

    torch.set_num_threads(1)
    args = parse_model_args({"deployment": "bench/micro", "component": "constitutional-ai", "modelUri": model_dir,
                             "modelSha256": sha256, "constitution": constitution.wire()})
    model = ServedModel(args.component).load(args.model_uri, args.model_sha256)
    requests = [model.component.request_model.model_validate_json(b) for b in bodies]
    out: dict[str, Any] = {}

    def timed(label: str, fn: Any, n: int = repeats) -> None:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        out[label] = round((time.perf_counter() - start) / n * 1000, 4)

    for size in (1, 8, 32):
        batch = requests[:size]
        inference = model.infer(batch)
        decisions = model.decisions_for(inference.cols, np.arange(size), inference.predicted)
        timed(f"model.infer[{size}]", lambda b=batch: model.infer(b))
        reference = ConstitutionEvaluator(constitution)
        timed(f"guard.reference[{size}]", lambda d=decisions, e=reference: [e.evaluate_one(x) for x in d], n=10)
        timed(f"guard.bundle[{size}]", lambda d=decisions, e=reference: e.evaluate(d), n=30)
        cached = ConstitutionEvaluator(constitution, cache_size=SERVING_CACHE_SIZE)
        timed(f"guard.cached-hit[{size}]", lambda d=decisions, e=cached: e.evaluate(d))
        serving = ConstitutionEvaluator(constitution, cache_size=SERVING_CACHE_SIZE)
        for engine, evaluator in (("cached", serving), ("off", None)):
            service = ModelService(args.model_copy(update={"runtime_guard": evaluator is not None}), model, evaluator)
            timed(f"predict_batch.{engine}[{size}]", lambda b=batch, s=service: s.predict_batch(b))
    return out


# --------------------------------------------------------------------------- main


@dataclass
class Bench:
    """What every measurement needs."""

    vegeta: str
    wrk: str | None
    work: Path
    bodies: list[bytes]
    seconds: float
    step_seconds: float
    ladder: tuple[int, ...]

    def measure(self, name: str, description: str, url: str) -> Result:
        return measure(name, description, url, self.bodies, self.work, self.vegeta, self.wrk, self.seconds,
                       self.step_seconds, self.ladder)

    def record(self, findings: Findings, result: Result) -> None:
        findings.results.append(result)
        findings.latencies[result.name] = vegeta_latencies_ms(self.vegeta, self.work / f"{result.name}.fixed.bin")


@contextmanager
def serve_instance(work: Path) -> Iterator[tuple[str, ServeRest]]:
    """Serve on a Ray head of its own (or RAY_ADDRESS's): its HTTP URL and its REST API; all shut down after."""
    import ray
    from ray import serve

    head = None
    if not os.environ.get("RAY_ADDRESS"):
        from acgs_operator.devenv.ray_local import RayHead

        # Ray runs its workers (proxy, replicas) at niceness 15 by default; the bare uvicorn process runs at 0.
        # On a shared machine that alone decides the comparison, so this head's workers run at 0 too.
        os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 - Ray reads this exact name
        head = RayHead(work / "ray", num_cpus=4)
        os.environ["RAY_ADDRESS"] = head.start().address
    else:
        print("using RAY_ADDRESS; its workers may run at Ray's default niceness (15), unlike uvicorn", flush=True)
    try:
        context = ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        if not context.dashboard_url:
            raise RuntimeError("the Ray cluster has no dashboard: the Serve REST API is needed")
        http_options = {"host": "127.0.0.1", "port": free_port()}
        serve.start(http_options=http_options)
        try:
            yield f"http://127.0.0.1:{http_options['port']}", ServeRest(context.dashboard_url, http_options)
        finally:
            serve.shutdown()
            ray.shutdown()
    finally:
        if head is not None:
            head.stop()


def serve_phases(bench: Bench, phases: set[str], serve_url: str, rest: ServeRest, models: list[Model],
                 constitution: Any, opts: argparse.Namespace, findings: Findings) -> None:
    """The phases that run on Serve, in this order: noop, route (+ platform, overload), variants, canary,
    rollout. The platform application runs beside whatever is measured, as the operator deploys it."""
    from ray import serve

    from acgs_operator.modeldeployment.build import platform_application

    primary = models[0]
    platform = platform_application()
    rest.deploy([platform])
    predict_url, health_url = f"{serve_url}/{COMPONENT}/predict", f"{serve_url}/{COMPONENT}/health"
    route_targets = write_targets(bench.work / "route.targets", predict_url, bench.bodies)
    if "noop" in phases:  # a serve.run application: the REST deploys leave it alone
        name = deploy_noop()
        bench.record(findings, bench.measure("serve-noop", "Ray Serve no-op deployment (proxy -> replica, returns "
                                             "{ok: true})", f"{serve_url}/noop"))
        serve.delete(name)
    if phases & {"route", "platform", "overload"}:
        app = model_app(PRIMARY, primary, constitution)
        rest.deploy([app, platform])
        wait_http(health_url)
        findings.route_serve_config = {k: v for k, v in app.items() if k != "args"}
        if "route" in phases:
            result = bench.measure(PRIMARY.name, PRIMARY.description, predict_url)
            result.notes["guard"] = httpx.get(health_url, timeout=10).json().get("guard")
            result.notes["serve_deployment"] = app["deployments"][0]
            bench.record(findings, result)
        if "platform" in phases:
            findings.platform = platform_phase(bench.vegeta, bench.work, serve_url, bench.seconds)
        if "overload" in phases:
            route = findings.result(PRIMARY.name)
            assert route is not None and route.fixed is not None
            # no ladder step may have met the criterion (a busy machine, a short ladder): fall back to the highest
            # rate answered with >= 99.9 % success, then to the fixed rate, and say so in the report
            findings.overload_base_rps = route.peak_rps or route.max_rps or FIXED_RPS
            if not route.peak_rps:
                findings.overload_base = "max RPS, no peak" if route.max_rps else "fixed rate, no peak"
                print(f"  overload: no ladder step of the route met the peak criterion; multiples of "
                      f"{findings.overload_base_rps:.0f} RPS ({findings.overload_base})", flush=True)
            findings.bursts = overload_phase(bench.vegeta, bench.work, route_targets, findings.overload_base_rps,
                                             steady_rate(route), opts.burst_seconds, opts.recovery_seconds)
    if "variants" in phases:
        wanted = None if opts.variants == "all" else set(opts.variants.split(","))
        for variant in VARIANTS:
            if (wanted is not None and variant.name not in wanted) or findings.result(variant.name) is not None:
                continue
            app = model_app(variant, primary, constitution)
            rest.deploy([app, platform])
            wait_http(health_url)
            result = bench.measure(variant.name, variant.description, predict_url)
            result.notes["guard"] = httpx.get(health_url, timeout=10).json().get("guard")
            result.notes["serve_deployment"] = app["deployments"][0]
            bench.record(findings, result)
    route_result = findings.result(PRIMARY.name)
    steady = steady_rate(route_result) if route_result is not None else FIXED_RPS
    if "canary" in phases:
        findings.canary = canary_phase(bench.vegeta, bench.work, rest, serve_url, route_targets, primary, models[1],
                                       constitution, platform, steady)
    if "rollout" in phases:
        findings.rollout = rollout_phase(bench.vegeta, bench.work, rest, serve_url, route_targets, primary,
                                         models[1], constitution, platform, opts.rollout_seconds, steady)


def parse_phases(text: str, parser: argparse.ArgumentParser) -> set[str]:
    phases = set(PHASES) if text == "all" else {p.strip() for p in text.split(",") if p.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    if "overload" in phases and "route" not in phases:
        print("--phases: overload needs the route's peak rate and 100-RPS p99, so route runs too", flush=True)
        phases.add("route")
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="all", help=f"comma-separated phases (default: all): {', '.join(PHASES)}")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="duration of each fixed-rate run (100 RPS; the platform routes at 50 RPS)")
    parser.add_argument("--step-seconds", type=float, default=4.0, help="duration of each ladder step")
    parser.add_argument("--ladder", default=",".join(map(str, LADDER)), help="comma-separated rates of the ladder")
    parser.add_argument("--burst-seconds", type=float, default=30.0, help="duration of each overload burst")
    parser.add_argument("--recovery-seconds", type=float, default=10.0, help="100 RPS after each burst")
    parser.add_argument("--rollout-seconds", type=float, default=60.0,
                        help=f"100 RPS during the rollout phase (the redeploy comes {ROLLOUT_LEAD_S:g} s in)")
    parser.add_argument("--bodies", type=int, default=256, help="distinct request bodies to cycle through")
    parser.add_argument("--variants", default="all", help="comma-separated Serve variants (default: all)")
    parser.add_argument("--serve-env", default="", help="KEY=VALUE,... set for the Ray head (Serve env knobs)")
    parser.add_argument("--skip-bare", action="store_true", help="leave out the bare phase")
    parser.add_argument("--tag", default="", help="suffix of the report files")
    parser.add_argument("--bare-uvicorn", nargs=2, metavar=("ARGS_JSON", "PORT"), help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.bare_uvicorn:
        run_bare_uvicorn(opts.bare_uvicorn[0], int(opts.bare_uvicorn[1]))
        return 0
    phases = parse_phases(opts.phases, parser)
    if opts.skip_bare:
        phases.discard("bare")
    try:
        ladder = tuple(int(r) for r in opts.ladder.split(","))
    except ValueError:
        parser.error(f"--ladder: comma-separated integers, not {opts.ladder!r}")

    vegeta, wrk = tool("vegeta"), tool("wrk")
    if vegeta is None:
        print("vegeta not found: GOBIN=~/.cache/acgs/bin go install github.com/tsenart/vegeta/v12@v12.13.0",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="acgs-bench-serving-"))
    print(f"phases {', '.join(p for p in PHASES if p in phases)}; training the constitutional-ai model into {work} ...",
          flush=True)
    primary, constitution = train_model(work / "artifacts")
    models = [primary]
    if phases & {"canary", "rollout"}:  # a second model: same data, another seed, so other weights
        second, _ = train_model(work / "artifacts", run_id="bench-cai-2", seed=43)
        print(f"second model {second.sha256[:12]} (primary {primary.sha256[:12]})", flush=True)
        models.append(second)
    base_args = {"deployment": f"{NAMESPACE}/{COMPONENT}", "component": COMPONENT, "modelUri": primary.uri,
                 "modelSha256": primary.sha256, "constitution": constitution.wire(), "runtimeGuard": True}
    bodies = request_bodies(constitution.hash, opts.bodies)
    bench = Bench(vegeta, wrk, work, bodies, opts.seconds, opts.step_seconds, ladder)
    micro_costs: dict[str, Any] = {}
    if "micro" in phases:
        micro_costs = micro(primary.uri, primary.sha256, constitution, bodies)
        print("in-process ms per call: " + ", ".join(f"{k} {v}" for k, v in micro_costs.items()), flush=True)
    findings = Findings()

    if "bare" in phases:  # the same app without Ray
        args_file = work / "args.json"
        args_file.write_text(json.dumps(base_args))
        port = free_port()
        proc = bare_uvicorn(args_file, port)
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
            print("bare uvicorn up", flush=True)
            bench.record(findings, bench.measure("uvicorn-bare", "the same FastAPI app, cached guard, one uvicorn "
                                                 "worker", f"http://127.0.0.1:{port}/predict"))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for pair in filter(None, opts.serve_env.split(",")):
        key, _, value = pair.partition("=")
        os.environ[key] = value
    if phases - {"bare", "micro"}:
        with serve_instance(work) as (serve_url, rest):
            serve_phases(bench, phases, serve_url, rest, models, constitution, opts, findings)

    results = findings.results
    if results:
        print()
        print(table(results))
    bare = findings.result("uvicorn-bare")
    serve_results = [r for r in results if r.name.startswith("serve-") and r.name != "serve-noop"]
    if serve_results and bare is not None and bare.fixed:
        best = min(serve_results, key=lambda r: (r.fixed.p99_ms if r.fixed else 1e9) - r.peak_rps / 1e4)
        assert best.fixed is not None
        print(f"\n(a)/(b) for {best.name}: p99 {best.fixed.p99_ms / bare.fixed.p99_ms:.2f}x, "
              f"peak RPS {best.peak_rps / max(bare.peak_rps, 1):.2f}x; "
              f"goals p99 <= 5 ms: {'met' if best.fixed.p99_ms <= 5 else 'NOT met'}, "
              f">= 1000 RPS: {'met' if best.peak_rps >= 1000 else 'NOT met'}")
    goals = evaluate_goals(findings)
    print("\nGoals (Serving at the Ray Serve floor):\n")
    print(goals_table(goals))

    suffix = f"-{opts.tag}" if opts.tag else ""
    out = write_json(f"serving{suffix}.json", {
        "cpus": os.cpu_count(), "serve_env": opts.serve_env, "phases": [p for p in PHASES if p in phases],
        "durations_s": {"fixed": opts.seconds, "ladder_step": opts.step_seconds, "burst": opts.burst_seconds,
                        "recovery": opts.recovery_seconds, "rollout": opts.rollout_seconds},
        "ladder": list(ladder),
        "peak_criterion": {"success": PEAK_SUCCESS, "p99_ms": P99_BUDGET_MS},
        "models": {"primary": asdict(primary), "second": asdict(models[1]) if len(models) > 1 else None},
        "in_process_ms": micro_costs, "results": [asdict(r) for r in results],
        "route_serve_config": findings.route_serve_config,
        "platform": {route: asdict(a) for route, a in findings.platform.items()},
        "overload": {"base_rps": findings.overload_base_rps, "base": findings.overload_base,
                     "bursts": [asdict(b) for b in findings.bursts]},
        "canary": asdict(findings.canary) if findings.canary else None,
        "rollout": asdict(findings.rollout) if findings.rollout else None,
        "goals": [g.wire() for g in goals],
        "wall_s": round(time.monotonic() - started, 1),
    })
    written = [out]
    if findings.latencies:
        png = REPORTS / f"serving_latency{suffix}.png"
        histogram({k: v for k, v in findings.latencies.items()
                   if k in ("uvicorn-bare", "serve-noop", "serve-cached-batch8")} or findings.latencies, png)
        written.append(png)
    if findings.bursts:
        png = REPORTS / f"serving_overload{suffix}.png"
        overload_figure(findings.bursts, findings.overload_base_rps or 0.0, png, findings.overload_base)
        written.append(png)
    print(f"\nwrote {', '.join(map(str, written))} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
