"""TrainingJob handlers against the in-memory Ray client."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from acgs_operator.rayclient import FakeRayClient, JobStatus
from acgs_operator.trainingjob import handlers as h
from acgs_workloads.contract import (
    ComplianceReport,
    GateResult,
    ModelArtifact,
    Progress,
    ProgressEvent,
    ResultEvent,
    TrainingMetrics,
    format_event,
)

SPEC: dict[str, Any] = {"component": "constitutional-ai", "constitutionRef": {"name": "default"}}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def make_resource(make_merge_patched_resource):  # type: ignore[no-untyped-def]
    """Resources whose status patches are merged as the API server merges them (nested objects too)."""
    return make_merge_patched_resource


@pytest.fixture
def reconcile(memo: kopf.Memo, constitution_index: Any):  # type: ignore[no-untyped-def]
    def _reconcile(resource: Any) -> None:
        try:
            run(h.reconcile_training_job(memo=memo, constitutions_by_name=constitution_index, **resource.kwargs()))
        finally:
            resource.apply_patch()

    return _reconcile


@pytest.fixture
def follow(memo: kopf.Memo, constitution_index: Any):  # type: ignore[no-untyped-def]
    def _follow(resource: Any) -> None:
        run(h.follow_training_job(memo=memo, constitutions_by_name=constitution_index, **resource.kwargs()))
        resource.apply_patch()

    return _follow


def test_create_submits_once_and_resume_reattaches(
    make_resource, reconcile, ray: FakeRayClient, recorded_events
) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    assert ray.submissions == 1
    sid = job.status["rayJob"]["submissionId"]
    assert sid == "acgs-job-1234abcd-g1" and job.status["phase"] == "Submitted"
    assert "acgs_workloads.train" in ray.entrypoints[sid]
    assert recorded_events.reasons == ["Submitted"]
    ray.set_job(sid, JobStatus.RUNNING)
    reconcile(job)  # the operator restarted: on.resume runs again
    assert ray.submissions == 1, "a restarted operator must not submit twice"
    assert job.status["phase"] == "Running"


def test_constitution_not_valid_waits(make_resource, memo, ray, fake_index, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    with pytest.raises(kopf.TemporaryError, match="Constitution default not found"):
        run(h.reconcile_training_job(memo=memo, constitutions_by_name=fake_index(), **job.kwargs()))
    job.apply_patch()
    assert ray.submissions == 0
    assert job.status["phase"] == "Pending"
    assert job.condition("Submitted")["reason"] == "ConstitutionNotReady"


def test_ray_unavailable_retries_and_loses_nothing(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    ray.unavailable = True
    with pytest.raises(kopf.TemporaryError):
        reconcile(job)
    assert job.condition("Submitted")["reason"] == "RayUnavailable" and "RayUnavailable" in recorded_events.reasons
    ray.unavailable = False
    reconcile(job)
    assert ray.submissions == 1 and job.status["phase"] == "Submitted"


def test_suspend_stops_and_resume_submits_a_new_generation(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    first = job.status["rayJob"]["submissionId"]
    ray.set_job(first, JobStatus.RUNNING)
    job.change_spec(suspend=True)
    reconcile(job)
    assert ray.jobs[first].status is JobStatus.STOPPED and job.status["phase"] == "Suspended"
    job.change_spec(suspend=False)
    reconcile(job)
    assert ray.submissions == 2 and job.status["rayJob"]["submissionId"].endswith("-g3")


def test_spec_change_stops_the_old_job(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    first = job.status["rayJob"]["submissionId"]
    ray.set_job(first, JobStatus.RUNNING)
    job.change_spec(training={"epochs": 5})
    reconcile(job)
    assert ray.jobs[first].status is JobStatus.STOPPED
    assert "SpecChanged" in recorded_events.reasons and ray.submissions == 2


def result_log() -> str:
    progress = ProgressEvent(progress=Progress(epoch=3, total_epochs=3, step=90, percent=100.0, loss=0.2))
    result = ResultEvent(
        metrics=TrainingMetrics(accuracy=0.93, f1=0.92),
        compliance=ComplianceReport(
            constitution_hash="cdd01ef066bc6cf2", score=0.98, threshold=0.9, passed=True, evaluated_examples=400
        ),
        model=ModelArtifact(uri="file:///art/x", sha256="c" * 64, size_bytes=1000),
        gates=GateResult(passed=True),
    )
    return "\n".join(["epoch 1", format_event(progress), format_event(result)])


def test_follow_publishes_progress_then_results(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    progress = ProgressEvent(progress=Progress(epoch=1, total_epochs=3, step=30, percent=33.3, loss=0.7))
    ray.set_job(sid, JobStatus.RUNNING, logs=format_event(progress))
    follow(job)
    assert job.status["phase"] == "Running" and job.status["progress"]["percent"] == 33.3
    ray.set_job(sid, JobStatus.SUCCEEDED, logs=result_log())
    follow(job)
    assert job.status["phase"] == "Succeeded" and job.condition("Complete")["status"] == "True"
    assert job.status["model"]["sha256"] == "c" * 64 and job.status["compliance"]["score"] == 0.98
    assert {"Running", "Succeeded"} <= set(recorded_events.reasons)


def test_outage_while_running_keeps_the_phase_and_warns_once(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING, logs="")
    follow(job)
    ray.unavailable = True
    follow(job)
    follow(job)
    assert job.status["phase"] == "Running"  # still submitted: not back to Pending (and its 1 s timer)
    assert job.condition("Running")["status"] == "Unknown" and job.condition("Running")["reason"] == "RayUnavailable"
    assert recorded_events.reasons.count("RayUnavailable") == 1
    ray.unavailable = False
    follow(job)
    assert job.condition("Running")["status"] == "True" and ray.submissions == 1


def test_failed_job_reports_log_tail(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(
        sid,
        JobStatus.FAILED,
        "Job entrypoint command failed with exit code 1",
        logs="loading\nTraceback (most recent call last):\nValueError: bad dataset",
    )
    follow(job)
    failed = job.condition("Failed")
    assert job.status["phase"] == "Failed" and failed["reason"] == "RayJobFailed"
    assert "ValueError: bad dataset" in failed["message"]
    assert ("Warning", "RayJobFailed") in [(t, r) for t, r, _ in recorded_events.items]


def test_deadline_stops_the_job(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", {**SPEC, "activeDeadlineSeconds": 1})
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING)
    job.raw["status"]["startTime"] = "2026-01-01T00:00:00Z"
    follow(job)
    assert ray.jobs[sid].status is JobStatus.STOPPED
    assert job.status["phase"] == "Failed" and job.condition("Failed")["reason"] == "DeadlineExceeded"


def test_delete_stops_the_job(make_resource, reconcile, memo, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING)
    kwargs = job.kwargs()
    run(h.stop_training_job(memo=memo, **kwargs))
    assert ray.jobs[sid].status is JobStatus.STOPPED
    ray.unavailable = True
    with pytest.raises(kopf.TemporaryError):
        run(h.stop_training_job(memo=memo, **job.kwargs()))


def test_terminal_generation_is_left_alone(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    ray.set_job(job.status["rayJob"]["submissionId"], JobStatus.SUCCEEDED, logs=result_log())
    follow(job)
    ray.jobs.clear()  # e.g. the Ray cluster was replaced
    reconcile(job)
    assert ray.submissions == 1 and job.status["phase"] == "Succeeded"


def test_restart_after_the_ray_job_finished_publishes_its_result(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    """The operator dies after the Ray job succeeds and before a timer saw it: on.resume must read the result."""
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    ray.set_job(job.status["rayJob"]["submissionId"], JobStatus.SUCCEEDED, logs=result_log())
    reconcile(job)  # the restarted operator's on.resume
    assert job.status["phase"] == "Succeeded", job.status["conditions"]
    assert job.status["model"]["sha256"] == "c" * 64 and job.condition("Complete")["status"] == "True"
    assert ray.submissions == 1 and "Succeeded" in recorded_events.reasons


def test_a_job_the_cluster_forgot_is_submitted_again_within_max_failures(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    job = make_resource("TrainingJob", {**SPEC, "faultTolerance": {"maxFailures": 2}})
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING)
    follow(job)
    for n in (1, 2):
        ray.jobs.clear()  # the head restarted without GCS persistence
        follow(job)
        assert ray.submissions == n + 1 and sid in ray.jobs, "the same submission id: the run resumes its checkpoint"
        assert job.status["rayJob"]["resubmissions"] == n and job.status["phase"] == "Submitted"
        ray.set_job(sid, JobStatus.RUNNING)
        follow(job)
        assert job.status["rayJob"]["resubmissions"] == n and job.status["phase"] == "Running"
    assert recorded_events.reasons.count("RayJobResubmitted") == 2
    ray.jobs.clear()
    follow(job)  # the budget is spent
    assert ray.submissions == 3 and job.status["phase"] == "Failed"
    assert job.condition("Failed")["reason"] == "RayJobLost" and "maxFailures=2" in job.condition("Failed")["message"]


def test_no_resubmission_with_max_failures_zero(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", {**SPEC, "faultTolerance": {"maxFailures": 0}})
    reconcile(job)
    ray.set_job(job.status["rayJob"]["submissionId"], JobStatus.RUNNING)
    follow(job)
    ray.jobs.clear()
    follow(job)
    assert ray.submissions == 1 and job.status["phase"] == "Failed"
    assert job.condition("Failed")["reason"] == "RayJobLost"


def test_restart_after_the_cluster_forgot_the_job_counts_a_resubmission(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    job = make_resource("TrainingJob", SPEC)  # maxFailures defaults to 1
    reconcile(job)
    ray.set_job(job.status["rayJob"]["submissionId"], JobStatus.RUNNING)
    reconcile(job)
    ray.jobs.clear()  # operator and head both restarted
    reconcile(job)
    assert ray.submissions == 2 and job.status["rayJob"]["resubmissions"] == 1
    ray.jobs.clear()
    reconcile(job)
    assert ray.submissions == 2 and job.status["phase"] == "Failed"
    assert job.condition("Failed")["reason"] == "RayJobLost"


def test_a_new_generation_gets_its_own_resubmission_budget(make_resource, reconcile, follow, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    job = make_resource("TrainingJob", SPEC)  # maxFailures defaults to 1
    reconcile(job)
    first = job.status["rayJob"]["submissionId"]
    ray.set_job(first, JobStatus.RUNNING)
    follow(job)
    ray.jobs.clear()
    follow(job)
    assert job.status["rayJob"]["resubmissions"] == 1
    job.change_spec(training={"epochs": 5})
    reconcile(job)
    second = job.status["rayJob"]["submissionId"]
    assert second.endswith("-g2") and job.status["rayJob"]["resubmissions"] == 0, "not the older generation's count"
    ray.set_job(second, JobStatus.RUNNING)
    follow(job)
    del ray.jobs[second]
    follow(job)
    assert job.status["phase"] == "Submitted" and job.status["rayJob"]["resubmissions"] == 1
    assert recorded_events.reasons.count("RayJobResubmitted") == 2 and "RayJobLost" not in recorded_events.reasons


def test_timers_follow_only_this_generations_job(make_resource, reconcile, follow, memo, ray, fake_index, recorded_events) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    job = make_resource("TrainingJob", SPEC)
    assert not h._starting(**job.kwargs()) and not h._started(**job.kwargs())  # nothing submitted yet
    reconcile(job)
    assert h._starting(**job.kwargs()) and not h._started(**job.kwargs())
    ray.set_job(job.status["rayJob"]["submissionId"], JobStatus.RUNNING)
    follow(job)
    assert h._started(**job.kwargs()) and not h._starting(**job.kwargs())
    job.change_spec(training={"epochs": 5})  # ... while its Constitution is gone
    with pytest.raises(kopf.TemporaryError, match="not found"):
        run(h.reconcile_training_job(memo=memo, constitutions_by_name=fake_index(), **job.kwargs()))
    job.apply_patch()
    assert job.status["phase"] == "Pending" and job.status["observedGeneration"] == 2
    assert not h._starting(**job.kwargs()) and not h._started(**job.kwargs()), "the g1 job is not g2's"
    reconcile(job)  # kopf retries once the Constitution is back
    assert job.status["rayJob"]["submissionId"].endswith("-g2") and h._starting(**job.kwargs())
    job.change_spec(suspend=True)
    reconcile(job)
    assert job.status["phase"] == "Suspended" and not h._starting(**job.kwargs()) and not h._started(**job.kwargs())


def test_suspend_posts_what_it_stopped(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", SPEC)
    reconcile(job)
    sid = job.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING)
    job.change_spec(suspend=True)
    reconcile(job)
    # suspending is a spec change: the job stopped is the older generation's (g2 never had one)
    assert recorded_events.items[1:] == [("Normal", "SpecChanged", f"stopped Ray job {sid} of an older generation")]
    assert ray.jobs[sid].status is JobStatus.STOPPED and ray.submissions == 1
    assert job.condition("Running")["reason"] == "Suspended" and job.status["observedGeneration"] == 2


def test_an_invalid_spec_fails_permanently(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    job = make_resource("TrainingJob", {**SPEC, "component": "no-such-component"})
    with pytest.raises(kopf.PermanentError, match="invalid TrainingJob spec"):
        reconcile(job)
    assert ray.submissions == 0 and job.status["phase"] == "Failed"
    assert job.condition("Failed")["reason"] == "InvalidSpec" and "component" in job.condition("Failed")["message"]
    assert recorded_events.reasons == ["InvalidSpec"]


def test_the_status_read_back_is_parsed_not_trusted(make_resource, reconcile, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    """Fields the model does not know (e.g. written by kopf or another version) are ignored, never written back."""
    job = make_resource("TrainingJob", SPEC)
    job.raw["status"] = {"kopf": {"progress": {}}, "rayJob": {"submissionId": None, "legacy": 1}}
    reconcile(job)
    assert job.patch["status"]["rayJob"] == {
        "submissionId": "acgs-job-1234abcd-g1",
        "status": "PENDING",
        "dashboardUrl": ray.dashboard_url,
    }
    assert "kopf" not in job.patch["status"]
