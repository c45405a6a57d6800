"""ModelDeployment as pure functions: the gate, the evidence, the Serve config, the status and decide()."""

from __future__ import annotations

from typing import Any

import pytest

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus
from acgs_operator.conditions import find
from acgs_operator.events import Event
from acgs_operator.modeldeployment import build as mds
from acgs_operator.rayclient import ServeApplication
from acgs_operator.reasons import Reason
from tests.unit.operator.conftest import merge_patch
from tests.unit.operator.modeldeployment.common import (
    BASE_URL,
    CONSTITUTION,
    HASH,
    SHA,
    evidence,
    observation,
    spec,
    tj_entry,
)


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


# ----------------------------------------------------------------------------- evidence


def test_evidence_from_a_complete_training_job() -> None:
    ev = mds.evidence_from_training_job(tj_entry(score=0.93), "ns", "job")
    assert ev.complete and ev.not_ready == "" and ev.training_job == "ns/job"
    assert (ev.component, ev.uri, ev.sha256) == ("constitutional-ai", "file:///a/model.pt", SHA)
    assert (ev.constitution_hash, ev.score) == (HASH, 0.93)


def test_evidence_from_an_unfinished_stale_or_missing_training_job() -> None:
    running = mds.evidence_from_training_job(tj_entry(complete=False), "ns", "job")
    assert not running.complete and running.not_ready == "TrainingJob ns/job is Running"
    stale = mds.evidence_from_training_job(tj_entry(generation=2), "ns", "job")
    assert not stale.complete and stale.not_ready == "TrainingJob ns/job is Succeeded"
    missing = mds.evidence_from_training_job(None, "ns", "job")
    assert not missing.complete and missing.not_ready == "TrainingJob ns/job not found"
    fresh = mds.evidence_from_training_job({**tj_entry(), "status": {}}, "ns", "job")
    assert not fresh.complete and fresh.not_ready == "TrainingJob ns/job is Pending" and fresh.uri is None


def test_evidence_from_an_unreadable_training_job_status() -> None:
    entry = tj_entry()
    entry["status"]["model"] = {"uri": "file:///a/model.pt", "sha256": "not-a-digest", "sizeBytes": 1}
    ev = mds.evidence_from_training_job(entry, "ns", "job")
    assert not ev.complete and ev.not_ready.startswith("TrainingJob ns/job cannot be read")


# ----------------------------------------------------------------------------- the Serve config


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


def test_serve_application_sheds_load_with_the_default_queue() -> None:
    app = mds.serve_application(namespace="ns", name="md", spec=spec(), evidence=evidence(), constitution=CONSTITUTION)
    deployment = app["deployments"][0]
    assert (deployment["max_ongoing_requests"], deployment["max_queued_requests"]) == (16, 64)  # bounded, never -1
    assert deployment["backpressure_config"] == {"status_code": 503, "retry_after_s": 1.0}
    assert app["args"]["queue"] == {"maxOngoingRequests": 16, "maxQueuedRequests": 64, "retryAfterSeconds": 1}


def test_serve_application_passes_spec_queue_to_serve_and_to_the_replica() -> None:
    queue = {"maxOngoingRequests": 4, "maxQueuedRequests": 8, "retryAfterSeconds": 3}
    app = mds.serve_application(namespace="ns", name="md", spec=spec(queue=queue, batching={"maxBatchSize": 4}),
                                evidence=evidence(), constitution=CONSTITUTION)
    deployment = app["deployments"][0]
    assert (deployment["max_ongoing_requests"], deployment["max_queued_requests"]) == (4, 8)
    assert deployment["backpressure_config"] == {"status_code": 503, "retry_after_s": 3.0}
    assert app["args"]["queue"] == queue


def test_the_serve_deployment_options_are_valid_for_ray_serve() -> None:
    schema = pytest.importorskip("ray.serve.schema")
    app = mds.serve_application(namespace="ns", name="md", spec=spec(queue={"maxQueuedRequests": 5}),
                                evidence=evidence(), constitution=CONSTITUTION)
    parsed = schema.ServeApplicationSchema.model_validate(app)
    options = parsed.deployments[0]
    assert (options.max_ongoing_requests, options.max_queued_requests) == (16, 5)
    assert (options.backpressure_config.status_code, options.backpressure_config.retry_after_s) == (503, 1.0)


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


# ----------------------------------------------------------------------------- status


def test_serving_status_maps_the_serve_state() -> None:
    verdict = mds.gate(spec(), CONSTITUTION, "", evidence())
    running = ServeApplication("ns-md", "RUNNING", replicas_running=1, replicas_target=1)
    status = mds.serving_status(running, verdict, evidence(), spec(), 1, None, "t", BASE_URL)
    assert status.phase == "Ready" and status.url == "http://127.0.0.1:8000/constitutional-ai"
    assert status.routes[0] == "/constitutional-ai/predict"
    assert status.replicas is not None and (status.replicas.desired, status.replicas.ready) == (1, 1)
    failed = ServeApplication("ns-md", "DEPLOY_FAILED", message="artifact x has sha256 1, expected 2")
    status = mds.serving_status(failed, verdict, evidence(), spec(), 1, None, "t", "u")
    ready = find(status.conditions, "Ready")
    assert status.phase == "Failed" and ready is not None and ready.reason == "ArtifactDigestMismatch"
    unhealthy = ServeApplication("ns-md", "UNHEALTHY", message="replica died")
    status = mds.serving_status(unhealthy, verdict, evidence(), spec(replicas=3), 1, None, "t", "u")
    ready = find(status.conditions, "Ready")
    assert status.phase == "Failed" and ready is not None and ready.reason == "DeployFailed"
    assert status.replicas is not None and (status.replicas.desired, status.replicas.ready) == (3, 0)
    assert status.url is None and status.routes == []


