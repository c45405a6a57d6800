"""ModelDeployment handlers against the fake Ray client: kopf objects built by hand, merge-patched status."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from acgs_operator.modeldeployment import build as mds
from acgs_operator.modeldeployment import handlers as h
from acgs_operator.rayclient import FakeRayClient, JobStatus
from acgs_workloads.contract import (
    ComplianceReport,
    EvaluationEvent,
    EvaluationRecord,
    GateResult,
    TrainingMetrics,
    format_event,
)
from tests.unit.operator.conftest import MergePatchedResource, Recorder
from tests.unit.operator.modeldeployment.common import HASH, MD_SPEC, SHA, tj_entry


@pytest.fixture
def md_memo(memo: kopf.Memo) -> kopf.Memo:
    memo.serve_lock = asyncio.Lock()
    return memo


@pytest.fixture
def world(fake_index, constitution_entry):  # type: ignore[no-untyped-def]
    constitutions, jobs = fake_index(), fake_index()
    constitutions.add(("ns", "default"), constitution_entry(HASH))
    jobs.add(("ns", "job"), tj_entry())
    return {"constitutions_by_name": constitutions, "trainingjobs_by_name": jobs}


def reconcile(resource: Any, memo: kopf.Memo, world: dict[str, Any], retry: int = 0) -> None:
    """The create/update/resume handler, then its status patch applied as the API server would."""

    async def go() -> None:
        memo.serve_lock = asyncio.Lock()
        await h.reconcile_model_deployment(memo=memo, **world, **{**resource.kwargs(), "retry": retry})

    try:
        asyncio.run(go())
    finally:
        resource.apply_patch()


def tick(resource: Any, memo: kopf.Memo, world: dict[str, Any]) -> None:
    """One timer tick (kopf passes no ``retry`` to timers)."""

    async def go() -> None:
        memo.serve_lock = asyncio.Lock()
        kwargs = {k: v for k, v in resource.kwargs().items() if k != "retry"}
        await h.follow_model_deployment(memo=memo, **world, **kwargs)

    try:
        asyncio.run(go())
    finally:
        resource.apply_patch()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


READY_SECONDS = "acgs_modeldeployment_apply_to_ready_seconds_count"
RECONCILES = "acgs_operator_reconciles_total"
ERRORS = "acgs_operator_errors_total"


def test_deploys_then_ready(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    ready_before = sample(READY_SECONDS)
    reconcile(md, md_memo, world)
    assert set(ray.applications) == {"ns-md", mds.PLATFORM_APP}
    assert md.status["phase"] == "Deploying" and md.condition("CompliancePassed")["status"] == "True"
    assert ray.http_options == {"host": md_memo.config.serve_http_host, "port": md_memo.config.serve_http_port}
    ray.set_app_status("ns-md", "RUNNING")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Ready" and md.status["url"].endswith("/constitutional-ai")
    assert md.status["routes"] == [
        "/constitutional-ai/predict",
        "/constitutional-ai/health",
        "/constitutional-ai/metadata",
    ]
    assert md.status["model"] == {"uri": "file:///a/model.pt", "sha256": "d" * 64, "trainingJob": "ns/job"}
    assert md.status["compliance"] == {
        "constitutionHash": HASH,
        "score": 0.97,
        "gate": 0.9,
        "reason": "CompliancePassed",
    }
    assert sample(READY_SECONDS) == ready_before + 1
    puts = ray.serve_puts
    reconcile(md, md_memo, world)
    tick(md, md_memo, world)
    assert ray.serve_puts == puts, "an unchanged deployment must not rewrite the Serve config"
    assert sample(READY_SECONDS) == ready_before + 1, "Ready once, observed once"
    assert recorded_events.reasons == ["Deploying", "Ready"]


def change_constitution(world: dict[str, Any], new_hash: str) -> None:
    """The Constitution ``default`` in ``ns`` now has ``new_hash`` (as its handler would write it, with the
    generation it checked)."""
    entry = world["constitutions_by_name"][("ns", "default")][0]
    status = {**entry["status"], "hash": new_hash, "observedGeneration": entry["generation"]}
    world["constitutions_by_name"].add(("ns", "default"), {**entry, "status": status})


def edit_constitution(world: dict[str, Any]) -> None:
    """The Constitution ``default`` in ``ns`` is edited; its handler has not checked the new generation yet."""
    entry = world["constitutions_by_name"][("ns", "default")][0]
    world["constitutions_by_name"].add(("ns", "default"), {**entry, "generation": entry["generation"] + 1})


def test_a_constitution_being_checked_after_an_edit_leaves_a_serving_deployment_alone(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "onConstitutionChange": "block"}, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Ready"
    edit_constitution(world)
    tick(md, md_memo, world)
    assert md.status["phase"] == "Ready" and "ns-md" in ray.applications, "no Blocked for the second of the check"
    with pytest.raises(kopf.TemporaryError, match="Constitution default was edited and is being checked"):
        reconcile(md, md_memo, world)
    assert md.status["phase"] == "Ready" and recorded_events.reasons == ["Deploying", "Ready"]
    change_constitution(world, "1" * 16)  # checked: a new hash
    tick(md, md_memo, world)
    assert md.status["phase"] == "Blocked" and md.condition("CompliancePassed")["reason"] == "ConstitutionChanged"


def test_constitution_change_withdraws_the_route(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "onConstitutionChange": "block"}, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    reconcile(md, md_memo, world)
    assert md.status["url"]
    change_constitution(world, "1" * 16)
    tick(md, md_memo, world)
    assert "ns-md" not in ray.applications and md.status["phase"] == "Blocked"
    assert mds.PLATFORM_APP in ray.applications, "the proxy stays up: the withdrawn route answers 404"
    assert md.condition("CompliancePassed")["reason"] == "ConstitutionChanged"
    assert any("re-run TrainingJob ns/job" in m for _, _, m in recorded_events.items)
    assert "url" not in md.status and md.status["routes"] == [], "a withdrawn deployment has no URL"
    assert md.status["replicas"] == {"desired": 0, "ready": 0}
    assert recorded_events.items[-2][1:] == ("ConstitutionChanged", recorded_events.items[-2][2])
    assert recorded_events.items[-2][2].startswith("Serve application withdrawn: ")


def test_two_deployments_coexist_and_delete_removes_only_one(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    a = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="a")
    b = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "routePrefix": "/second"}, name="b")
    reconcile(a, md_memo, world)
    reconcile(b, md_memo, world)
    assert set(ray.applications) == {"ns-a", "ns-b", mds.PLATFORM_APP}
    assert ray.applications["ns-b"].route_prefix == "/second"
    asyncio.run(_delete(a, md_memo))
    assert set(ray.applications) == {"ns-b", mds.PLATFORM_APP}
    asyncio.run(_delete(b, md_memo))
    assert ray.applications == {}


async def _delete(resource: Any, memo: kopf.Memo) -> None:
    memo.serve_lock = asyncio.Lock()
    await h.remove_model_deployment(memo=memo, **resource.kwargs())


def test_delete_during_a_ray_outage_is_retried(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    ray.unavailable = True
    with pytest.raises(kopf.TemporaryError):
        asyncio.run(_delete(md, md_memo))
    ray.unavailable = False
    asyncio.run(_delete(md, md_memo))
    assert ray.applications == {}


def test_min_score_blocks_with_reason(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "compliance": {"minScore": 0.99}}, name="md")
    before = sample(RECONCILES, kind="ModelDeployment", result="blocked")
    reconcile(md, md_memo, world)
    assert ray.applications == {} and md.status["phase"] == "Blocked"
    assert md.status["compliance"]["reason"] == "ComplianceBelowThreshold" and md.status["compliance"]["gate"] == 0.99
    assert ("Warning", "ComplianceBelowThreshold") in [(t, r) for t, r, _ in recorded_events.items]
    assert sample(RECONCILES, kind="ModelDeployment", result="blocked") == before + 1
    tick(md, md_memo, world)
    assert recorded_events.reasons == ["ComplianceBelowThreshold"], "an unchanged phase is not announced again"


def test_training_not_complete_blocks(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    world["trainingjobs_by_name"].add(("ns", "job"), tj_entry(complete=False))
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    assert md.status["phase"] == "Blocked" and md.condition("CompliancePassed")["reason"] == "TrainingNotComplete"
    assert md.condition("CompliancePassed")["message"] == "TrainingJob ns/job is Running"
    world["trainingjobs_by_name"].add(("ns", "job"), tj_entry())
    tick(md, md_memo, world)
    assert md.status["phase"] == "Deploying", "the timer picks up the finished training"


def test_ray_unavailable_is_a_temporary_error(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    ray.unavailable = True
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    before = sample(ERRORS, kind="ModelDeployment", reason="RayUnavailable")
    with pytest.raises(kopf.TemporaryError):
        reconcile(md, md_memo, world)
    assert md.condition("Ready")["reason"] == "RayUnavailable"
    assert set(md.status) == {"conditions", "observedGeneration"}, "an outage writes nothing else"
    assert sample(ERRORS, kind="ModelDeployment", reason="RayUnavailable") == before + 1
    assert recorded_events.reasons == ["RayUnavailable"]


def test_ray_outage_keeps_a_ready_deployment_and_the_timer_comes_back(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    tick(md, md_memo, world)
    url = md.status["url"]
    ray.unavailable = True
    tick(md, md_memo, world)  # no exception: the next tick tries again
    assert md.status["phase"] == "Ready" and md.status["url"] == url
    assert md.condition("Ready")["reason"] == "RayUnavailable" and md.condition("Ready")["status"] == "False"
    ray.unavailable = False
    tick(md, md_memo, world)
    assert md.condition("Ready")["status"] == "True" and md.condition("Ready")["reason"] == "Ready"


def test_ray_lost_while_the_config_is_put(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from acgs_operator.rayclient import RayUnavailable

    async def refuse(*_: Any, **__: Any) -> None:
        raise RayUnavailable("connection reset")

    monkeypatch.setattr(ray, "put_serve_applications", refuse)
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    with pytest.raises(kopf.TemporaryError, match="connection reset"):
        reconcile(md, md_memo, world, retry=7)
    assert md.condition("Ready")["reason"] == "RayUnavailable" and "phase" not in md.status


def test_constitution_change_reevaluates_the_model_and_serves_it_again_without_training(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")  # onConstitutionChange: reevaluate
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    reconcile(md, md_memo, world)
    change_constitution(world, "1" * 16)
    tick(md, md_memo, world)
    sid = md.status["reevaluation"]["submissionId"]
    assert sid in ray.jobs and "-m acgs_workloads.reevaluate --model-uri file:///a/model.pt" in ray.entrypoints[sid]
    assert md.status["phase"] == "Blocked" and md.status["reevaluation"]["phase"] == "Running"
    assert md.condition("CompliancePassed")["reason"] == "Reevaluating"
    assert "ns-md" not in ray.applications, "never served under a hash it was not evaluated for"
    [route] = ray.applications[mds.PLATFORM_APP].config["args"]["withdrawn"]
    assert (route["prefix"], route["reason"], route["retryAfterSeconds"]) == ("/constitutional-ai", "Reevaluating", 1)
    jobs = len(ray.jobs)
    tick(md, md_memo, world)
    assert len(ray.jobs) == jobs, "one evaluation job per (deployment, constitution, model)"
    record = EvaluationRecord(
        constitution_hash="1" * 16, model_sha256=SHA, metrics=TrainingMetrics(accuracy=0.9),
        compliance=ComplianceReport(constitution_hash="1" * 16, score=0.95, threshold=0.9, passed=True,
                                    evaluated_examples=200),
        gates=GateResult(passed=True), seconds=3.5,
    )
    event = EvaluationEvent(record_uri="file:///a/evaluations/1111111111111111.json", record=record)
    ray.set_job(sid, JobStatus.SUCCEEDED, logs="[acgs] evaluating\n" + format_event(event) + "\n")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Deploying" and md.status["compliance"]["constitutionHash"] == "1" * 16
    assert md.status["compliance"]["score"] == 0.95 and md.status["reevaluation"]["phase"] == "Complete"
    args = ray.applications["ns-md"].config["args"]
    assert args["constitution"]["hash"] == "1" * 16
    assert ray.applications[mds.PLATFORM_APP].config["args"] == {}, "served again: no longer withdrawn"
    assert "Reevaluated" in recorded_events.reasons and "Reevaluating" in recorded_events.reasons


def test_a_reevaluation_below_min_score_blocks_with_the_new_score(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    change_constitution(world, "2" * 16)
    tick(md, md_memo, world)
    sid = md.status["reevaluation"]["submissionId"]
    record = EvaluationRecord(
        constitution_hash="2" * 16, model_sha256=SHA, metrics=TrainingMetrics(accuracy=0.9),
        compliance=ComplianceReport(constitution_hash="2" * 16, score=0.61, threshold=0.9, passed=False,
                                    evaluated_examples=200),
        gates=GateResult(passed=False, failures=["compliance 0.61 < minimum 0.9"]), seconds=2.0,
    )
    event = EvaluationEvent(record_uri="file:///a/evaluations/2222222222222222.json", record=record)
    ray.set_job(sid, JobStatus.SUCCEEDED, logs=format_event(event) + "\n")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Blocked" and md.condition("CompliancePassed")["reason"] == "ComplianceBelowThreshold"
    assert md.status["compliance"] == {"constitutionHash": "2" * 16, "score": 0.61, "gate": 0.9,
                                       "reason": "ComplianceBelowThreshold"}
    assert "ns-md" not in ray.applications
    assert recorded_events.reasons[-1] == "ComplianceBelowThreshold"


def test_constitution_change_with_retrain_starts_a_new_generation_then_serves_its_model(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_namespaced_custom_object(group: str, version: str, namespace: str, plural: str, name: str,
                                       body: dict[str, Any]) -> dict[str, Any]:
        patches.append((plural, f"{namespace}/{name}", body))
        return body

    md_memo.custom = SimpleNamespace(patch_namespaced_custom_object=patch_namespaced_custom_object)
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "onConstitutionChange": "retrain"}, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    reconcile(md, md_memo, world)
    change_constitution(world, "1" * 16)
    tick(md, md_memo, world)
    assert patches == [("trainingjobs", "ns/job", {"spec": {"retrainedFor": "1" * 16}})]
    assert md.status["phase"] == "Blocked" and md.condition("CompliancePassed")["reason"] == "Retraining"
    [route] = ray.applications[mds.PLATFORM_APP].config["args"]["withdrawn"]
    assert route["reason"] == "Retraining" and route["retryAfterSeconds"] == 1
    assert not ray.jobs, "retrain runs no evaluation job"
    # the TrainingJob's new generation runs, then completes under the new Constitution
    running = tj_entry(generation=2)
    running["spec"]["retrainedFor"] = "1" * 16
    world["trainingjobs_by_name"].add(("ns", "job"), running)
    tick(md, md_memo, world)
    assert len(patches) == 1, "one new generation"
    assert md.condition("CompliancePassed")["reason"] == "TrainingNotComplete"
    done = tj_entry(hash_="1" * 16, generation=2)
    done["status"]["observedGeneration"] = 2
    world["trainingjobs_by_name"].add(("ns", "job"), done)
    tick(md, md_memo, world)
    assert md.status["phase"] == "Deploying" and md.status["compliance"]["constitutionHash"] == "1" * 16
    assert "Retraining" in recorded_events.reasons


def test_a_new_model_rolls_out_while_the_old_one_serves(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Ready" and "rollout" not in md.status, "a first deployment is no rollout"
    deployment = ray.applications["ns-md"].config["deployments"][0]
    assert deployment["max_surge_percent"] == 100, "old replicas serve until the new ones are healthy"
    retrained = tj_entry(generation=2)
    retrained["status"]["observedGeneration"] = 2
    retrained["status"]["model"] = {"uri": "file:///b/model.pt", "sha256": "e" * 64, "sizeBytes": 1}
    world["trainingjobs_by_name"].add(("ns", "job"), retrained)
    tick(md, md_memo, world)
    rollout = md.status["rollout"]
    assert (rollout["fromSha256"], rollout["toSha256"], rollout["phase"]) == (SHA, "e" * 64, "Progressing")
    assert md.status["url"] and md.status["routes"], "the route keeps serving during the rollout"
    assert ray.applications["ns-md"].config["args"]["modelSha256"] == "e" * 64
    tick(md, md_memo, world)
    assert md.status["rollout"]["phase"] == "Progressing"
    ray.set_app_status("ns-md", "RUNNING")
    tick(md, md_memo, world)
    assert md.status["phase"] == "Ready" and md.status["rollout"]["phase"] == "Complete"
    assert md.status["rollout"]["completedAt"] and md.status["model"]["sha256"] == "e" * 64


def test_secret_unavailable_is_a_temporary_error_then_the_key_is_used(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    secrets: dict[str, dict[str, str]] = {}

    def read_namespaced_secret(name: str, namespace: str) -> Any:
        if name not in secrets:
            raise RuntimeError("Not Found")
        return SimpleNamespace(data=secrets[name])

    def read_namespaced_config_map(name: str, namespace: str) -> Any:
        raise ApiException(status=404, reason="Not Found")  # no verification keys in the namespace

    md_memo.core_v1 = SimpleNamespace(
        read_namespaced_secret=read_namespaced_secret, read_namespaced_config_map=read_namespaced_config_map
    )
    auth = {"auth": {"apiKeySecretRef": {"name": "key", "key": "token"}}}
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, **auth}, name="md")
    with pytest.raises(kopf.TemporaryError, match="Secret ns/key cannot be read"):
        reconcile(md, md_memo, world)
    assert md.condition("Ready")["reason"] == "SecretUnavailable" and ray.applications == {}
    secrets["key"] = {"other": base64.b64encode(b"x").decode()}
    tick(md, md_memo, world)
    assert "has no key token" in md.condition("Ready")["message"]
    secrets["key"] = {"token": base64.b64encode(b"s3cret").decode()}
    reconcile(md, md_memo, world)
    args = ray.applications["ns-md"].config["args"]
    assert md.status["phase"] == "Deploying" and len(args["apiKeySha256"]) == 64


def test_invalid_spec_is_a_permanent_error_and_the_timer_stays_quiet(
    make_merge_patched_resource: type[MergePatchedResource],
    md_memo: kopf.Memo,
    world: dict[str, Any],
    ray: FakeRayClient,
    recorded_events: Recorder,
) -> None:
    md = make_merge_patched_resource("ModelDeployment", {**MD_SPEC, "replicas": -1}, name="md")
    with pytest.raises(kopf.PermanentError, match="invalid ModelDeployment spec"):
        reconcile(md, md_memo, world)
    assert recorded_events.reasons == ["InvalidSpec"]
    tick(md, md_memo, world)
    assert recorded_events.reasons == ["InvalidSpec"] and md.status == {} and ray.applications == {}
