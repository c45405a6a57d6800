"""Apply -> Ray job RUNNING and apply -> route serving, on a warm local Ray, through the real operator.

    python benchmarks/bench_operator_latency.py --runs 10 --consistency 5 1

Starts a local control plane, a Ray head and (per consistency setting) the operator; trains one small
model for the deployments; then, per run, creates a TrainingJob and times until its status says
Running, and creates a ModelDeployment and times until its route answers HTTP 200 (and until its
status says Ready). An anchor deployment keeps Serve warm. Prints p50/p95 per setting, writes JSON
and a PNG to reports/benchmarks/.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes

from acgs_operator.devenv.controlplane import ControlPlane
from acgs_operator.devenv.embedded import OperatorProcess, install_crds
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until
from acgs_operator.devenv.ray_local import RayHead

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, NS = "acgs.io", "v1alpha1", "default"
TRAINING = {
    "component": "constitutional-ai",
    "constitutionRef": {"name": "default"},
    "dataset": {"generator": {"examples": 1200, "seed": 3}},
    "training": {"epochs": 2},
    "evaluation": {"gates": {"minCompliance": 0.5}},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Cluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(kubeconfig)))

    def create(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"trainingjobs": "TrainingJob", "modeldeployments": "ModelDeployment"}[plural]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
        self.api.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return self.api.get_namespaced_custom_object(GROUP, VERSION, NS, plural, name).get("status") or {}

    def delete(self, plural: str, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, NS, plural, name)

    def gone(self, plural: str, name: str) -> bool:
        try:
            self.api.get_namespaced_custom_object(GROUP, VERSION, NS, plural, name)
        except kubernetes.client.ApiException as exc:
            return exc.status == 404
        return False


def poll(probe: Any, timeout: float = 120.0, interval: float = 0.05) -> float:
    """Seconds until ``probe()`` is truthy."""
    start = time.monotonic()
    wait_until(probe, timeout=timeout, interval=interval, what="benchmark condition")
    return time.monotonic() - start


def route_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def measure(cluster: Cluster, serve: str, runs: int, label: str) -> dict[str, list[float]]:
    running, serving, ready = [], [], []
    for i in range(runs):
        name = f"lat-{label}-{i}"
        t = time.monotonic()
        cluster.create("trainingjobs", name, TRAINING)
        poll(
            lambda name=name: (
                cluster.status("trainingjobs", name).get("phase") in ("Running", "Evaluating", "Succeeded")
            )
        )
        running.append(time.monotonic() - t)
        cluster.delete("trainingjobs", name)

        prefix = f"/lat-{label}-{i}"
        spec = {
            "model": {"trainingJobRef": {"name": "bench-model"}},
            "constitutionRef": {"name": "default"},
            "routePrefix": prefix,
            "compliance": {"minScore": 0.0},
        }
        t = time.monotonic()
        cluster.create("modeldeployments", name, spec)
        poll(lambda prefix=prefix: route_ok(f"{serve}{prefix}/health"))
        serving.append(time.monotonic() - t)
        poll(lambda name=name: cluster.status("modeldeployments", name).get("phase") == "Ready")
        ready.append(time.monotonic() - t)
        cluster.delete("modeldeployments", name)
        poll(lambda name=name: cluster.gone("modeldeployments", name), timeout=60)
        poll(lambda name=name: cluster.gone("trainingjobs", name), timeout=60)
        print(
            f"  [{label}] run {i + 1}/{runs}: running {running[-1]:.2f}s  serving {serving[-1]:.2f}s  "
            f"ready {ready[-1]:.2f}s",
            flush=True,
        )
    return {"apply_to_running": running, "apply_to_serving": serving, "apply_to_ready": ready}


def measure_direct(dashboard: str, serve: str, runs: int) -> dict[str, list[float]]:
    """The same two paths without the operator: Ray's own share of the latency (the baseline)."""
    job_running, put_serving = [], []
    api = httpx.Client(base_url=dashboard, timeout=90)
    for i in range(runs):
        sid = f"direct-{i}-{time.time_ns()}"
        t = time.monotonic()
        api.post(
            "/api/jobs/",
            json={"submission_id": sid, "entrypoint": f"{sys.executable} -c 'import time; time.sleep(60)'"},
        ).raise_for_status()
        poll(lambda sid=sid: api.get(f"/api/jobs/{sid}").json()["status"] == "RUNNING")
        job_running.append(time.monotonic() - t)
        api.post(f"/api/jobs/{sid}/stop")

        apps = api.get("/api/serve/applications/").json()["applications"]
        configs = [a["deployed_app_config"] for a in apps.values() if a.get("deployed_app_config")]
        model = next(c for c in configs if c["route_prefix"] == "/anchor")
        prefix = f"/direct-{i}"
        extra = {**model, "name": f"direct-{i}", "route_prefix": prefix}
        t = time.monotonic()
        api.put("/api/serve/applications/", json={"applications": [*configs, extra]}).raise_for_status()
        poll(lambda prefix=prefix: route_ok(f"{serve}{prefix}/health"))
        put_serving.append(time.monotonic() - t)
        api.put("/api/serve/applications/", json={"applications": configs}).raise_for_status()
        poll(lambda prefix=prefix: not route_ok(f"{serve}{prefix}/health"), timeout=60)
        print(
            f"  [direct] run {i + 1}/{runs}: job running {job_running[-1]:.2f}s  serving {put_serving[-1]:.2f}s",
            flush=True,
        )
    return {"ray_job_submit_to_running": job_running, "serve_put_to_serving": put_serving}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--consistency", type=float, nargs="+", default=[5.0, 1.0])
    args = parser.parse_args()
    # a killed benchmark must still stop the services it started (they run in their own sessions)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = ROOT / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="acgs-bench-"))
    plane, head = ControlPlane(work / "cp"), RayHead(work / "ray")
    plane.start()
    results: dict[str, Any] = {}
    try:
        kubectl = Kubectl(plane.kubeconfig)
        install_crds(kubectl)
        state = head.start()
        serve = f"http://127.0.0.1:{state.serve_port}"
        kubectl.run("apply", "-n", NS, "-f", str(ROOT / "manifests" / "constitution.yaml"))
        cluster = Cluster(plane.kubeconfig)
        for setting in args.consistency:
            operator = OperatorProcess(
                plane.kubeconfig,
                state.dashboard_url,
                str(work / "artifacts"),
                work / f"operator-{setting}.log",
                serve_port=state.serve_port,
                extra_env={"ACGS_CONSISTENCY_TIMEOUT": str(setting)},
            ).start()
            try:
                if "bench-model" not in results:
                    print("training the model the deployments serve ...", flush=True)
                    cluster.create("trainingjobs", "bench-model", TRAINING)
                    kubectl.run(
                        "wait",
                        "-n",
                        NS,
                        "--for=condition=Complete",
                        "--timeout=600s",
                        "trainingjob/bench-model",
                        timeout=620,
                    )
                    anchor = {
                        "model": {"trainingJobRef": {"name": "bench-model"}},
                        "constitutionRef": {"name": "default"},
                        "routePrefix": "/anchor",
                        "compliance": {"minScore": 0.0},
                    }
                    cluster.create("modeldeployments", "anchor", anchor)
                    poll(lambda: route_ok(f"{serve}/anchor/health"), timeout=300)
                    results["bench-model"] = True
                results[str(setting)] = measure(cluster, serve, args.runs, f"c{setting:g}".replace(".", "_"))
                if "direct" not in results:
                    results["direct"] = measure_direct(state.dashboard_url, serve, args.runs)
            finally:
                operator.stop()
    finally:
        head.stop()
        plane.stop()
    report(results, args, out)