def test_status_patch_names_every_field_a_builder_sets_and_deletes_the_cleared_ones() -> None:
    verdict = mds.gate(spec(), CONSTITUTION, "", evidence(constitution_hash="1" * 16))
    blocked = mds.blocked_status(verdict, evidence(uri=None, sha256=None), 2, None, "t", 0.9)
    patch = mds.status_patch(blocked)
    assert set(patch) == {
        "phase",
        "observedGeneration",
        "conditions",
        "url",
        "routes",
        "model",
        "compliance",
        "replicas",
    }
    assert patch["url"] is None and patch["routes"] == [] and patch["replicas"] == {"desired": 0, "ready": 0}
    assert patch["model"] == {"uri": None, "sha256": None, "trainingJob": "ns/job", "lineage": None}
    assert patch["compliance"] == {
        "constitutionHash": "1" * 16,
        "score": 0.97,
        "gate": 0.9,
        "reason": "ConstitutionChanged",
    }
    assert all(None not in c.values() for c in patch["conditions"]), "a condition is replaced whole, no nulls"
    ready = {
        "phase": "Ready",
        "url": "http://h/x",
        "routes": ["/x/predict"],
        "model": {"uri": "file:///old", "sha256": "0" * 64, "trainingJob": "ns/job"},
        "compliance": {"constitutionHash": HASH, "score": 0.97, "gate": 0.9, "reason": "CompliancePassed"},
        "replicas": {"desired": 1, "ready": 1},
        "extra": "kept",
    }
    after = merge_patch(ready, patch)
    assert after == {**blocked.wire(), "extra": "kept"}, "what ends up in status is the model, nothing stale"
    assert "url" not in after and "uri" not in after["model"]


def test_unavailable_status_changes_only_the_ready_condition_and_the_generation() -> None:
    verdict = mds.gate(spec(), CONSTITUTION, "", evidence())
    running = ServeApplication("ns-md", "RUNNING", replicas_running=1, replicas_target=1)
    current = mds.serving_status(running, verdict, evidence(), spec(), 1, None, "t0", BASE_URL)
    status = mds.unavailable_status(current, Reason.RAY_UNAVAILABLE, "connection refused", 2, "t1")
    patch = mds.status_patch(status)
    assert set(patch) == {"conditions", "observedGeneration"} and patch["observedGeneration"] == 2
    after = merge_patch(current.wire(), patch)
    assert after["phase"] == "Ready" and after["url"] == current.url
    ready = find(ModelDeploymentStatus.model_validate(after).conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason, ready.message) == (
        "False",
        "RayUnavailable",
        "connection refused",
    )
    passed = find(ModelDeploymentStatus.model_validate(after).conditions, "CompliancePassed")
    assert passed is not None and passed.last_transition_time == "t0", "other conditions are kept"


# ----------------------------------------------------------------------------- decide


def running(app: dict[str, Any], replicas: int = 1) -> ServeApplication:
    return ServeApplication(
        app["name"],
        "RUNNING",
        route_prefix=app["route_prefix"],
        config=app,
        replicas_running=replicas,
        replicas_target=replicas,
    )


def platform() -> ServeApplication:
    return ServeApplication(mds.PLATFORM_APP, "RUNNING", config=mds.platform_application())


def test_decide_deploys_a_new_deployment() -> None:
    decision = mds.decide(observation(), "t")
    assert decision.reconfigure and decision.application is not None and decision.application["name"] == "ns-md"
    assert decision.status.phase == "Deploying" and decision.outage is None and not decision.became_ready
    ready = find(decision.status.conditions, "Ready")
    assert ready is not None and (ready.reason, ready.message) == ("Deploying", "Serve application DEPLOYING")
    assert decision.events == [Event.normal(Reason.DEPLOYING, "Serve application ns-md configured")]


def test_decide_follows_a_deployed_application_to_ready_without_reconfiguring() -> None:
    desired = mds.decide(observation(), "t").application
    assert desired is not None
    before = mds.decide(observation(), "t").status
    apps = {"ns-md": running(desired), mds.PLATFORM_APP: platform()}
    decision = mds.decide(observation(status=before, applications=apps), "t2")
    assert not decision.reconfigure and decision.status.phase == "Ready" and decision.became_ready
    assert decision.status.url == f"{BASE_URL}/constitutional-ai"
    assert decision.events == [Event.normal(Reason.READY, f"serving at {BASE_URL}/constitutional-ai")]
    again = mds.decide(observation(status=decision.status, applications=apps), "t3")
    assert again.events == [] and not again.became_ready and not again.reconfigure
    passed = find(again.status.conditions, "CompliancePassed")
    assert passed is not None and passed.last_transition_time == "t", "no transition, no new timestamp"


