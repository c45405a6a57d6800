"""spec -> Ray job and Ray job -> status, as pure functions (table tests)."""

import json
import shlex

import pytest

from acgs_operator.api.v1alpha1 import TrainingJobSpec, TrainingJobStatus
from acgs_operator.events import Event
from acgs_operator.rayclient import JobInfo, JobStatus
from acgs_operator.reasons import Reason
from acgs_operator.trainingjob import build as tj
from acgs_workloads.contract import (
    ComplianceReport,
    ConstitutionSnapshot,
    GateResult,
    ModelArtifact,
    Principle,
    Progress,
    ProgressEvent,
    ResultEvent,
    TrainingMetrics,
    TrainRunConfig,
    format_event,
)

SNAPSHOT = ConstitutionSnapshot(
    name="default", hash="cdd01ef066bc6cf2", principles=[Principle(id="privacy", rego="package acgs.privacy")]
)
SPEC = TrainingJobSpec.model_validate({"component": "constitutional-ai", "constitutionRef": {"name": "default"}})
NOW = "2026-01-01T00:10:00Z"


def result(passed: bool = True, gates_passed: bool = True, failures: tuple[str, ...] = ()) -> ResultEvent:
    return ResultEvent(
        metrics=TrainingMetrics(accuracy=0.91, f1=0.9, precision=0.9, recall=0.9, loss=0.3),
        compliance=ComplianceReport(
            constitution_hash="cdd01ef066bc6cf2",
            score=0.97 if passed else 0.5,
            threshold=0.9,
            passed=passed,
            evaluated_examples=800,
        ),
        model=ModelArtifact(uri="file:///a/acgs-x", sha256="b" * 64, size_bytes=123),
        gates=GateResult(passed=gates_passed, failures=list(failures)),
        restarts=1,
    )


def test_submission_id_is_deterministic_per_uid_and_generation() -> None:
    a = tj.submission_id("job", "1234abcd-ffff", 1)
    assert a == tj.submission_id("job", "1234abcd-ffff", 1) == "acgs-job-1234abcd-g1"
    assert a != tj.submission_id("job", "1234abcd-ffff", 2)
    assert a != tj.submission_id("job", "99999999-ffff", 1)


def test_ray_job_entrypoint_carries_the_full_config() -> None:
    req = tj.build_ray_job(
        namespace="ns",
        name="job",
        uid="1234abcd-x",
        generation=3,
        spec=SPEC,
        constitution=SNAPSHOT,
        artifact_root="/art",
        python="/venv/bin/python",
    )
    argv = shlex.split(req.entrypoint)
    assert argv[:4] == ["/venv/bin/python", "-m", "acgs_workloads.train", "--config"]
    config = TrainRunConfig.model_validate(json.loads(argv[4]))
    assert config == req.config
    assert config.run_id == req.submission_id == "acgs-job-1234abcd-g3"
    assert config.constitution.hash == "cdd01ef066bc6cf2" and config.use_ray
    assert config.training.epochs == SPEC.training.epochs
    assert req.metadata["acgs.io/resource"] == "ns/job" and req.metadata["acgs.io/generation"] == "3"


def test_log_tail_is_bounded_and_skips_events() -> None:
    logs = "\n".join([f"line {i}" for i in range(100)] + ["ACGS_EVENT {}"] + ["x" * 5000])
    tail = tj.log_tail(logs)
    assert len(tail) <= tj.LOG_TAIL_CHARS and "ACGS_EVENT" not in tail


def job(status: JobStatus, message: str = "") -> JobInfo:
    return JobInfo(
        "acgs-job-1234abcd-g1", status, message=message, start_time_ms=1_767_225_600_000, end_time_ms=1_767_226_200_000
    )


PROGRESS = ProgressEvent(progress=Progress(epoch=1, total_epochs=3, step=40, percent=33.3, loss=0.8))
DONE = ProgressEvent(progress=Progress(epoch=3, total_epochs=3, step=120, percent=100.0, loss=0.3))


