"""spec -> Ray job and Ray job -> status, as pure functions (table tests)."""

import json
import shlex

import pytest

from acgs_operator.api.v1alpha1 import TrainingJobSpec
from acgs_operator.rayclient import JobInfo, JobStatus
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
    status = tj.observed_status(obs, generation=1, conditions=None, now=NOW, dashboard_url="http://ray:8265")
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
    )
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
    )
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
    )
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