def report(results: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    rows = []
    print(f"\n{'consistency':>11} | {'metric':<26} | {'p50 s':>6} | {'p95 s':>6} | {'mean s':>6} | runs")
    for setting in [*args.consistency, "direct"]:
        for metric, values in results[str(setting)].items():
            row = {
                "consistency_timeout": setting,  # "direct": Ray alone, no operator
                "metric": metric,
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
                "mean": statistics.fmean(values),
                "runs": len(values),
            }
            rows.append(row)
            print(
                f"{setting!s:>11} | {metric:<26} | {row['p50']:6.2f} | {row['p95']:6.2f} | {row['mean']:6.2f} | "
                f"{len(values)}"
            )
    (out / "operator_latency.json").write_text(json.dumps({"rows": rows, "raw": results}, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric in zip(axes, ("apply_to_running", "apply_to_serving"), strict=True):
            data = [results[str(s)][metric] for s in args.consistency]
            ax.boxplot(data, tick_labels=[f"consistency {s:g}s" for s in args.consistency])
            ax.set_title(metric.replace("_", " "))
            ax.set_ylabel("seconds")
        fig.tight_layout()
        fig.savefig(out / "operator_latency.png", dpi=110)
    except ImportError:
        pass
    print(f"\nwrote {out / 'operator_latency.json'}")


if __name__ == "__main__":
    main()
