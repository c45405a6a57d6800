"""ModelDeployment: the gate, Serve config composition and the handlers against the fake Ray client."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec
from acgs_operator.modeldeployment import build as mds
from acgs_operator.modeldeployment import handlers as h
from acgs_operator.rayclient import FakeRayClient, ServeApplication
from acgs_workloads.contract import ConstitutionSnapshot, Principle

HASH = "cdd01ef066bc6cf2"
SHA = "d" * 64
CONSTITUTION = ConstitutionSnapshot(name="default", hash=HASH, principles=[Principle(id="p", rego="package p")])
MD_SPEC: dict[str, Any] = {"model": {"trainingJobRef": {"name": "job"}}, "constitutionRef": {"name": "default"}}


def evidence(**changes: Any) -> mds.ModelEvidence:
    base = dict(
        component="constitutional-ai",
        uri="file:///a/model.pt",
        sha256=SHA,
        constitution_hash=HASH,
        score=0.97,
        training_job="ns/job",
    )
    return mds.ModelEvidence(**{**base, **changes})


def spec(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**MD_SPEC, **changes})


@pytest.mark.parametrize(
    ("constitution", "ev", "md", "passed", "reason"),
    [
        (CONSTITUTION, evidence(), spec(), True, "CompliancePassed"),
        (None, evidence(), spec(), False, "ConstitutionNotReady"),
        (
            CONSTITUTION,
            evidence(complete=False, not_ready="TrainingJob ns/job is Running"),
            spec(),
            False,
            "TrainingNotComplete",
        ),
        (CONSTITUTION, evidence(constitution_hash="0000000000000000"), spec(), False, "ConstitutionChanged"),
        (CONSTITUTION, evidence(score=0.5), spec(), False, "ComplianceBelowThreshold"),
        (CONSTITUTION, evidence(score=0.95), spec(compliance={"minScore": 0.99}), False, "ComplianceBelowThreshold"),
        (
            CONSTITUTION,
            evidence(),
            spec(model={"uri": "file:///a", "sha256": "e" * 64}),
            False,
            "ArtifactDigestMismatch",
        ),
        (CONSTITUTION, evidence(), spec(model={"uri": "file:///a", "sha256": SHA}), True, "CompliancePassed"),
    ],
    ids=["pass", "no-constitution", "training", "hash-changed", "low-score", "min-score", "sha-mismatch", "pinned"],
)
def test_gate(constitution: Any, ev: mds.ModelEvidence, md: ModelDeploymentSpec, passed: bool, reason: str) -> None:
    verdict = mds.gate(md, constitution, "Constitution default not found", ev)
    assert verdict.passed is passed and verdict.reason == reason


def test_constitution_changed_names_the_training_job_to_rerun() -> None:
    verdict = mds.gate(spec(), CONSTITUTION, "", evidence(constitution_hash="0000000000000000"))
    assert "re-run TrainingJob ns/job" in verdict.message and HASH in verdict.message


def test_serve_application_config() -> None:
    app = mds.serve_application(
        namespace="ns",
        name="md",
        spec=spec(autoscaling={"maxReplicas": 3}, batching={"maxBatchSize": 16}, resources={"cpus": 0.5, "gpus": 1}),
        evidence=evidence(),
        constitution=CONSTITUTION,
        api_key_sha256="f" * 64,
    )
    assert app["name"] == "ns-md" and app["route_prefix"] == "/constitutional-ai"
    assert app["import_path"] == "acgs_workloads.serving.app:build_app"
    deployment = app["deployments"][0]
    assert deployment["name"] == "ModelServer" and "num_replicas" not in deployment
    assert deployment["autoscaling_config"]["max_replicas"] == 3
    assert deployment["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 1}
    args = app["args"]
    assert args["modelSha256"] == SHA and args["constitution"]["hash"] == HASH
    assert args["batching"] == {"maxBatchSize": 16, "batchWaitTimeoutMs": 2.0} and args["apiKeySha256"] == "f" * 64


def other(name: str, import_path: str = mds.MODEL_APP_IMPORT) -> ServeApplication:
    return ServeApplication(
        name, "RUNNING", config={"name": name, "route_prefix": f"/{name}", "import_path": import_path}
    )


def test_compose_keeps_every_other_application() -> None:
    current = {
        "ns-a": other("ns-a"),
        "user-app": other("user-app", "my.module:app"),
        "imperative": ServeApplication("imperative", "RUNNING", config=None),
        mds.PLATFORM_APP: other(mds.PLATFORM_APP, mds.PLATFORM_APP_IMPORT),
    }
    desired = {"name": "ns-b", "route_prefix": "/b", "import_path": mds.MODEL_APP_IMPORT}
    names = [a["name"] for a in mds.compose(current, "ns-b", desired)]
    assert names == ["ns-a", "user-app", "ns-b", mds.PLATFORM_APP]
    names = [a["name"] for a in mds.compose(current, "ns-a", None)]
    assert names == ["user-app"], "the platform app goes away with the last model app"
    names = [a["name"] for a in mds.compose(current, "ns-a", None, keep_platform=True)]
    assert names == ["user-app", mds.PLATFORM_APP], "a withdrawn route answers 404 from a running proxy"


def test_serving_status_maps_the_serve_state() -> None:
    verdict = mds.gate(spec(), CONSTITUTION, "", evidence())
    running = ServeApplication("ns-md", "RUNNING", replicas_running=1, replicas_target=1)
    status = mds.serving_status(running, verdict, evidence(), spec(), 1, None, "t", "http://127.0.0.1:8000")
    assert status["phase"] == "Ready" and status["url"] == "http://127.0.0.1:8000/constitutional-ai"
    assert status["routes"][0] == "/constitutional-ai/predict" and status["replicas"] == {"desired": 1, "ready": 1}
    failed = ServeApplication("ns-md", "DEPLOY_FAILED", message="artifact x has sha256 1, expected 2")
    status = mds.serving_status(failed, verdict, evidence(), spec(), 1, None, "t", "u")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Failed" and ready["reason"] == "ArtifactDigestMismatch"


# ----------------------------------------------------------------------------- handlers


def tj_entry(hash_: str = HASH, score: float = 0.97, complete: bool = True) -> dict[str, Any]:
    return {
        "spec": {"component": "constitutional-ai"},
        "status": {
            "observedGeneration": 1,
            "phase": "Succeeded" if complete else "Running",
            "conditions": [{"type": "Complete", "status": "True" if complete else "False"}],
            "model": {"uri": "file:///a/model.pt", "sha256": SHA, "sizeBytes": 1},
            "compliance": {"constitutionHash": hash_, "score": score},
        },
        "generation": 1,
    }


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


def reconcile(resource: Any, memo: kopf.Memo, world: dict[str, Any]) -> None:
    async def go() -> None:
        memo.serve_lock = asyncio.Lock()
        await h.reconcile_model_deployment(memo=memo, **world, **resource.kwargs())

    try:
        asyncio.run(go())
    finally:
        resource.apply_patch()


def test_deploys_then_ready(make_resource, md_memo, world, ray: FakeRayClient, recorded_events) -> None:  # type: ignore[no-untyped-def]
    md = make_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    assert set(ray.applications) == {"ns-md", mds.PLATFORM_APP}
    assert md.status["phase"] == "Deploying" and md.condition("CompliancePassed")["status"] == "True"
    ray.set_app_status("ns-md", "RUNNING")
    reconcile(md, md_memo, world)
    assert md.status["phase"] == "Ready" and md.status["url"].endswith("/constitutional-ai")
    puts = ray.serve_puts
    reconcile(md, md_memo, world)
    assert ray.serve_puts == puts, "an unchanged deployment must not rewrite the Serve config"
    assert "Ready" in recorded_events.reasons


def test_constitution_change_withdraws_the_route(make_resource, md_memo, world, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    md = make_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    ray.set_app_status("ns-md", "RUNNING")
    reconcile(md, md_memo, world)
    entry = world["constitutions_by_name"][("ns", "default")][0]
    world["constitutions_by_name"].add(("ns", "default"), {**entry, "status": {**entry["status"], "hash": "1" * 16}})
    reconcile(md, md_memo, world)
    assert "ns-md" not in ray.applications and md.status["phase"] == "Blocked"
    assert md.condition("CompliancePassed")["reason"] == "ConstitutionChanged"
    assert any("re-run TrainingJob ns/job" in m for _, _, m in recorded_events.items)
    assert md.status.get("url") is None


def test_two_deployments_coexist_and_delete_removes_only_one(
    make_resource, md_memo, world, ray, recorded_events
) -> None:  # type: ignore[no-untyped-def]
    a = make_resource("ModelDeployment", MD_SPEC, name="a")
    b = make_resource("ModelDeployment", {**MD_SPEC, "routePrefix": "/second"}, name="b")
    reconcile(a, md_memo, world)
    reconcile(b, md_memo, world)
    assert set(ray.applications) == {"ns-a", "ns-b", mds.PLATFORM_APP}
    asyncio.run(_delete(a, md_memo))
    assert set(ray.applications) == {"ns-b", mds.PLATFORM_APP}
    asyncio.run(_delete(b, md_memo))
    assert ray.applications == {}


async def _delete(resource: Any, memo: kopf.Memo) -> None:
    memo.serve_lock = asyncio.Lock()
    await h.remove_model_deployment(memo=memo, **resource.kwargs())


def test_min_score_blocks_with_reason(make_resource, md_memo, world, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    md = make_resource("ModelDeployment", {**MD_SPEC, "compliance": {"minScore": 0.99}}, name="md")
    reconcile(md, md_memo, world)
    assert ray.applications == {} and md.status["phase"] == "Blocked"
    assert md.status["compliance"]["reason"] == "ComplianceBelowThreshold"
    assert ("Warning", "ComplianceBelowThreshold") in [(t, r) for t, r, _ in recorded_events.items]


def test_training_not_complete_blocks(make_resource, md_memo, world, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    world["trainingjobs_by_name"].add(("ns", "job"), tj_entry(complete=False))
    md = make_resource("ModelDeployment", MD_SPEC, name="md")
    reconcile(md, md_memo, world)
    assert md.status["phase"] == "Blocked" and md.condition("CompliancePassed")["reason"] == "TrainingNotComplete"


def test_ray_unavailable_is_a_temporary_error(make_resource, md_memo, world, ray, recorded_events) -> None:  # type: ignore[no-untyped-def]
    ray.unavailable = True
    md = make_resource("ModelDeployment", MD_SPEC, name="md")
    with pytest.raises(kopf.TemporaryError):
        reconcile(md, md_memo, world)
    assert md.condition("Ready")["reason"] == "RayUnavailable"
