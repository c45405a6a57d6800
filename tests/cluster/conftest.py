"""The cluster tier: a real single-node Kubernetes (``acgs dev cluster up``) with KubeRay, and the chart on it.

The cluster is started once for the package and stopped after it, unless it was already running (a
developer's ``acgs dev cluster up``), which is then left as it was. Every test talks to it with kubectl,
helm and HTTP through ``kubectl port-forward`` on 127.0.0.1, as a user does.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from acgs_operator.devenv.binaries import require_binary
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "acgs"
RELEASE = "acgs"
RELEASE_NAMESPACE = "acgs-system"


@pytest.fixture(scope="package")
def node_cluster() -> Iterator[Path]:
    """The kubeconfig of a running single-node cluster with CoreDNS and KubeRay."""
    from acgs_operator.devenv.cluster import DevCluster

    cluster = DevCluster()
    was_running = cluster.running() is not None
    try:
        state = cluster.up()
    except Exception as exc:
        pytest.fail(f"the single-node cluster did not come up: {exc}", pytrace=False)
    print(f"\n[cluster] set-up seconds: {json.dumps(state.seconds)}")
    try:
        yield Path(state.kubeconfig)
    finally:
        if not was_running:
            cluster.down()


@pytest.fixture(scope="package")
def node_kubectl(node_cluster: Path) -> Kubectl:
    return Kubectl(node_cluster)


def helm(kubeconfig: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [str(require_binary("helm")), "--kubeconfig", str(kubeconfig), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@contextlib.contextmanager
def port_forward(kubectl: Kubectl, namespace: str, target: str, remote: int) -> Iterator[str]:
    """``kubectl port-forward`` on 127.0.0.1; yields the base URL."""
    local = free_port()
    cmd = [
        str(require_binary("kubectl")), "--kubeconfig", str(kubectl.kubeconfig), "-n", namespace,
        "port-forward", "--address", "127.0.0.1", target, f"{local}:{remote}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{local}"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Forwarding from" in line, f"port-forward to {target}: {line}{proc.stdout.read() if proc.poll() else ''}"
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def wait_json(
    kubectl: Kubectl, namespace: str, resource: str | list[str], predicate: Callable[[dict[str, Any]], bool],
    timeout: float, what: str, give_up: Callable[[dict[str, Any]], str | None] | None = None,
) -> dict[str, Any]:
    """Poll ``kubectl get -o json`` until ``predicate`` holds; the failure names the last status seen.

    ``resource``: ``kind/name``, or a list of ``kubectl get`` arguments (``["pods", "-l", "a=b"]``).
    ``give_up``: a reason to stop waiting at once (a terminal state the predicate can no longer reach)."""
    last: dict[str, Any] = {}
    args = [resource] if isinstance(resource, str) else resource

    def probe() -> dict[str, Any] | None:
        nonlocal last
        proc = kubectl.run("-n", namespace, "get", *args, "-o", "json", check=False, timeout=30)
        if proc.returncode != 0:
            return None
        last = json.loads(proc.stdout)
        return last if predicate(last) else None

    try:
        return wait_until(probe, timeout=timeout, interval=2.0, what=what,
                          abort=(lambda: give_up(last) if last else None) if give_up is not None else None)
    except Exception as exc:
        raise AssertionError(f"{exc}\nlast seen: {json.dumps(last.get('status', last))[:3000]}") from None


def ray_jobs(dashboard: str) -> list[dict[str, Any]]:
    with httpx.Client(timeout=30) as http:
        resp = http.get(f"{dashboard}/api/jobs/")
        resp.raise_for_status()
        return list(resp.json())


def pods(kubectl: Kubectl, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list(kubectl.get_json("pods", "-n", namespace, "-l", selector)["items"])


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.0f}s"