@pytest.mark.parametrize(
    ("obs", "phase", "true_conditions", "false_conditions"),
    [
        (tj.Observation(job=None), "Pending", [], []),
        (tj.Observation(job=job(JobStatus.PENDING)), "Submitted", ["Submitted"], []),
        (tj.Observation(job=job(JobStatus.RUNNING), events=[PROGRESS]), "Running", ["Submitted", "Running"], []),
        (tj.Observation(job=job(JobStatus.RUNNING), events=[PROGRESS, DONE]), "Evaluating", ["Running"], []),
        (
            tj.Observation(job=job(JobStatus.SUCCEEDED), events=[DONE, result()]),
            "Succeeded",
            ["Complete", "Compliant"],
            ["Running", "Failed"],
        ),
        (
            tj.Observation(job=job(JobStatus.SUCCEEDED), events=[result(passed=False, gates_passed=False)]),
            "Succeeded",
            ["Complete"],
            ["Compliant"],
        ),
        (tj.Observation(job=job(JobStatus.SUCCEEDED), events=[DONE]), "Failed", ["Failed"], ["Complete"]),
        (
            tj.Observation(job=job(JobStatus.FAILED, "exit 1"), logs="Traceback\nValueError: boom"),
            "Failed",
            ["Failed"],
            ["Complete", "Running"],
        ),
        (tj.Observation(job=job(JobStatus.STOPPED, "stopped")), "Failed", ["Failed"], []),
    ],
    ids=[
        "not-submitted",
        "pending",
        "running",
        "evaluating",
        "succeeded",
        "non-compliant",
        "no-result",
        "failed",
        "stopped-outside",
    ],
)
def test_observed_status(
    obs: tj.Observation, phase: str, true_conditions: list[str], false_conditions: list[str]
) -> None:
    status = tj.observed_status(obs, generation=1, conditions=None, now=NOW, dashboard_url="http://ray:8265").wire()
    assert status["phase"] == phase and status["observedGeneration"] == 1
    by_type = {c["type"]: c for c in status["conditions"]}
    for t in true_conditions:
        assert by_type[t]["status"] == "True", t
    for t in false_conditions:
        assert by_type[t]["status"] == "False", t


def test_success_publishes_metrics_compliance_model_and_restarts() -> None:
    status = tj.observed_status(
        tj.Observation(job=job(JobStatus.SUCCEEDED), events=[PROGRESS, result()]),
        generation=1,
        conditions=None,
        now=NOW,
        dashboard_url="http://ray:8265",
    ).wire()
    assert status["metrics"]["accuracy"] == 0.91 and status["compliance"]["passed"] is True
    assert status["model"]["sha256"] == "b" * 64 and status["restarts"] == 1
    assert status["completionTime"] == "2026-01-01T00:10:00Z"
    assert status["rayJob"] == {
        "submissionId": "acgs-job-1234abcd-g1",
        "status": "SUCCEEDED",
        "dashboardUrl": "http://ray:8265",
    }


def test_failure_message_has_the_log_tail() -> None:
    logs = "\n".join(f"noise {i}" for i in range(500)) + "\nValueError: boom"
    status = tj.observed_status(
        tj.Observation(job=job(JobStatus.FAILED, "Job failed"), logs=logs),
        generation=1,
        conditions=None,
        now=NOW,
        dashboard_url="u",
    ).wire()
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "RayJobFailed" and failed["message"].endswith("ValueError: boom")
    assert len(failed["message"]) < 2200


def test_gate_failures_are_named() -> None:
    status = tj.observed_status(
        tj.Observation(
            job=job(JobStatus.SUCCEEDED),
            events=[result(gates_passed=False, failures=("accuracy 0.91 < minAccuracy 0.95",))],
        ),
        generation=1,
        conditions=None,
        now=NOW,
        dashboard_url="u",
    ).wire()
    compliant = next(c for c in status["conditions"] if c["type"] == "Compliant")
    assert compliant["reason"] == "GatesFailed" and "minAccuracy" in compliant["message"]


def test_events_survive_the_log_format() -> None:
    line = "(RayTrainWorker pid=7) " + format_event(PROGRESS)
    assert tj.latest(__import__("acgs_workloads.contract", fromlist=["x"]).parse_events(line))[0] == PROGRESS


