"""Every status the builders produce, as it is written (``.wire()``), is valid against the generated CRD.

The schema is the ``status`` of ``crds/acgs.io_<plural>.yaml`` (generated from ``api/v1alpha1.py``), closed
here: the API server silently prunes a field its structural schema does not declare, so a key the schema
does not know would be lost without a word; in this test it is an error. Add a kind by building its
statuses and calling :func:`validate_status` with its plural.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from acgs_operator.api.v1alpha1 import ConstitutionStatus, RayJobStatus, TrainingJobSpec, TrainingJobStatus
from acgs_operator.constitution import build as cst
from acgs_operator.rayclient import JobInfo, JobStatus
from acgs_operator.trainingjob import build as tj
from acgs_operator.trainingjob import handlers
from acgs_workloads.contract import (
    ComplianceReport,
    ConstitutionSnapshot,
    GateResult,
    Lineage,
    ModelArtifact,
    Principle,
    Progress,
    ProgressEvent,
    ResultEvent,
    TrainingMetrics,
    ViolationCount,
    format_event,
)

ROOT = Path(__file__).resolve().parents[4]
CRDS = ROOT / "crds"
NOW = "2026-01-01T00:10:00Z"


# --------------------------------------------------------------------------- the schema


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists its properties."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema:
        out["properties"] = {name: closed(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def status_schema(kind_plural: str) -> dict[str, Any]:
    """The (closed) ``status`` schema of the generated CRD of ``kind_plural``, e.g. ``trainingjobs``."""
    crd = yaml.safe_load((CRDS / f"acgs.io_{kind_plural}.yaml").read_text())
    return closed(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"])  # type: ignore[no-any-return]


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 with a zone, as the API server expects it."""
    return not isinstance(value, str) or dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def schema_errors(kind_plural: str, wire: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(status_schema(kind_plural), format_checker=FORMATS)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(wire))


def validate_status(kind_plural: str, status: BaseModel | dict[str, Any]) -> None:
    wire = status.wire() if isinstance(status, BaseModel) else status  # type: ignore[attr-defined]
    assert not schema_errors(kind_plural, wire), (wire, schema_errors(kind_plural, wire))


# --------------------------------------------------------------------------- TrainingJob statuses

SID = "acgs-job-1234abcd-g1"
SPEC = TrainingJobSpec.model_validate({"component": "constitutional-ai", "constitutionRef": {"name": "default"}})
SNAPSHOT = ConstitutionSnapshot(name="default", hash="cdd01ef066bc6cf2", principles=[Principle(id="p", rego="x")])
REQUEST = tj.build_ray_job(
    namespace="ns", name="job", uid="1234abcd-x", generation=1, spec=SPEC, constitution=SNAPSHOT, artifact_root="/a"
)
PROGRESS = ProgressEvent(progress=Progress(epoch=1, total_epochs=3, step=40, percent=33.3, loss=0.8))
DONE = ProgressEvent(progress=Progress(epoch=3, total_epochs=3, step=120, percent=100.0))


def result(passed: bool = True, gates: bool = True) -> ResultEvent:
    return ResultEvent(
        metrics=TrainingMetrics(
            accuracy=0.91, precision=0.9, recall=0.88, f1=0.89, loss=0.3, samples_per_second=1200.0, p99_latency_ms=3.2
        ),
        compliance=ComplianceReport(
            constitution_hash="cdd01ef066bc6cf2",
            score=0.97 if passed else 0.5,
            threshold=0.9,
            passed=passed,
            evaluated_examples=800,
            violations=[ViolationCount(principle="privacy", count=3)],
        ),
        model=ModelArtifact(uri="file:///a/acgs-x", sha256="b" * 64, size_bytes=123),
        gates=GateResult(passed=gates, failures=[] if gates else ["accuracy 0.91 < minAccuracy 0.95"]),
        restarts=1,
    )


