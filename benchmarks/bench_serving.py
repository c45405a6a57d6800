"""Serving benchmark: the constitutional-ai predict route through Ray Serve vs. bare uvicorn vs. a Serve no-op.

One run trains a small constitutional-ai model (plain torch), deploys it on Ray Serve in several configurations
(runtime-guard engine, batching, guard off), runs the same FastAPI app under bare uvicorn, deploys a Serve
no-op, and measures each with a real load generator:

- vegeta (open loop, fixed rate): p50/p99 at 100 RPS, then a rate ladder for the peak rate whose p99 stays
  under 50 ms with >= 99.9% success;
- wrk (closed loop, low concurrency) when installed: requests/s and p99 at 8 connections.

Requests cycle through a pool of distinct bodies drawn from the component's generator. Results are printed as
a table and saved to ``reports/benchmarks/serving.json`` with a latency histogram ``serving_latency.png``.

    python benchmarks/bench_serving.py                 # starts its own Ray head
    RAY_ADDRESS=127.0.0.1:6379 python benchmarks/bench_serving.py

vegeta: `make setup` builds it into ~/.cache/acgs/bin (`acgs dev build-binaries --only vegeta`); wrk: apt install wrk.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "benchmarks"
FIXED_RPS = 100
P99_BUDGET_MS = 50.0
LADDER = (50, 100, 200, 300, 400, 600, 800, 1000, 1300, 1600, 2000)


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


def load_average() -> float:
    return os.getloadavg()[0]


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


def write_targets(path: Path, url: str, bodies: list[bytes]) -> None:
    with path.open("w") as out:
        for body in bodies:
            out.write(json.dumps({"method": "POST", "url": url, "body": base64.b64encode(body).decode(),
                                  "header": {"Content-Type": ["application/json"]}}) + "\n")


def vegeta_attack(vegeta: str, targets: Path, rate: int, seconds: float, raw: Path | None = None) -> Attack:
    out = raw or targets.with_suffix(f".{rate}.bin")
    with out.open("wb") as sink:
        subprocess.run([vegeta, "attack", f"-targets={targets}", "-format=json", f"-rate={rate}/s",
                        f"-duration={seconds}s", "-timeout=10s", "-keepalive=true"], stdout=sink, check=True)
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
    peak_rps: float = 0.0  # highest sustained rate with p99 under the budget and >= 99.9% success
    max_rps: float = 0.0  # highest sustained rate with >= 99.9% success, whatever the tail
    ladder: list[Attack] = field(default_factory=list)
    wrk: dict[str, float] | None = None
    load_avg: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def measure(name: str, description: str, url: str, bodies: list[bytes], work: Path, vegeta: str,
            wrk: str | None, seconds: float, step_seconds: float) -> Result:
    result = Result(name=name, description=description, load_avg=load_average())
    targets = work / f"{name}.targets"
    write_targets(targets, url, bodies)
    vegeta_attack(vegeta, targets, FIXED_RPS, 3)  # warm-up: caches, JIT paths, connection pools
    result.fixed = vegeta_attack(vegeta, targets, FIXED_RPS, seconds, raw=work / f"{name}.fixed.bin")
    for rate in LADDER:
        attack = vegeta_attack(vegeta, targets, rate, step_seconds)
        result.ladder.append(attack)
        if attack.success >= 0.999:
            result.max_rps = max(result.max_rps, attack.throughput)
            if attack.p99_ms <= P99_BUDGET_MS:
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
          f"(success {f.success:.4f}); peak {result.peak_rps:.0f} RPS with p99 < {P99_BUDGET_MS:.0f} ms, "
          f"max {result.max_rps:.0f} RPS; "
          f"load {result.load_avg:.1f}", flush=True)
    return result


# --------------------------------------------------------------------------- the model and its bodies


def train_model(root: Path) -> tuple[Any, Any]:
    from acgs_workloads.constitution import default_constitution
    from acgs_workloads.contract import DatasetSpec, GeneratorSpec, ModelSpec, TrainingSpec, TrainRunConfig
    from acgs_workloads.train import run

    constitution = default_constitution()
    cfg = TrainRunConfig(run_id="bench-cai", component="constitutional-ai", constitution=constitution,
                         dataset=DatasetSpec(generator=GeneratorSpec(examples=4000, seed=11)),
                         model=ModelSpec(hidden_size=64, layers=2),
                         training=TrainingSpec(epochs=3, batch_size=64), artifact_root=str(root), use_ray=False)
    return run(cfg), constitution


def request_bodies(constitution_hash: str, count: int) -> list[bytes]:
    from acgs_workloads.components import get
    from acgs_workloads.contract import ModelSpec

    component = get("constitutional-ai")
    cols = component.generate(count, 2024, ModelSpec())
    return [json.dumps(component.request_for(cols, i, constitution_hash)).encode() for i in range(count)]


# --------------------------------------------------------------------------- targets


def bare_uvicorn(args_file: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, __file__, "--bare-uvicorn", str(args_file), str(port)], env=env)


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
    max_ongoing_requests: int | None = None
    access_log: bool = True


VARIANTS = (
    ServeVariant("serve-guard-cached", "Serve, guard = constitution evaluator (bundle + decision cache)"),
    ServeVariant("serve-cached-batch8", "Serve, cached guard, @serve.batch(8, 2 ms)",
                 batching={"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0}),
    ServeVariant("serve-cached-batch32", "Serve, cached guard, @serve.batch(32, 1 ms), max_ongoing 128",
                 batching={"maxBatchSize": 32, "batchWaitTimeoutMs": 1.0}, max_ongoing_requests=128),
    ServeVariant("serve-batch32-quiet", "as serve-cached-batch32, per-request access log off (logging_config)",
                 batching={"maxBatchSize": 32, "batchWaitTimeoutMs": 1.0}, max_ongoing_requests=128, access_log=False),
    ServeVariant("serve-guard-off", "Serve, runtime guard off, batch(8, 2 ms)", runtime_guard=False,
                 batching={"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0}),
)


def deploy_variant(variant: ServeVariant, base_args: dict[str, Any]) -> str:
    from ray import serve

    from acgs_workloads.serving.app import build_app

    args = dict(base_args, runtimeGuard=variant.runtime_guard)
    if variant.batching:
        args["batching"] = variant.batching
    app = build_app(args)
    options: dict[str, Any] = {
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": 1, "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}}},
    }
    if variant.max_ongoing_requests:
        options["max_ongoing_requests"] = variant.max_ongoing_requests
    if not variant.access_log:
        options["logging_config"] = {"enable_access_log": False, "log_level": "WARNING"}
    deployment = app._bound_deployment  # the Serve config's `deployments:` override, in Python
    app = deployment.options(**options).bind(*deployment.init_args)
    name = f"bench-{variant.name}"
    serve.run(app, name=name, route_prefix="/constitutional-ai")
    return name


def deploy_noop() -> str:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(name="Noop", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
    class Noop:
        async def __call__(self, request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse({"ok": True})

    serve.run(Noop.bind(), name="bench-noop", route_prefix="/noop")
    return "bench-noop"


# --------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    rows = [("target", "p50 ms @100", "p99 ms @100", "success", "peak RPS (p99<50ms)", "max RPS", "wrk c=8 RPS",
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


def histogram(results: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 5))
    values_all = [v for vs in results.values() for v in vs if v > 0]
    low, high = (min(values_all), max(values_all)) if values_all else (0.1, 10.0)
    bins = np.logspace(np.log10(max(low, 0.05)), np.log10(max(high, low * 10)), 80)
    for name, values in results.items():
        ordered = sorted(values)
        p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5,
                label=f"{name} (n={len(values)}, p99 {p99:.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency (ms, log scale) at {FIXED_RPS} RPS, open loop (vegeta)")
    ax.set_ylabel("requests")
    ax.set_title("ACGS constitutional-ai predict: Ray Serve vs bare uvicorn vs Serve no-op")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the fixed-rate run")
    parser.add_argument("--step-seconds", type=float, default=4.0, help="duration of each ladder step")
    parser.add_argument("--bodies", type=int, default=256, help="distinct request bodies to cycle through")
    parser.add_argument("--variants", default="all", help="comma-separated Serve variants (default: all)")
    parser.add_argument("--serve-env", default="", help="KEY=VALUE,... set for the Ray head (Serve env knobs)")
    parser.add_argument("--skip-bare", action="store_true", help="do not measure bare uvicorn")
    parser.add_argument("--tag", default="", help="suffix of the report files")
    parser.add_argument("--bare-uvicorn", nargs=2, metavar=("ARGS_JSON", "PORT"), help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.bare_uvicorn:
        run_bare_uvicorn(opts.bare_uvicorn[0], int(opts.bare_uvicorn[1]))
        return 0

    vegeta, wrk = tool("vegeta"), tool("wrk")
    if vegeta is None:
        print("vegeta not found: GOBIN=~/.cache/acgs/bin go install github.com/tsenart/vegeta/v12@v12.13.0",
              file=sys.stderr)
        return 2
    REPORTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="acgs-bench-serving-"))
    print(f"training the constitutional-ai model into {work} ...", flush=True)
    trained, constitution = train_model(work / "artifacts")
    model_dir = trained.model.uri.rsplit("/", 1)[0]
    base_args = {"deployment": "bench/constitutional-ai", "component": "constitutional-ai", "modelUri": model_dir,
                 "modelSha256": trained.model.sha256, "constitution": constitution.wire(), "runtimeGuard": True}
    bodies = request_bodies(constitution.hash, opts.bodies)
    micro_costs = micro(model_dir, trained.model.sha256, constitution, bodies)
    print("in-process ms per call: " + ", ".join(f"{k} {v}" for k, v in micro_costs.items()), flush=True)
    results: list[Result] = []
    latencies: dict[str, list[float]] = {}

    # (b) bare uvicorn: the same app without Ray
    args_file = work / "args.json"
    args_file.write_text(json.dumps(base_args))
    port = free_port()
    proc = None if opts.skip_bare else bare_uvicorn(args_file, port)
    try:
        if proc is not None:
            wait_http(f"http://127.0.0.1:{port}/health")
            print("bare uvicorn up", flush=True)
            res = measure("uvicorn-bare", "the same FastAPI app, cached guard, one uvicorn worker",
                          f"http://127.0.0.1:{port}/predict", bodies, work, vegeta, wrk, opts.seconds,
                          opts.step_seconds)
            results.append(res)
            latencies["uvicorn-bare"] = vegeta_latencies_ms(vegeta, work / "uvicorn-bare.fixed.bin")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    for pair in filter(None, opts.serve_env.split(",")):
        key, _, value = pair.partition("=")
        os.environ[key] = value

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
    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    from ray.serve.context import _get_global_client

    serve_url = f"http://127.0.0.1:{_get_global_client().http_config.port}"
    try:
        # (c) a Serve no-op deployment: the cost of the proxy + router + replica hop
        name = deploy_noop()
        res = measure("serve-noop", "Ray Serve no-op deployment (proxy -> replica, returns {ok: true})",
                      f"{serve_url}/noop", bodies, work, vegeta, wrk, opts.seconds, opts.step_seconds)
        results.append(res)
        latencies["serve-noop"] = vegeta_latencies_ms(vegeta, work / "serve-noop.fixed.bin")
        serve.delete(name)
        # (a) the model through Serve, one tuning step at a time
        wanted = None if opts.variants == "all" else set(opts.variants.split(","))
        for variant in VARIANTS:
            if wanted is not None and variant.name not in wanted:
                continue
            name = deploy_variant(variant, base_args)
            url = f"{serve_url}/constitutional-ai/predict"
            wait_http(f"{serve_url}/constitutional-ai/health")
            res = measure(variant.name, variant.description, url, bodies, work, vegeta, wrk, opts.seconds,
                          opts.step_seconds)
            res.notes["guard"] = httpx.get(f"{serve_url}/constitutional-ai/health", timeout=10).json().get("guard")
            results.append(res)
            latencies[variant.name] = vegeta_latencies_ms(vegeta, work / f"{variant.name}.fixed.bin")
            serve.delete(name)
    finally:
        serve.shutdown()
        ray.shutdown()
        if head is not None:
            head.stop()

    print()
    print(table(results))
    bare = next((r for r in results if r.name == "uvicorn-bare"), None)
    serve_results = [r for r in results if r.name.startswith("serve-") and r.name != "serve-noop"]
    if serve_results and bare is not None and bare.fixed:
        best = min(serve_results, key=lambda r: (r.fixed.p99_ms if r.fixed else 1e9) - r.peak_rps / 1e4)
        assert best.fixed is not None
        print(f"\n(a)/(b) for {best.name}: p99 {best.fixed.p99_ms / bare.fixed.p99_ms:.2f}x, "
              f"peak RPS {best.peak_rps / max(bare.peak_rps, 1):.2f}x; "
              f"goals p99 <= 5 ms: {'met' if best.fixed.p99_ms <= 5 else 'NOT met'}, "
              f">= 1000 RPS: {'met' if best.peak_rps >= 1000 else 'NOT met'}")
    suffix = f"-{opts.tag}" if opts.tag else ""
    out = REPORTS / f"serving{suffix}.json"
    out.write_text(json.dumps({"cpus": os.cpu_count(), "serve_env": opts.serve_env, "in_process_ms": micro_costs,
                               "results": [asdict(r) for r in results]}, indent=2))
    png = REPORTS / f"serving_latency{suffix}.png"
    histogram({k: v for k, v in latencies.items() if k in ("uvicorn-bare", "serve-noop", "serve-cached-batch8")}
              or latencies, png)
    print(f"\nwrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
