"""Case 9: 1,000 TrainingJobs applied at once are all reconciled by one operator; its peak RSS and CPU.

The TrainingJobs are suspended (``spec.suspend: true``): the operator parses each one, checks that no Ray
job of that generation runs (one Ray dashboard request), and writes phase ``Suspended`` with
``observedGeneration``; no Ray work starts. A fresh operator process does the work (the session's
operator is paused meanwhile, so every reconcile is this one's) while a sampler reads its RSS and CPU
time from ``/proc`` every 0.5 s. The objects are created from a thread pool through the Kubernetes API,
then deleted as a collection: every finalizer must be removed by the operator.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from acgs_operator.api.v1alpha1 import GROUP, VERSION
from acgs_operator.config import FINALIZER
from acgs_operator.devenv.kubectl import Kubectl
from acgs_workloads.contract import COMPONENTS

CASE = "9"
TITLE = "scale: 1,000 TrainingJobs applied at once"
GOAL = "all reconciled and deleted; operator peak RSS <= 200 MB"
COUNT = int(os.environ.get("ACGS_SCALE_COUNT", "1000"))
PLURAL = "trainingjobs"
RECONCILE_DEADLINE_S = 150.0
DELETE_DEADLINE_S = 90.0
RSS_GOAL_MB = 200.0
CREATE_THREADS = 16
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc sampling


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and its reaped children (utime, stime, cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICKS


@dataclass
class Sampler:
    """Samples the RSS (process tree) and CPU time of one process every ``interval`` seconds."""

    pid: int
    interval: float = 0.5
    peak_rss: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> tuple[int, float]:
        total = 0
        cpu = 0.0
        for pid in descendants(self.pid):
            try:
                total += rss_bytes(pid)
                cpu += cpu_seconds(pid)
            except OSError:
                continue  # exited between the listing and the read
        self.peak_rss = max(self.peak_rss, total)
        self.samples += 1
        return total, cpu

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --------------------------------------------------------------------------- Kubernetes helpers


def training_job(index: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": f"scale-{index:04d}", "labels": {"acgs.io/case": "scale"}},
        "spec": {
            "component": COMPONENTS[index % len(COMPONENTS)],
            "constitutionRef": {"name": "default"},
            "dataset": {"generator": {"examples": 64, "seed": index}},
            "training": {"epochs": 1},
            "suspend": True,
        },
    }


def reconciled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    return status.get("phase") == "Suspended" and status.get("observedGeneration") == item["metadata"]["generation"]


@dataclass
class Cluster:
    api: Any  # kubernetes.client.CustomObjectsApi
    namespace: str

    def list(self) -> list[dict[str, Any]]:
        return list(self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"])

    def create(self, body: dict[str, Any]) -> None:
        self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def delete_all(self) -> None:
        self.api.delete_collection_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)

    def drop_finalizers(self) -> None:
        """Last resort of the cleanup when the operator did not finish: nothing may stay behind."""
        for item in self.list():
            if FINALIZER in (item["metadata"].get("finalizers") or []):
                patch = {"metadata": {"finalizers": None}}
                self.api.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, item["metadata"]["name"], patch
                )


def poll(probe: Any, deadline_s: float, interval: float = 2.0) -> float | None:
    """Seconds until ``probe()`` is true, or None when ``deadline_s`` passed."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if probe():
            return time.monotonic() - start
        time.sleep(interval)
    return None


@pytest.fixture
def cluster(control_plane: Path, kubectl: Kubectl) -> Iterator[Cluster]:
    import kubernetes

    namespace = f"t-scale-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", namespace)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(control_plane), client_configuration=configuration)
    configuration.connection_pool_maxsize = CREATE_THREADS
    client = kubernetes.client.ApiClient(configuration)
    try:
        yield Cluster(kubernetes.client.CustomObjectsApi(client), namespace)
    finally:
        client.close()
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def sole_operator(acgs_operator, operator_factory):  # type: ignore[no-untyped-def]
    """A fresh operator that is the only one running: the session's is stopped meanwhile, then restarted."""
    acgs_operator.stop()
    fresh = None
    try:
        fresh = operator_factory()
        yield fresh
    finally:
        if fresh is not None and fresh.process is not None:
            fresh.process.stop(grace=5)  # kopf lingers on SIGTERM; nothing of this operator's is left to finish
        acgs_operator.start()


# --------------------------------------------------------------------------- the case


@pytest.mark.case(CASE)
def test_a_thousand_training_jobs_are_reconciled(
    cluster: Cluster, sole_operator: Any, reliability_report: Any
) -> None:
    pid = sole_operator.process.pid
    sampler = Sampler(pid)
    idle_rss, cpu_at_start = sampler.sample()
    figures: dict[str, Any] = {
        "objects": COUNT,
        "operator_idle_rss_mb": round(idle_rss / 2**20, 1),
        "host_load_1m_at_start": os.getloadavg()[0],  # the machine's other work slows every figure below
        "host_cpus": os.cpu_count(),
    }
    deleted = False
    try:
        with sampler:
            start = time.monotonic()
            with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
                list(pool.map(cluster.create, (training_job(i) for i in range(COUNT))))
            figures["apply_seconds"] = round(time.monotonic() - start, 1)

            def all_reconciled() -> bool:
                return sum(reconciled(item) for item in cluster.list()) == COUNT

            waited = poll(all_reconciled, RECONCILE_DEADLINE_S)
            done = sum(reconciled(item) for item in cluster.list())
            figures["reconciled"] = done
            if waited is not None:
                total = time.monotonic() - start
                figures["apply_to_all_reconciled_seconds"] = round(total, 1)
                figures["reconciles_per_second"] = round(COUNT / total, 1)
            _, cpu_reconciled = sampler.sample()
            figures["operator_cpu_seconds_reconcile"] = round(cpu_reconciled - cpu_at_start, 1)

            start = time.monotonic()
            cluster.delete_all()
            waited_delete = poll(lambda: not cluster.list(), DELETE_DEADLINE_S)
            deleted = waited_delete is not None
            figures["left_after_delete"] = len(cluster.list())
            if deleted:
                figures["delete_all_seconds"] = round(time.monotonic() - start, 1)
            _, cpu_end = sampler.sample()
            figures["operator_cpu_seconds_delete"] = round(cpu_end - cpu_reconciled, 1)
        figures["operator_peak_rss_mb"] = round(sampler.peak_rss / 2**20, 1)
        figures["rss_samples"] = sampler.samples
        # reported, not asserted (see the README): the idle operator alone is most of the budget
        figures["rss_goal_met"] = "yes" if sampler.peak_rss <= RSS_GOAL_MB * 2**20 else "no"
        figures["host_load_1m_at_end"] = os.getloadavg()[0]
        reliability_report.record(CASE, TITLE, goal=GOAL, **figures)
        assert done == COUNT, f"only {done} of {COUNT} TrainingJobs reconciled in {RECONCILE_DEADLINE_S:.0f}s"
        assert deleted, f"{figures['left_after_delete']} TrainingJobs left {DELETE_DEADLINE_S:.0f}s after deletion"
    finally:
        if not deleted:
            cluster.delete_all()
            cluster.drop_finalizers()