@pytest.mark.parametrize(("elapsed", "deadline", "exceeded"), [(30, 60, False), (61, 60, True), (1000, None, False)])
def test_deadline(elapsed: int, deadline: int | None, exceeded: bool) -> None:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, 0, 0, elapsed % 60, tzinfo=dt.UTC) + dt.timedelta(minutes=elapsed // 60)
    assert tj.deadline_exceeded("2026-01-01T00:00:00Z", deadline, now) is exceeded


# --------------------------------------------------------------------------- decide


SID = "acgs-job-1234abcd-g1"
URL = "http://ray:8265"
REQUEST = tj.build_ray_job(
    namespace="ns", name="job", uid="1234abcd-x", generation=1, spec=SPEC, constitution=SNAPSHOT, artifact_root="/a"
)
T0 = "2026-01-01T00:00:00Z"


def running_condition(reason: str = "Running", status: str = "True") -> dict:
    return {"type": "Running", "status": status, "reason": reason, "message": "", "lastTransitionTime": T0}


RUNNING = {
    "phase": "Running",
    "observedGeneration": 1,
    "startTime": T0,
    "rayJob": {"submissionId": SID, "status": "RUNNING", "dashboardUrl": URL},
    "conditions": [running_condition()],
}


def target(status: dict | None = None, **spec: object) -> tj.Target:
    raw = {"component": "constitutional-ai", "constitutionRef": {"name": "default"}, **spec}
    return tj.Target(
        namespace="ns",
        name="job",
        uid="1234abcd-x",
        generation=1,
        spec=TrainingJobSpec.model_validate(raw),
        status=TrainingJobStatus.model_validate(status or {}),
    )


def decide(t: tj.Target, obs: tj.Observation, following: bool = False, retry: int = 0) -> tj.Decision:
    return tj.decide(t, obs, now=NOW, dashboard_url=URL, following=following, retry=retry)


def condition(decision: tj.Decision, type_: str) -> dict:
    assert decision.status is not None
    return next(c for c in decision.status.wire()["conditions"] if c["type"] == type_)


def test_a_fresh_submission_is_submitted_with_a_start_time_and_one_event() -> None:
    d = decide(target(), tj.Observation(job=JobInfo(SID, JobStatus.PENDING), submitted=REQUEST))
    assert d.status is not None and d.status.wire()["phase"] == "Submitted"
    assert d.status.start_time == NOW and d.status.ray_job is not None and d.status.ray_job.resubmissions is None
    assert d.events == (Event.normal(Reason.SUBMITTED, f"submitted Ray job {SID} (constitutional-ai) to {URL}"),)
    assert d.reconciled and d.retry is None and d.error is None and d.phase == "Submitted"


def test_a_spec_change_stops_the_old_job_before_submitting() -> None:
    old = {**RUNNING, "rayJob": {"submissionId": "acgs-job-1234abcd-g0"}}
    obs = tj.Observation(
        job=JobInfo(SID, JobStatus.PENDING), submitted=REQUEST, stopped_previous="acgs-job-1234abcd-g0"
    )
    d = decide(target(old), obs)
    assert [e.reason for e in d.events] == [Reason.SPEC_CHANGED, Reason.SUBMITTED]
    assert "acgs-job-1234abcd-g0 of an older generation" in d.events[0].message


@pytest.mark.parametrize(("retry", "delay"), [(0, 1), (3, 8), (10, 32)])
def test_an_outage_while_reconciling_is_pending_and_retried_with_backoff(retry: int, delay: int) -> None:
    d = decide(target(RUNNING), tj.Observation(outage="refused"), retry=retry)
    assert d.status is not None and d.status.phase == "Pending"
    assert condition(d, "Submitted")["reason"] == "RayUnavailable" and condition(d, "Submitted")["status"] == "False"
    assert d.retry == tj.Retry("refused", delay) and d.error is Reason.RAY_UNAVAILABLE
    assert d.events == (Event.warning(Reason.RAY_UNAVAILABLE, "refused"),) and not d.reconciled


def test_an_outage_right_after_submitting_keeps_the_submission_and_its_start_time() -> None:
    d = decide(target(), tj.Observation(submitted=REQUEST, outage="refused"))
    assert d.status is not None and d.status.phase == "Pending" and d.status.start_time == NOW
    assert [e.reason for e in d.events] == [Reason.SUBMITTED, Reason.RAY_UNAVAILABLE] and d.retry is not None


def test_an_outage_while_following_keeps_the_phase_and_warns_once() -> None:
    d = decide(target(RUNNING), tj.Observation(outage="refused"), following=True)
    assert d.status is not None and "phase" not in d.status.wire() and d.phase == "Running"
    assert condition(d, "Running")["status"] == "Unknown" and condition(d, "Running")["reason"] == "RayUnavailable"
    assert d.events == (Event.warning(Reason.RAY_UNAVAILABLE, "refused"),) and d.retry is None
    unknown = {**RUNNING, "conditions": [running_condition("RayUnavailable", "Unknown")]}
    again = decide(target(unknown), tj.Observation(outage="refused"), following=True)
    assert again.events == () and again.error is Reason.RAY_UNAVAILABLE


def test_suspend() -> None:
    d = decide(target(RUNNING, suspend=True), tj.Observation(suspended=True, stopped=True))
    assert d.status is not None and d.status.phase == "Suspended"
    assert condition(d, "Running")["reason"] == "Suspended" and condition(d, "Running")["status"] == "False"
    assert d.events == (Event.normal(Reason.SUSPENDED, f"stopped Ray job {SID}"),)
    assert decide(target(RUNNING, suspend=True), tj.Observation(suspended=True)).events == ()


def test_a_finished_generation_is_left_alone() -> None:
    done = {**RUNNING, "phase": "Succeeded"}
    assert target(done).done
    d = decide(target(done), tj.Observation(done=True))
    assert d.status is None and d.events == () and d.phase == "Succeeded" and not d.reconciled


def test_a_constitution_that_is_not_valid_waits() -> None:
    d = decide(target(), tj.Observation(waiting="Constitution default not found"))
    assert d.status is not None and d.status.phase == "Pending"
    assert condition(d, "Submitted")["reason"] == "ConstitutionNotReady"
    assert d.retry == tj.Retry("Constitution default not found", 5) and d.events == ()


def test_deadline_exceeded_fails_the_job() -> None:
    obs = tj.Observation(job=JobInfo(SID, JobStatus.RUNNING), deadline_exceeded=True)
    d = decide(target(RUNNING, activeDeadlineSeconds=60), obs, following=True)
    assert d.status is not None and d.status.phase == "Failed" and d.status.completion_time == NOW
    message = f"activeDeadlineSeconds=60 exceeded; stopped Ray job {SID}"
    assert condition(d, "Failed")["reason"] == "DeadlineExceeded" and condition(d, "Failed")["message"] == message
    assert condition(d, "Running")["status"] == "False"
    assert d.events == (Event.warning(Reason.DEADLINE_EXCEEDED, message),)


def test_resubmission_and_loss_count_against_max_failures() -> None:
    obs = tj.Observation(job=JobInfo(SID, JobStatus.PENDING), submitted=REQUEST, resubmitted=True, resubmissions=1)
    d = decide(target(RUNNING), obs, following=True)
    assert d.status is not None and d.status.phase == "Submitted"
    assert d.status.ray_job is not None and d.status.ray_job.resubmissions == 1
    assert d.status.start_time is None, "a resubmission keeps the job's start time"
    assert [e.reason for e in d.events] == [Reason.SUBMITTED, Reason.RAY_JOB_RESUBMITTED]
    assert "(1 of spec.faultTolerance.maxFailures=1)" in d.events[1].message

    spent = {**RUNNING, "rayJob": {**RUNNING["rayJob"], "resubmissions": 1}}
    assert target(spent).resubmissions == 1
    lost = decide(target(spent), tj.Observation(lost=True), following=True)
    assert lost.status is not None and lost.status.phase == "Failed"
    assert condition(lost, "Failed")["reason"] == "RayJobLost"
    assert "submitted again 1 times (spec.faultTolerance.maxFailures=1)" in condition(lost, "Failed")["message"]
    assert [(e.type, e.reason) for e in lost.events] == [("Warning", Reason.RAY_JOB_LOST)]


HEAD_GONE = (
    "ray.exceptions.ActorUnschedulableError: The actor is not schedulable: The node specified via "
    "NodeAffinitySchedulingStrategy doesn't exist any more or is infeasible, and soft=False was specified."
)


def test_a_job_that_lost_its_node_waits_for_the_cluster_instead_of_failing() -> None:
    obs = tj.Observation(job=job(JobStatus.FAILED, "exit 1"), logs=f"Traceback\n{HEAD_GONE}")
    d = decide(target(RUNNING), obs, following=True)
    assert d.status is not None and d.status.phase is None, "the phase stays Running"
    running = condition(d, "Running")
    assert (running["status"], running["reason"]) == ("Unknown", "RayClusterFault")
    assert "ActorUnschedulableError" in running["message"] and "0 of spec.faultTolerance.maxFailures=1" in (
        running["message"]
    )
    assert [(e.type, e.reason) for e in d.events] == [("Warning", Reason.RAY_CLUSTER_FAULT)]
    assert not any(c.type == "Failed" for c in d.status.conditions)

    # the next look: still waiting, no second event; the cluster forgetting it is the resubmission path
    waiting = {**RUNNING, "conditions": [{**running, "lastTransitionTime": "2026-01-01T00:08:00Z"}]}
    again = decide(target(waiting), obs, following=True)
    assert condition(again, "Running")["reason"] == "RayClusterFault" and again.events == ()


def test_a_job_that_lost_its_node_fails_after_the_grace_or_without_budget() -> None:
    obs = tj.Observation(job=job(JobStatus.FAILED, "exit 1"), logs=HEAD_GONE)
    long_ago = {**RUNNING, "conditions": [running_condition("RayUnavailable", "Unknown")]}  # T0: 10 minutes
    late = decide(target(long_ago), obs, following=True)
    assert late.status is not None and late.status.phase == "Failed"
    assert condition(late, "Failed")["reason"] == "RayJobFailed"
    spent = {**RUNNING, "rayJob": {**RUNNING["rayJob"], "resubmissions": 1}}
    assert decide(target(spent), obs, following=True).phase == "Failed"


def test_a_job_that_failed_by_itself_fails_at_once() -> None:
    obs = tj.Observation(job=job(JobStatus.FAILED, "exit 1"), logs="Traceback\nValueError: boom")
    assert decide(target(RUNNING), obs, following=True).phase == "Failed"
    assert tj.cluster_fault(job(JobStatus.RUNNING), HEAD_GONE) is None


def test_an_older_generations_resubmissions_are_reset() -> None:
    older = {**RUNNING, "rayJob": {"submissionId": "acgs-job-1234abcd-g0", "resubmissions": 2}}
    assert target(older).resubmissions == 0
    d = decide(target(older), tj.Observation(job=JobInfo(SID, JobStatus.PENDING), submitted=REQUEST))
    assert d.status is not None and d.status.wire()["rayJob"]["resubmissions"] == 0


@pytest.mark.parametrize(
    ("old_phase", "obs", "expected"),
    [
        ("Submitted", tj.Observation(job=job(JobStatus.RUNNING)), [("Normal", "Running", "phase Running")]),
        ("Running", tj.Observation(job=job(JobStatus.RUNNING)), []),
        ("Submitted", tj.Observation(job=job(JobStatus.PENDING)), []),
        ("Running", tj.Observation(job=job(JobStatus.FAILED, "exit 1")), [("Warning", "RayJobFailed", "exit 1")]),
    ],
    ids=["running", "unchanged", "submitted", "failed"],
)
def test_a_phase_change_posts_one_event(old_phase: str, obs: tj.Observation, expected: list) -> None:
    d = decide(target({**RUNNING, "phase": old_phase}), obs, following=True)
    assert [(e.type, e.reason.value, e.message.split("\n")[0]) for e in d.events] == expected
    assert d.started_running is (old_phase != "Running" and d.phase == "Running")


def test_success_event_carries_the_summary() -> None:
    d = decide(target(RUNNING), tj.Observation(job=job(JobStatus.SUCCEEDED), events=[result()]), following=True)
    assert d.phase == "Succeeded" and not d.reconciled
    summary = "accuracy 0.9100, F1 0.9000, compliance 0.9700 under cdd01ef066bc6cf2"
    assert d.events == (Event.normal(Reason.SUCCEEDED, summary),)


def test_invalid_spec_fails_permanently_and_drops_old_conditions() -> None:
    d = tj.invalid_spec("spec.component: bad", 2, NOW)
    assert d.status is not None and d.status.phase == "Failed" and d.status.observed_generation == 2
    assert {c.type for c in d.status.conditions} == {"Failed", "Running"}
    assert d.events == (Event.warning(Reason.INVALID_SPEC, "spec.component: bad"),)
