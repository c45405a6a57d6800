"""The README's "Install on a real cluster", run on a real node: the chart's pods, KubeRay, a TrainingJob
trained in the RayCluster's pods, a route served from a pod, upgrade, faults and uninstall.

The tests run in file order and share one release (module fixture); each also passes alone, because the
fixture installs what it needs. The last test uninstalls; the fixture then has nothing left to remove.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from acgs_operator.devenv import cluster, keys
from acgs_operator.devenv.kubectl import Kubectl
from tests.cluster.conftest import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    ROOT,
    elapsed,
    helm,
    pods,
    port_forward,
    ray_jobs,
    wait_json,
)

# the first test also brings the cluster up: on a machine without caches that builds and loads every image
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2700)]

WORKLOADS = "acgs-demo"
NODE_MANIFESTS = ROOT / "manifests" / "node"
RAY_CLUSTER = f"{RELEASE}-ray"
HEAD_SERVICE = f"{RAY_CLUSTER}-head-svc"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
TRAIN_TIMEOUT = 900.0
DOCUMENTED_BODY = {
    "scenario": "ethical_dilemma",
    "context": {"user_role": "employee", "data_type": "personal"},
    "user_request": "Access to customer data for analysis",
    "constitutional_principles": ["privacy", "transparency", "accountability"],
    "constitutional_hash": "cdd01ef066bc6cf2",
}


def manifest(name: str, rename: str | None = None, seed: int | None = None) -> str:
    """A manifest of manifests/node/ (what the README applies), optionally under another name and seed."""
    doc = yaml.safe_load((NODE_MANIFESTS / name).read_text())
    if rename:
        doc["metadata"]["name"] = rename
    if seed is not None:
        doc["spec"]["dataset"]["generator"]["seed"] = seed
    return yaml.safe_dump(doc)


def phase_is(phase: str) -> Any:
    return lambda doc: (doc.get("status") or {}).get("phase") == phase


def job_failed(doc: dict[str, Any]) -> str | None:
    """A TrainingJob's Failed phase is final: no use waiting for Succeeded."""
    status = doc.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    failed = next((c for c in status.get("conditions") or [] if c.get("type") == "Failed"), {})
    return f"the TrainingJob Failed ({failed.get('reason')}): {str(failed.get('message'))[-2000:]}"


def ray_cluster_ready(doc: dict[str, Any]) -> bool:
    return (doc.get("status") or {}).get("state") == "ready"


