"""Case 3: the Ray head is unreachable for 30 s while TrainingJobs run and reconcile.

A Ray head of the test's own (stopping the session's would break the other tests); the TrainingJobs
point at it through ``spec.rayCluster.address`` and the session's operator reconciles them. One job runs
when the head stops, a second is applied during the outage. While the head is down the resources must
say ``RayUnavailable`` and the operator must retry with backoff, not in a hot loop (counted from its
``acgs_operator_errors_total`` metric). The head then starts again on the same ports; a fresh head (no
external GCS storage) has forgotten the running job, which the operator submits again (same submission id,
``spec.faultTolerance.maxFailures`` allows one) and which resumes from its last checkpoint and completes; the
job applied during the outage must be submitted and complete.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until
from acgs_operator.devenv.ray_local import RayHead
from acgs_workloads.contract import ProgressEvent, parse_events

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_SECONDS = 30.0
# A running job is followed by its 5 s timer, which keeps the phase and marks Running Unknown (one event);
# a job applied during the outage retries its create with exponential backoff (one event per try). Both
# together make about 6 + 5 tries in 30 s; a hot loop (a fixed 1 s retry or none) makes 60 and more.
HOT_LOOP_PER_MINUTE = 40.0
BACKOFF_TRIES = 10  # 1, 2, 4, 8, 16 s ... delays: about 5 tries in 30 s; a fixed 1 s retry makes 30
ERRORS = re.compile(r'^acgs_operator_errors_total\{kind="TrainingJob",reason="RayUnavailable"\} (\S+)$', re.M)


def training_job(name: str, dashboard: str, epochs: int) -> str:
    spec = {
        "component": "constitutional-ai",
        "constitutionRef": {"name": "default"},
        "dataset": {"generator": {"examples": 1200, "seed": 9}},
        "training": {"epochs": epochs, "batchSize": 64},
        "resources": {"workers": 1},
        "evaluation": {"gates": {"minCompliance": 0.5}},
        "rayCluster": {"address": dashboard},
    }
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
                           "spec": spec})


def ray_unavailable_errors(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
        found = ERRORS.search(resp.read().decode())
    return float(found.group(1)) if found else 0.0


def unavailable_events(kubectl: Kubectl, namespace: str, name: str) -> int:
    """RayUnavailable events posted for one resource: one per failed try."""
    items = kubectl.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return sum(int(e.get("count") or 1) for e in items if e.get("reason") == "RayUnavailable")


def status_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.get_json("trainingjob", name, "-n", namespace).get("status") or {}


def first_epoch_logged(dashboard: str, submission_id: str) -> int | None:
    """The epoch of the first progress event in a Ray job's log (where that run started or resumed)."""
    with urllib.request.urlopen(f"{dashboard}/api/jobs/{submission_id}/logs", timeout=30) as resp:
        logs = json.load(resp).get("logs", "")
    return min((e.progress.epoch for e in parse_events(logs) if isinstance(e, ProgressEvent)), default=None)


def reasons(status: dict[str, Any]) -> set[str]:
    return {c.get("reason", "") for c in status.get("conditions", [])}


@pytest.mark.case("3")
def test_ray_head_unreachable_for_thirty_seconds(
    kubectl: Kubectl, acgs_operator, namespace: str, tmp_path: Path, reliability_report  # type: ignore[no-untyped-def]
) -> None:
    title = "Ray head unreachable for 30 s"
    goal = "RayUnavailable shown, backoff (no hot loop), recovery, nothing lost"
    head = RayHead(tmp_path / "ray", num_cpus=2, object_store_mb=256)
    try:
        dashboard = head.start().dashboard_url
        kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
        kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
        kubectl.apply(training_job("in-flight", dashboard, epochs=30), namespace=namespace, server_side=False)
        wait_until(lambda: (status_of(kubectl, namespace, "in-flight").get("progress") or {}).get("epoch", 0) >= 3,
                   timeout=180, interval=0.5, what="the first job to finish (and checkpoint) 3 epochs")
        done_at_outage = status_of(kubectl, namespace, "in-flight")["progress"]["epoch"]

        errors_before = ray_unavailable_errors(acgs_operator.metrics_port)
        down = time.monotonic()
        head.stop(keep_state=True)
        kubectl.apply(training_job("during-outage", dashboard, epochs=2), namespace=namespace, server_side=False)

        def both_unavailable() -> bool:
            return all("RayUnavailable" in reasons(status_of(kubectl, namespace, n)) for n in ("in-flight",
                                                                                                "during-outage"))

        shown = wait_until(both_unavailable, timeout=OUTAGE_SECONDS - 5, interval=0.5,
                           what="both jobs to show RayUnavailable")
        shown_after = time.monotonic() - down
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
        errors_during = ray_unavailable_errors(acgs_operator.metrics_port) - errors_before
        tries = {n: unavailable_events(kubectl, namespace, n) for n in ("in-flight", "during-outage")}
        outage = time.monotonic() - down
        head.resume()
        back = time.monotonic()
        unreachable = back - down

        final = {
            name: wait_until(
                lambda n=name: (s := status_of(kubectl, namespace, n)).get("phase") in ("Succeeded", "Failed") and s,
                timeout=240, interval=1.0, what=f"{name} to converge after the outage")
            for name in ("during-outage", "in-flight")
        }
        recovered = time.monotonic() - back
        per_minute = errors_during / (outage / 60.0)
        lost = final["in-flight"]
        resubmissions = (lost.get("rayJob") or {}).get("resubmissions")
        resumed_at = first_epoch_logged(dashboard, lost["rayJob"]["submissionId"])
        reliability_report.record(
            "3", title, goal=goal,
            outage_s=round(outage, 1),
            dashboard_unreachable_s=round(unreachable, 1),
            ray_unavailable_shown_after_s=round(shown_after, 1),
            errors_during_outage=int(errors_during),
            events_running_job=tries["in-flight"],
            tries_job_applied_in_outage=tries["during-outage"],
            tries_per_min=round(per_minute, 1),
            recover_after_head_up_s=round(recovered, 1),
            job_applied_during_outage=final["during-outage"]["phase"],
            job_running_at_outage=f"{lost['phase']} after {resubmissions} resubmission(s)",
            epochs_done_at_outage=done_at_outage,
            resubmitted_job_first_epoch=resumed_at,
        )
        assert shown
        assert errors_during >= 2, "the operator did not notice the outage"
        assert per_minute <= HOT_LOOP_PER_MINUTE, f"{errors_during:.0f} tries in {outage:.0f}s: a hot loop"
        assert tries["in-flight"] <= 2, f"the running job posted {tries['in-flight']} RayUnavailable events, not one"
        assert tries["during-outage"] <= BACKOFF_TRIES, f"no exponential backoff: {tries} tries in {outage:.0f}s"
        assert final["during-outage"]["phase"] == "Succeeded", final["during-outage"].get("conditions")
        # the fresh head forgot the running job: submitted again, it resumes from its checkpoint and completes
        assert lost["phase"] == "Succeeded" and resubmissions == 1, lost.get("conditions")
        assert resumed_at is not None and resumed_at >= done_at_outage - 1, (
            f"the resubmitted run started at epoch {resumed_at}, not from its checkpoint (epoch {done_at_outage})"
        )
    finally:
        kubectl.run("delete", "trainingjobs", "--all", "-n", namespace, "--timeout=60s", check=False)
        head.stop()