def job(status: JobStatus, message: str = "", started: bool = True) -> JobInfo:
    return JobInfo(
        SID,
        status,
        message=message,
        start_time_ms=1_767_225_600_000 if started else None,
        end_time_ms=1_767_226_200_000 if status.terminal else None,
    )


RUNNING_STATUS: dict[str, Any] = {
    "phase": "Running",
    "observedGeneration": 1,
    "startTime": "2026-01-01T00:00:00Z",
    "rayJob": {"submissionId": SID, "status": "RUNNING", "dashboardUrl": "http://ray:8265", "resubmissions": 1},
    "conditions": [{"type": "Running", "status": "True", "reason": "Running", "lastTransitionTime": NOW}],
}
OLDER_GENERATION: dict[str, Any] = {
    **RUNNING_STATUS,
    "rayJob": {"submissionId": "acgs-job-1234abcd-g0", "resubmissions": 1},
}


def target(status: dict[str, Any] | None = None, **spec: Any) -> tj.Target:
    return tj.Target(
        namespace="ns",
        name="job",
        uid="1234abcd-x",
        generation=1,
        spec=SPEC.model_copy(update=spec),
        status=TrainingJobStatus.model_validate(status or {}),
    )


OBSERVATIONS: dict[str, tj.Observation] = {
    "not-submitted": tj.Observation(),
    "submitted-not-found": tj.Observation(submitted=REQUEST),
    "pending": tj.Observation(job=job(JobStatus.PENDING, started=False)),
    "submitted": tj.Observation(job=job(JobStatus.PENDING, started=False), submitted=REQUEST),
    "running": tj.Observation(job=job(JobStatus.RUNNING), events=[PROGRESS]),
    "evaluating": tj.Observation(job=job(JobStatus.RUNNING), events=[PROGRESS, DONE]),
    "succeeded": tj.Observation(job=job(JobStatus.SUCCEEDED), events=[DONE, result()]),
    "non-compliant": tj.Observation(job=job(JobStatus.SUCCEEDED), events=[result(passed=False)]),
    "gates-failed": tj.Observation(job=job(JobStatus.SUCCEEDED), events=[result(gates=False)]),
    "no-result": tj.Observation(job=job(JobStatus.SUCCEEDED), events=[DONE], logs="done\n"),
    "failed": tj.Observation(job=job(JobStatus.FAILED, "exit 1"), logs="Traceback\nValueError: boom"),
    "stopped-outside": tj.Observation(job=job(JobStatus.STOPPED, "stopped")),
    "resubmitted": tj.Observation(
        job=job(JobStatus.PENDING, started=False), submitted=REQUEST, resubmitted=True, resubmissions=1
    ),
}


@pytest.mark.parametrize("name", OBSERVATIONS)
def test_observed_statuses_match_the_crd(name: str) -> None:
    status = tj.observed_status(
        OBSERVATIONS[name], generation=1, conditions=None, now=NOW, dashboard_url="http://ray:8265"
    )
    validate_status("trainingjobs", status)


DECISIONS: dict[str, tuple[tj.Target, tj.Observation, bool]] = {
    # name: (target, observation, following)
    **{f"reconcile-{name}": (target(), obs, False) for name, obs in OBSERVATIONS.items()},
    **{f"follow-{name}": (target(RUNNING_STATUS), obs, True) for name, obs in OBSERVATIONS.items()},
    "new-generation": (target(OLDER_GENERATION), OBSERVATIONS["submitted"], False),
    "spec-changed": (
        target(OLDER_GENERATION),
        tj.Observation(job=job(JobStatus.PENDING), submitted=REQUEST, stopped_previous="acgs-job-1234abcd-g0"),
        False,
    ),
    "unavailable-on-create": (target(), tj.Observation(outage="connection refused"), False),
    "unavailable-after-submit": (target(), tj.Observation(submitted=REQUEST, outage="connection refused"), False),
    "unreachable-while-running": (target(RUNNING_STATUS), tj.Observation(outage="connection refused"), True),
    "suspended": (target(RUNNING_STATUS, suspend=True), tj.Observation(suspended=True, stopped=True), False),
    "constitution-not-ready": (target(), tj.Observation(waiting="Constitution default not found"), False),
    "deadline": (
        target(RUNNING_STATUS, active_deadline_seconds=60),
        tj.Observation(job=job(JobStatus.RUNNING), deadline_exceeded=True),
        True,
    ),
    "lost": (target(RUNNING_STATUS), tj.Observation(lost=True), True),
}