def operator_pod(kubectl: Kubectl) -> dict[str, Any]:
    found = pods(kubectl, RELEASE_NAMESPACE, OPERATOR_SELECTOR)
    running = [p for p in found if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, f"expected one operator pod, found {[p['metadata']['name'] for p in running]}"
    return running[0]


def wait_operator_ready(kubectl: Kubectl, timeout: float = 180) -> dict[str, Any]:
    cluster.wait_for_rollout(kubectl, RELEASE_NAMESPACE, RELEASE, seconds=int(timeout))
    return operator_pod(kubectl)


def install_release(kubeconfig: Path, kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", RELEASE_NAMESPACE, check=False)
    signing_secret = keys.install_signing_key(kubectl, RELEASE_NAMESPACE)
    helm(kubeconfig, "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
         "-f", str(CHART / "values-node.yaml"), "--set", f"operator.signingKeySecret={signing_secret}",
         "--wait", "--timeout", "5m")


def uninstall_release(kubeconfig: Path, kubectl: Kubectl) -> None:
    kubectl.run("delete", "trainingjobs,modeldeployments,constitutions", "--all", "-n", WORKLOADS,
                "--wait=true", "--timeout=120s", check=False)
    listed = helm(kubeconfig, "list", "-n", RELEASE_NAMESPACE, "-q").stdout.split()
    if RELEASE in listed:
        helm(kubeconfig, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "3m")


@pytest.fixture(scope="module")
def release(node_cluster: Path, node_kubectl: Kubectl) -> Iterator[Kubectl]:
    """The chart installed with values-node.yaml, the default Constitution and the dev keys in WORKLOADS."""
    start = time.monotonic()
    install_release(node_cluster, node_kubectl)
    node_kubectl.run("create", "namespace", WORKLOADS, check=False)
    keys.install_verification_keys(node_kubectl, WORKLOADS)
    node_kubectl.run("-n", WORKLOADS, "apply", "-f", str(ROOT / "manifests" / "constitution.yaml"))
    wait_json(node_kubectl, RELEASE_NAMESPACE, f"raycluster/{RAY_CLUSTER}", ray_cluster_ready, 300,
              "the RayCluster ready")
    print(f"\n[cluster] chart installed and RayCluster ready in {elapsed(start)}")
    try:
        yield node_kubectl
    finally:
        uninstall_release(node_cluster, node_kubectl)
        node_kubectl.run("delete", "namespace", WORKLOADS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def trained(release: Kubectl) -> dict[str, Any]:
    """One TrainingJob trained in the RayCluster's pods, Succeeded."""
    start = time.monotonic()
    release.run("-n", WORKLOADS, "apply", "-f", "-", stdin=manifest("trainingjob.yaml"))
    job = wait_json(release, WORKLOADS, "trainingjob/node-ca", phase_is("Succeeded"), TRAIN_TIMEOUT,
                    "TrainingJob node-ca Succeeded", give_up=job_failed)
    print(f"\n[cluster] TrainingJob node-ca Succeeded in {elapsed(start)}")
    return job


def test_operator_runs_as_a_pod_with_its_service_account(release: Kubectl) -> None:
    pod = wait_operator_ready(release)
    assert pod["spec"]["serviceAccountName"] == RELEASE
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status
    cmdline = release.run("-n", RELEASE_NAMESPACE, "exec", pod["metadata"]["name"], "--",
                          "cat", "/proc/1/cmdline").stdout.split("\0")
    assert [c for c in cmdline if c][-2:] == ["operator", "run"], cmdline
    # it reached the API server with its token: it answered the Constitution with a status (a hash)
    constitution = wait_json(release, WORKLOADS, "constitution/default",
                             lambda d: bool((d.get("status") or {}).get("hash")), 120, "Constitution default hashed")
    assert len(constitution["status"]["hash"]) >= 16


def test_raycluster_runs_the_acgs_ray_image(release: Kubectl) -> None:
    ray_pods = pods(release, RELEASE_NAMESPACE, f"ray.io/cluster={RAY_CLUSTER}")
    kinds = sorted(p["metadata"]["labels"]["ray.io/node-type"] for p in ray_pods)
    assert kinds == ["head", "worker"], kinds
    for pod in ray_pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["containers"][0]["image"].startswith("ghcr.io/acgs/acgs-ray:")
    head = next(p for p in ray_pods if p["metadata"]["labels"]["ray.io/node-type"] == "head")
    out = release.run("-n", RELEASE_NAMESPACE, "exec", head["metadata"]["name"], "-c", "ray-head", "--",
                      "python", "-c", "import acgs_workloads, ray; print(ray.__version__)").stdout
    assert out.strip() == "2.60.0"


def test_trainingjob_runs_in_the_rayclusters_pods(release: Kubectl, trained: dict[str, Any]) -> None:
    status = trained["status"]
    assert status["metrics"]["accuracy"] > 0.5 and status["compliance"]["score"] >= 0.5, status
    submission = status["rayJob"]["submissionId"]
    ray_ips = {p["status"]["podIP"] for p in pods(release, RELEASE_NAMESPACE, f"ray.io/cluster={RAY_CLUSTER}")}
    with port_forward(release, RELEASE_NAMESPACE, f"svc/{HEAD_SERVICE}", 8265) as dashboard:
        job = next(j for j in ray_jobs(dashboard) if j.get("submission_id") == submission)
    assert job["status"] == "SUCCEEDED", job
    assert job["driver_info"]["node_ip_address"] in ray_ips, (job["driver_info"], ray_ips)
    assert any(c["type"] == "Signed" and c["status"] == "True" for c in status["conditions"]), status["conditions"]


def test_route_answers_from_a_pod_through_the_head_service(release: Kubectl, trained: dict[str, Any]) -> None:
    release.run("-n", WORKLOADS, "apply", "-f", "-", stdin=manifest("modeldeployment.yaml"))
    md = wait_json(release, WORKLOADS, "modeldeployment/node-ca", phase_is("Ready"), 420, "ModelDeployment Ready")
    predict = next(r for r in md["status"]["routes"] if r.endswith("/predict"))
    with port_forward(release, RELEASE_NAMESPACE, f"svc/{HEAD_SERVICE}", 8000) as serve, httpx.Client(
        base_url=serve, timeout=30
    ) as http:
        answer = http.post(predict, json=DOCUMENTED_BODY)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["decision"] in {"approve", "approve_with_safeguards", "escalate", "deny"}
        assert body["model_sha256"] == md["status"]["model"]["sha256"]
        assert http.get("/health").status_code == 200
        wrong = http.post(predict, json={**DOCUMENTED_BODY, "constitutional_hash": "0" * 16})
        assert wrong.status_code == 409, wrong.text


def test_operator_pod_killed_is_restarted_without_a_duplicate_ray_job(release: Kubectl) -> None:
    release.run("-n", WORKLOADS, "apply", "-f", "-", stdin=manifest("trainingjob.yaml", "node-kill", 11))
    running = wait_json(release, WORKLOADS, "trainingjob/node-kill",
                        lambda d: bool(((d.get("status") or {}).get("rayJob") or {}).get("submissionId")),
                        300, "TrainingJob node-kill submitted to Ray")
    submission = running["status"]["rayJob"]["submissionId"]
    before = operator_pod(release)
    release.run("-n", RELEASE_NAMESPACE, "delete", "pod", before["metadata"]["name"], "--grace-period=0", "--force")
    after = wait_operator_ready(release)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    done = wait_json(release, WORKLOADS, "trainingjob/node-kill", phase_is("Succeeded"), TRAIN_TIMEOUT,
                     "TrainingJob node-kill Succeeded after the operator pod was killed", give_up=job_failed)
    assert done["status"]["rayJob"]["submissionId"] == submission
    with port_forward(release, RELEASE_NAMESPACE, f"svc/{HEAD_SERVICE}", 8265) as dashboard:
        jobs = [j for j in ray_jobs(dashboard) if "node-kill" in (j.get("submission_id") or "")]
    assert [j["submission_id"] for j in jobs] == [submission], jobs


def test_ray_head_pod_deleted_is_recreated_and_the_job_follows_its_fault_tolerance(release: Kubectl) -> None:
    release.run("-n", WORKLOADS, "apply", "-f", "-", stdin=manifest("trainingjob.yaml", "node-head", 13))
    wait_json(release, WORKLOADS, "trainingjob/node-head",
              lambda d: bool(((d.get("status") or {}).get("rayJob") or {}).get("submissionId")),
              300, "TrainingJob node-head submitted to Ray")
    head = next(p for p in pods(release, RELEASE_NAMESPACE, f"ray.io/cluster={RAY_CLUSTER},ray.io/node-type=head"))
    release.run("-n", RELEASE_NAMESPACE, "delete", "pod", head["metadata"]["name"], "--wait=false")

    def new_head_running(doc: dict[str, Any]) -> bool:
        items = [p for p in doc["items"] if p["metadata"]["uid"] != head["metadata"]["uid"]]
        return any(p["status"].get("phase") == "Running" for p in items)

    wait_json(release, RELEASE_NAMESPACE, ["pods", "-l", "ray.io/node-type=head"], new_head_running, 300,
              "KubeRay recreating the head pod")
    wait_json(release, RELEASE_NAMESPACE, f"raycluster/{RAY_CLUSTER}", ray_cluster_ready, 300, "RayCluster ready")
    # the new head's GCS does not know the job: the operator resubmits it (faultTolerance.maxFailures)
    done = wait_json(release, WORKLOADS, "trainingjob/node-head", phase_is("Succeeded"), TRAIN_TIMEOUT,
                     "TrainingJob node-head Succeeded after the head pod was deleted", give_up=job_failed)
    assert done["status"]["rayJob"].get("resubmissions", 0) >= 1, done["status"]["rayJob"]


def test_helm_upgrade_rolls_the_operator_and_keeps_the_raycluster(node_cluster: Path, release: Kubectl) -> None:
    before = operator_pod(release)
    ray_uid = release.get_json(f"raycluster/{RAY_CLUSTER}", "-n", RELEASE_NAMESPACE)["metadata"]["uid"]
    helm(node_cluster, "upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--reuse-values",
         "--set", "operator.logFormat=plain", "--wait", "--timeout", "5m")
    after = wait_operator_ready(release)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    env = {e["name"]: e.get("value") for e in after["spec"]["containers"][0].get("env", [])}
    assert json.dumps(env).count("plain") >= 1, env
    assert release.get_json(f"raycluster/{RAY_CLUSTER}", "-n", RELEASE_NAMESPACE)["metadata"]["uid"] == ray_uid


def test_helm_uninstall_leaves_nothing_running(node_cluster: Path, release: Kubectl) -> None:
    uninstall_release(node_cluster, release)

    def empty(doc: dict[str, Any]) -> bool:
        return not doc["items"]

    wait_json(release, RELEASE_NAMESPACE, "pods", empty, 180, f"no pods left in {RELEASE_NAMESPACE}")
    assert not release.get_json("rayclusters", "-n", RELEASE_NAMESPACE)["items"]
    assert not release.get_json("deployments,services", "-n", RELEASE_NAMESPACE, "-l",
                                f"app.kubernetes.io/instance={RELEASE}")["items"]