def test_decide_puts_the_platform_back_when_it_is_missing() -> None:
    desired = mds.decide(observation(), "t").application
    assert desired is not None
    decision = mds.decide(observation(applications={"ns-md": running(desired)}), "t")
    assert decision.reconfigure and decision.status.phase == "Ready", "the model app itself is not redeployed"


def test_decide_redeploys_a_changed_application() -> None:
    old = mds.decide(observation(), "t").application
    assert old is not None
    decision = mds.decide(observation(md=spec(replicas=2), applications={"ns-md": running(old)}), "t")
    assert decision.reconfigure and decision.status.phase == "Deploying"
    assert decision.status.replicas is not None and decision.status.replicas.desired == 2


@pytest.mark.parametrize(
    ("obs", "reason"),
    [
        (observation(constitution=None), "ConstitutionNotReady"),
        (observation(ev=evidence(complete=False, not_ready="TrainingJob ns/job is Running")), "TrainingNotComplete"),
        (observation(ev=evidence(constitution_hash="1" * 16)), "ConstitutionChanged"),
        (observation(ev=evidence(score=0.5)), "ComplianceBelowThreshold"),
        (observation(md=spec(model={"uri": "file:///a", "sha256": "e" * 64})), "ArtifactDigestMismatch"),
        (observation(ev=evidence(uri=None)), "TrainingNotComplete"),
    ],
    ids=["no-constitution", "training", "hash-changed", "low-score", "sha-mismatch", "no-artifact"],
)
def test_decide_blocks_with_the_reason(obs: mds.Observation, reason: str) -> None:
    decision = mds.decide(obs, "t")
    status = decision.status
    assert status.phase == "Blocked" and decision.application is None and not decision.reconfigure
    assert status.compliance is not None and status.compliance.reason == reason
    for type_ in ("CompliancePassed", "Ready"):
        cond = find(status.conditions, type_)
        assert cond is not None and cond.status == "False" and cond.reason == reason
    assert status.url is None and status.routes == [] and status.replicas is not None
    assert (status.replicas.desired, status.replicas.ready) == (0, 0)
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", reason)]


def test_decide_withdraws_a_served_deployment() -> None:
    desired = mds.decide(observation(), "t").application
    assert desired is not None
    apps = {"ns-md": running(desired), mds.PLATFORM_APP: platform()}
    ready = mds.decide(observation(applications=apps), "t").status
    decision = mds.decide(observation(status=ready, applications=apps, ev=evidence(constitution_hash="1" * 16)), "t")
    assert decision.reconfigure and decision.application is None and decision.status.phase == "Blocked"
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "ConstitutionChanged")] * 2
    assert decision.events[0].message.startswith("Serve application withdrawn: ")
    assert "re-run TrainingJob ns/job" in decision.events[1].message


def test_decide_reports_a_failed_application_once() -> None:
    desired = mds.decide(observation(), "t").application
    assert desired is not None
    failed = ServeApplication("ns-md", "DEPLOY_FAILED", message="boom", config=desired)
    decision = mds.decide(observation(applications={"ns-md": failed, mds.PLATFORM_APP: platform()}), "t")
    assert decision.status.phase == "Failed" and not decision.reconfigure
    assert decision.events == [Event.warning(Reason.DEPLOY_FAILED, "Serve application DEPLOY_FAILED: boom")]
    again = mds.decide(
        observation(status=decision.status, applications={"ns-md": failed, mds.PLATFORM_APP: platform()}), "t"
    )
    assert again.events == []


def test_decide_ray_unavailable_is_an_outage() -> None:
    decision = mds.decide(observation(ray_error="connection refused"), "t")
    assert decision.outage == mds.Outage(Reason.RAY_UNAVAILABLE, "connection refused")
    assert not decision.reconfigure and mds.status_patch(decision.status).keys() == {"conditions", "observedGeneration"}
    assert decision.events == [Event.warning(Reason.RAY_UNAVAILABLE, "connection refused")]


def test_decide_secret_unavailable_only_matters_for_a_model_that_passed() -> None:
    key = mds.ApiKey(error="Secret ns/key cannot be read: Not Found")
    decision = mds.decide(observation(api_key=key, ray_error="down as well"), "t")
    assert decision.outage is not None and decision.outage.reason == Reason.SECRET_UNAVAILABLE
    ready = find(decision.status.conditions, "Ready")
    assert ready is not None and ready.reason == "SecretUnavailable"
    blocked = mds.decide(observation(api_key=key, ev=evidence(score=0.1)), "t")
    assert blocked.outage is None and blocked.status.phase == "Blocked"


def test_decide_puts_the_api_key_digest_into_the_application() -> None:
    decision = mds.decide(observation(api_key=mds.ApiKey(sha256="a" * 64)), "t")
    assert decision.application is not None and decision.application["args"]["apiKeySha256"] == "a" * 64