@pytest.mark.parametrize("name", DECISIONS)
def test_decided_statuses_match_the_crd(name: str) -> None:
    t, obs, following = DECISIONS[name]
    decision = tj.decide(t, obs, now=NOW, dashboard_url="http://ray:8265", following=following, retry=2)
    assert decision.status is not None
    validate_status("trainingjobs", decision.status)


def test_invalid_spec_status_matches_the_crd() -> None:
    decision = tj.invalid_spec("spec.component: Input should be 'constitutional-ai'", 3, NOW)
    assert decision.status is not None
    validate_status("trainingjobs", decision.status)


def test_a_finished_generation_writes_nothing() -> None:
    done = {**RUNNING_STATUS, "phase": "Succeeded"}
    assert tj.decide(target(done), tj.Observation(done=True), now=NOW, dashboard_url="u").status is None


def test_a_whole_lifecycle_through_the_handlers_matches_the_crd(  # type: ignore[no-untyped-def]
    make_merge_patched_resource, memo, ray, constitution_index, recorded_events
) -> None:
    """Each patch the handlers write, and the object it merges into, through an outage and a resubmission."""
    resource = make_merge_patched_resource("TrainingJob", SPEC.wire())
    seen: list[dict[str, Any]] = []

    def step(handler: Any) -> None:
        with contextlib.suppress(kopf.TemporaryError):  # kopf applies the patch all the same
            asyncio.run(handler(memo=memo, constitutions_by_name=constitution_index, **resource.kwargs()))
        patch = dict(resource.patch.get("status") or {})
        validate_status("trainingjobs", patch)
        resource.apply_patch()
        validate_status("trainingjobs", resource.status)
        seen.append(resource.status)

    ray.unavailable = True
    step(handlers.reconcile_training_job)  # Pending, RayUnavailable
    ray.unavailable = False
    step(handlers.reconcile_training_job)  # Submitted
    sid = resource.status["rayJob"]["submissionId"]
    ray.set_job(sid, JobStatus.RUNNING, logs=format_event(PROGRESS))
    step(handlers.follow_training_job)  # Running, progress
    ray.unavailable = True
    step(handlers.follow_training_job)  # Running Unknown
    ray.unavailable = False
    ray.jobs.clear()
    step(handlers.follow_training_job)  # resubmitted
    ray.set_job(sid, JobStatus.RUNNING, logs=format_event(DONE))
    step(handlers.follow_training_job)  # Evaluating
    ray.set_job(sid, JobStatus.SUCCEEDED, logs="\n".join([format_event(DONE), format_event(result())]))
    step(handlers.follow_training_job)  # Succeeded
    phases = ["Pending", "Submitted", "Running", "Running", "Submitted", "Evaluating", "Succeeded"]
    assert [s.get("phase") for s in seen] == phases
    assert resource.status["rayJob"]["resubmissions"] == 1 and resource.status["model"]["sha256"] == "b" * 64


# --------------------------------------------------------------------------- Constitution statuses

GOOD = 'package acgs.privacy\n\nviolation contains "pii exposed" if input.decision.exposes_pii\n'
BROKEN = "package acgs.broken\n\nviolation contains msg if {\n"
LAST = ConstitutionStatus.model_validate({"hash": "0123456789abcdef", "phase": "Valid", "observedGeneration": 1})


