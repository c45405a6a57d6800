"""Case 2: a Ray Train worker of a TrainingJob is SIGKILLed mid-run; the run resumes from its last checkpoint.

Through the operator: a TrainingJob with ``faultTolerance {maxFailures: 2, checkpointEvery: 1}``; once an
epoch is done, the job's ``RayTrainWorker`` actor (found through the Ray state API) is killed by pid.
The job must end Succeeded with ``status.restarts >= 1``, and the progress events of its log must show
that no finished epoch was trained twice beyond ``checkpointEvery``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until
from acgs_workloads.contract import Progress, ProgressEvent, parse_events

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 8
CHECKPOINT_EVERY = 1


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def train_workers(dashboard: str, ray_job_id: str) -> list[dict[str, Any]]:
    """Alive Ray Train worker actors of one Ray job (Ray state API)."""
    data = get(f"{dashboard}/api/v0/actors?limit=10000&detail=true")["data"]["result"]["result"]
    return [a for a in data if "RayTrainWorker" in a.get("class_name", "") and a.get("state") == "ALIVE"
            and a.get("job_id") == ray_job_id and a.get("pid")]


def progress_events(dashboard: str, submission_id: str) -> list[Progress]:
    logs = get(f"{dashboard}/api/jobs/{submission_id}/logs").get("logs", "")
    return [e.progress for e in parse_events(logs) if isinstance(e, ProgressEvent)]


def epochs_trained_twice(events: list[Progress]) -> tuple[int, int]:
    """(finished epochs trained again after a restart, epoch ends seen). An end-of-epoch event carries the
    finished-epoch count and the step at its end (``step == epoch * steps_per_epoch``); mid-epoch events
    carry the epoch in progress, so their step is past it."""
    final = events[-1]
    steps_per_epoch = final.step // final.total_epochs
    ends = [e.epoch for e in events if e.epoch > 0 and e.step == e.epoch * steps_per_epoch]
    return len(ends) - len(set(ends)), len(ends)


@pytest.mark.case("2")
def test_killed_train_worker_resumes_from_the_last_checkpoint(
    kubectl: Kubectl, acgs_operator, ray_head, namespace: str, reliability_report  # type: ignore[no-untyped-def]
) -> None:
    title = "Ray Train worker SIGKILL mid-run"
    reliability_report.record("2", title, goal=f"resume from the last checkpoint (<= {CHECKPOINT_EVERY} epoch lost)")
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    spec = {
        "component": "constitutional-ai",
        "constitutionRef": {"name": "default"},
        "dataset": {"generator": {"examples": 4000, "seed": 3}},
        "training": {"epochs": EPOCHS, "batchSize": 32},
        "resources": {"workers": 1},
        "faultTolerance": {"maxFailures": 2, "checkpointEvery": CHECKPOINT_EVERY},
        "evaluation": {"gates": {"minCompliance": 0.5}},
    }
    manifest = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "victim"}, "spec": spec}
    started = time.monotonic()
    kubectl.apply(yaml.safe_dump(manifest), namespace=namespace, server_side=False)
    dashboard = ray_head.dashboard_url

    def submission() -> str | None:
        status = kubectl.get_json("trainingjob", "victim", "-n", namespace).get("status") or {}
        return (status.get("rayJob") or {}).get("submissionId")

    sid = wait_until(submission, timeout=120, what="the Ray job to be submitted")
    ray_job_id = wait_until(lambda: get(f"{dashboard}/api/jobs/{sid}").get("job_id"), timeout=120,
                            what="the Ray job's driver to start")
    done_before = wait_until(
        lambda: max((e.epoch for e in progress_events(dashboard, sid)), default=0) >= 1
        and max(e.epoch for e in progress_events(dashboard, sid)),
        timeout=240, interval=0.5, what="the first epoch (and its checkpoint) to finish",
    )
    assert done_before < EPOCHS, "the run ended before a worker could be killed: make the epochs longer"
    worker = wait_until(lambda: train_workers(dashboard, ray_job_id), timeout=60, what="a RayTrainWorker actor")[0]
    os.kill(int(worker["pid"]), signal.SIGKILL)
    killed_at = time.monotonic()

    kubectl.run("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=360s",
                "trainingjob/victim", timeout=380)
    total = time.monotonic() - started
    status = kubectl.get_json("trainingjob", "victim", "-n", namespace)["status"]
    events = progress_events(dashboard, sid)
    twice, epoch_ends = epochs_trained_twice(events)
    reliability_report.record(
        "2", title,
        killed_worker_pid=int(worker["pid"]),
        epochs_done_at_kill=done_before,
        restarts=status.get("restarts"),
        finished_epochs_trained_twice=twice,
        epoch_ends_seen=epoch_ends,
        recover_after_kill_s=round(time.monotonic() - killed_at, 1),
        total_s=round(total, 1),
    )
    assert status["restarts"] >= 1, status
    assert next(c for c in status["conditions"] if c["type"] == "Complete")["status"] == "True"
    assert status["progress"]["epoch"] == EPOCHS
    # lost work: the epoch in progress at the kill (< 1) plus finished epochs trained again
    assert twice + 1 <= CHECKPOINT_EVERY, f"{twice} finished epochs trained again: {events}"
