"""kubectl apply -> the operator trains on a real Ray cluster -> status holds real metrics and compliance."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until

ROOT = Path(__file__).resolve().parents[4]


def small_training_job(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "acgs.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "component": "constitutional-ai",
            "constitutionRef": {"name": "default"},
            "dataset": {"generator": {"examples": 1200, "seed": 7}},
            "training": {"epochs": 3, "batchSize": 64},
            "evaluation": {"gates": {"minCompliance": 0.5}},
            **spec,
        },
    }
    return yaml.safe_dump(body)


def apply_constitution(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")


def ray_jobs_of(dashboard: str, uid: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{dashboard}/api/jobs/", timeout=10) as resp:
        return [j for j in json.load(resp) if (j.get("metadata") or {}).get("acgs.io/uid") == uid]


def test_training_job_completes_with_metrics_compliance_and_artifact(
    kubectl: Kubectl,
    acgs_operator,
    ray_head,
    namespace: str,  # type: ignore[no-untyped-def]
) -> None:
    apply_constitution(kubectl, namespace)
    kubectl.apply(small_training_job("cai"), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/cai", timeout=450)
    job = kubectl.get_json("trainingjob", "cai", "-n", namespace)
    status = job["status"]
    constitution = kubectl.get_json("constitution", "default", "-n", namespace)
    assert status["phase"] == "Succeeded" and status["observedGeneration"] == 1
    assert 0.0 <= status["metrics"]["accuracy"] <= 1.0 and status["metrics"]["f1"] is not None
    assert status["compliance"]["constitutionHash"] == constitution["status"]["hash"]
    assert status["compliance"]["evaluatedExamples"] > 0
    assert len(status["model"]["sha256"]) == 64 and status["model"]["sizeBytes"] > 0
    assert status["progress"]["percent"] == 100.0
    assert status["rayJob"]["status"] == "SUCCEEDED" and status["completionTime"]
    assert len(ray_jobs_of(ray_head.dashboard_url, job["metadata"]["uid"])) == 1

    with urllib.request.urlopen(f"http://127.0.0.1:{acgs_operator.metrics_port}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'acgs_resources{kind="TrainingJob",phase="Succeeded"}' in metrics
    assert 'acgs_operator_reconciles_total{kind="TrainingJob",result="ok"}' in metrics
    assert "acgs_trainingjob_apply_to_running_seconds_count" in metrics


def test_operator_restart_mid_training_keeps_exactly_one_ray_job(
    kubectl: Kubectl,
    acgs_operator,
    ray_head,
    namespace: str,  # type: ignore[no-untyped-def]
) -> None:
    apply_constitution(kubectl, namespace)
    kubectl.apply(small_training_job("restart", training={"epochs": 4}), namespace=namespace, server_side=False)

    def submitted() -> bool:
        job = kubectl.get_json("trainingjob", "restart", "-n", namespace)
        return bool((job.get("status") or {}).get("rayJob", {}).get("submissionId"))

    wait_until(submitted, timeout=60, what="the Ray job to be submitted")
    os.killpg(acgs_operator.process.pid, signal.SIGKILL)  # no graceful shutdown
    acgs_operator.process.proc.wait(timeout=10)
    acgs_operator.start()
    kubectl.run(
        "wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/restart", timeout=450
    )
    uid = kubectl.get_json("trainingjob", "restart", "-n", namespace)["metadata"]["uid"]
    assert len(ray_jobs_of(ray_head.dashboard_url, uid)) == 1


def test_deleting_a_running_job_stops_it(kubectl: Kubectl, acgs_operator, ray_head, namespace: str) -> None:  # type: ignore[no-untyped-def]
    apply_constitution(kubectl, namespace)
    kubectl.apply(small_training_job("doomed", training={"epochs": 50}), namespace=namespace, server_side=False)

    def running() -> bool:
        status = kubectl.get_json("trainingjob", "doomed", "-n", namespace).get("status") or {}
        return status.get("phase") in ("Running", "Submitted")

    wait_until(running, timeout=120, what="the job to start")
    uid = kubectl.get_json("trainingjob", "doomed", "-n", namespace)["metadata"]["uid"]
    kubectl.run("delete", "trainingjob", "doomed", "-n", namespace, "--timeout=60s")

    def stopped() -> bool:
        jobs = ray_jobs_of(ray_head.dashboard_url, uid)
        return bool(jobs) and all(j["status"] in ("STOPPED", "FAILED", "SUCCEEDED") for j in jobs)

    wait_until(stopped, timeout=60, what="the Ray job to stop")