@pytest.mark.parametrize(
    "principles",
    [[("privacy", GOOD)], [("privacy", GOOD), ("broken", BROKEN)]],
    ids=["valid", "compile-failed"],
)
@pytest.mark.parametrize("current", [ConstitutionStatus(), LAST], ids=["first", "changed"])
@pytest.mark.parametrize("aliases", [[], ["cdd01ef066bc6cf2", "00112233aabbccdd"]], ids=["no-aliases", "aliases"])
def test_constitution_statuses_match_the_crd(
    principles: list[tuple[str, str]], current: ConstitutionStatus, aliases: list[str]
) -> None:
    verdict = cst.judge({"principles": [{"id": pid, "rego": rego} for pid, rego in principles], "hashAliases": aliases})
    status = cst.decide(verdict, current, 2, NOW).status
    assert status.hash_aliases == aliases
    validate_status("constitutions", status)


def test_invalid_constitution_status_matches_the_crd() -> None:
    validate_status("constitutions", cst.decide(cst.InvalidSpec("principles.0.id: bad"), LAST, 2, NOW).status)


# --------------------------------------------------------------------------- unknown keys cannot be written


@pytest.mark.parametrize(
    ("kind_plural", "wire"),
    [
        ("trainingjobs", {"phse": "Running"}),
        ("trainingjobs", {"rayJob": {"submisionId": SID}}),
        ("trainingjobs", {"conditions": [{"type": "Running", "status": "True", "lastTransitonTime": NOW}]}),
        ("trainingjobs", {"progress": {"epoch": 1, "totalEpochs": 2, "step": 1, "percent": 50.0, "los": 0.1}}),
        ("trainingjobs", {"phase": "Done"}),
        ("trainingjobs", {"startTime": "yesterday"}),
        ("constitutions", {"hsh": "0123456789abcdef"}),
        ("constitutions", {"phase": "Valid", "observedGeneration": "1"}),
        ("constitutions", {"hashAliases": "cdd01ef066bc6cf2"}),
    ],
)
def test_the_schema_refuses_what_the_api_server_would_drop_or_reject(kind_plural: str, wire: dict[str, Any]) -> None:
    assert schema_errors(kind_plural, wire)


@pytest.mark.parametrize("model", [TrainingJobStatus, RayJobStatus, ConstitutionStatus])
def test_a_misspelled_field_is_never_written(model: type[BaseModel]) -> None:
    parsed = model.model_validate({"phse": "Running", "submisionId": SID, "hsh": "x"})  # read back: ignored
    assert set(parsed.wire()) <= {"conditions"}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no field"):
        parsed.phse = "Running"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Progress, {"epoch": 1, "totalEpochs": 2, "step": 1, "percent": 50.0, "los": 0.1}),
        (TrainingMetrics, {"acuracy": 0.9}),
        (ModelArtifact, {"uri": "file:///a", "sha256": "b" * 64, "sizeBytes": 1, "size": 1}),
    ],
)
def test_the_parts_a_run_reports_refuse_unknown_fields(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(data)


def test_every_status_field_is_in_the_schema() -> None:
    """A status model field the CRD lacks would be pruned by the API server: fill them all and validate."""
    full = tj.decide(
        target(RUNNING_STATUS),
        OBSERVATIONS["succeeded"],
        now=NOW,
        dashboard_url="http://ray:8265",
        following=True,
    ).status
    assert full is not None
    full.ray_job = RayJobStatus(submission_id=SID, status="SUCCEEDED", dashboard_url="http://ray:8265", resubmissions=1)
    full.progress = DONE.progress
    full.lineage = Lineage(dataset_digest="d" * 64, constitution_hash="c" * 16, model_sha256="b" * 64,
                           metadata_sha256="e" * 64, signature_sha256="f" * 64, signed_by="0" * 16)
    unset = [name for name, value in full if value is None or value == []]
    assert not unset, unset
    validate_status("trainingjobs", full)
    aliased = {"principles": [{"id": "p", "rego": GOOD}], "hashAliases": ["cdd01ef066bc6cf2"]}
    constitution = cst.decide(cst.judge(aliased), LAST, 2, NOW).status
    assert not [name for name, value in constitution if value is None or value == []]
    validate_status("constitutions", constitution)
