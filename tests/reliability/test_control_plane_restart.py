"""Case 4: kube-apiserver and etcd restart while a TrainingJob runs.

A control plane of the test's own (the session's cannot be restarted under the other tests), the CRDs and
an operator against it and the session's Ray head. While the Ray job runs, etcd and kube-apiserver stop
for a few seconds and start again on the same ports with the same data and certificates. The operator
process must ride it out (its watches reconnect) and write the job's completion after the restart.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.controlplane import ControlPlane
from acgs_operator.devenv.embedded import OperatorProcess, install_crds
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until

ROOT = Path(__file__).resolve().parents[2]
DOWNTIME_SECONDS = 8.0
NAMESPACE = "restart"


def training_job(name: str) -> str:
    spec = {
        "component": "constitutional-ai",
        "constitutionRef": {"name": "default"},
        "dataset": {"generator": {"examples": 1200, "seed": 5}},
        "training": {"epochs": 4, "batchSize": 64},
        "resources": {"workers": 1},
        "evaluation": {"gates": {"minCompliance": 0.5}},
    }
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
                           "spec": spec})


def ray_job_status(dashboard: str, submission_id: str) -> str:
    with urllib.request.urlopen(f"{dashboard}/api/jobs/{submission_id}", timeout=30) as resp:
        return str(json.load(resp)["status"])


def status_of(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return kubectl.get_json("trainingjob", name, "-n", NAMESPACE).get("status") or {}


@pytest.mark.case("4")
def test_api_server_and_etcd_restart_while_a_job_runs(
    ray_head, tmp_path: Path, reliability_report  # type: ignore[no-untyped-def]
) -> None:
    title = "kube-apiserver + etcd restart while a job runs"
    goal = "operator stays up, reconnects, job ends Complete with status written after the restart"
    plane = ControlPlane(tmp_path / "control-plane")
    operator: OperatorProcess | None = None
    kubectl: Kubectl | None = None
    try:
        plane.start()
        kubectl = Kubectl(plane.kubeconfig)
        install_crds(kubectl)
        operator = OperatorProcess(
            kubeconfig=plane.kubeconfig,
            ray_address=ray_head.dashboard_url,
            artifact_root=str(tmp_path / "artifacts"),
            serve_port=ray_head.serve_port,
            log=tmp_path / "operator.log",
        ).start()
        pid = operator.process.pid if operator.process else 0
        kubectl.run("create", "namespace", NAMESPACE)
        kubectl.run("apply", "-n", NAMESPACE, "-f", str(ROOT / "manifests" / "constitution.yaml"))
        kubectl.run("wait", "-n", NAMESPACE, "--for=condition=Valid", "--timeout=60s", "constitution/default")
        kubectl.apply(training_job("survivor"), namespace=NAMESPACE, server_side=False)
        wait_until(lambda: status_of(kubectl, "survivor").get("phase") == "Running", timeout=180, interval=0.5,
                   what="the TrainingJob to run")
        sid = status_of(kubectl, "survivor")["rayJob"]["submissionId"]
        assert ray_job_status(ray_head.dashboard_url, sid) == "RUNNING"
        phase_before = status_of(kubectl, "survivor")["phase"]

        downtime = plane.restart(downtime=DOWNTIME_SECONDS)
        resumed = time.monotonic()
        ray_at_resume = ray_job_status(ray_head.dashboard_url, sid)
        done = wait_until(lambda: (s := status_of(kubectl, "survivor")).get("phase") in ("Succeeded", "Failed") and s,
                          timeout=300, interval=1.0, what="the TrainingJob to finish after the restart")
        converge = time.monotonic() - resumed
        alive = operator.alive and operator.process is not None and operator.process.pid == pid
        reliability_report.record(
            "4", title, goal=goal,
            api_down_s=round(downtime, 1),
            phase_before=phase_before,
            ray_job_at_resume=ray_at_resume,
            converge_after_restart_s=round(converge, 1),
            final_phase=done["phase"],
            operator_restarts=0 if alive else 1,
        )
        assert alive, f"the operator died: {operator.process.log_tail() if operator.process else ''}"
        assert done["phase"] == "Succeeded", done.get("conditions")
        assert done["observedGeneration"] == 1 and done["metrics"]["accuracy"] is not None
        assert len(done["model"]["sha256"]) == 64
        complete = next(c for c in done["conditions"] if c["type"] == "Complete")
        assert complete["status"] == "True"
    finally:
        if kubectl is not None and operator is not None and operator.alive:
            kubectl.run("delete", "trainingjobs", "--all", "-n", NAMESPACE, "--timeout=60s", check=False)
        if operator is not None:
            operator.stop()
        plane.stop()
