"""Resource status -> stage row (pure), and the stage clock."""

from __future__ import annotations

from typing import Any

from acgs_operator.pipeline.stages import (
    Stage,
    Stages,
    State,
    View,
    constitution_view,
    deployment_view,
    training_view,
)


def obj(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": {"observedGeneration": generation, **status}}


def compliance(score: float, threshold: float = 0.9) -> dict[str, Any]:
    """status.compliance as the TrainingJob handlers write it."""
    return {"constitutionHash": "cdd01ef066bc6cf2", "score": score, "threshold": threshold,
            "passed": score >= threshold, "evaluatedExamples": 200, "violations": []}


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_training_view_follows_the_phases() -> None:
    assert training_view(None) == View(State.PENDING, "not created")
    stale = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "phase": "Succeeded"}}
    assert training_view(stale).state is State.PENDING
    running = training_view(obj({"phase": "Running", "progress": {"epoch": 2, "totalEpochs": 3, "step": 40,
                                                                 "percent": 55.5, "loss": 0.41234}}))
    assert running == View(State.RUNNING, "Running: epoch 2/3, step 40, loss 0.4123", 55.5)
    done = training_view(obj({"phase": "Succeeded", "metrics": {"accuracy": 0.9},
                              "compliance": compliance(0.95), "conditions": [cond("Compliant", "True")]}))
    assert done.state is State.DONE and "accuracy 0.9000, compliance 0.9500" in done.detail
    gate = training_view(obj({"phase": "Succeeded", "compliance": compliance(0.8),
                              "conditions": [cond("Compliant", "False", message="compliance 0.8 < 0.9")]}))
    assert gate.state is State.FAILED and "gate failed: compliance 0.8 < 0.9" in gate.detail
    failed = training_view(obj({"phase": "Failed",
                                "conditions": [cond("Failed", "True", "RayJobFailed", "boom\nlog tail")]}))
    assert failed == View(State.FAILED, "RayJobFailed: boom")
    pending = training_view(obj({"phase": "Pending", "conditions": [cond("Submitted", "False", message="no Ray")]}))
    assert pending == View(State.PENDING, "no Ray")


def test_deployment_view() -> None:
    assert deployment_view(obj({"phase": "Ready", "url": "http://h:1/x"})) == View(
        State.DONE, "Ready at http://h:1/x", 100.0)
    blocked = deployment_view(obj({"phase": "Blocked", "conditions": [
        cond("CompliancePassed", "False", "ComplianceBelowThreshold", "0.8 < 0.9")]}))
    assert blocked == View(State.FAILED, "Blocked (ComplianceBelowThreshold): 0.8 < 0.9")
    deploying = deployment_view(obj({"phase": "Deploying", "replicas": {"desired": 1, "ready": 0}}))
    assert deploying == View(State.RUNNING, "Deploying: 0/1 replicas ready")
    failed = deployment_view(obj({"phase": "Failed", "conditions": [
        cond("CompliancePassed", "True", "CompliancePassed", "ok"),
        cond("Ready", "False", "DeployFailed", "Serve application DEPLOY_FAILED: boom\ntraceback")]}))
    assert failed == View(State.FAILED, "Failed (DeployFailed): Serve application DEPLOY_FAILED: boom")
    stale = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "phase": "Ready", "url": "u"}}
    assert deployment_view(stale) == View(State.PENDING, "Ready")
    assert deployment_view(None) == View(State.PENDING, "not created")
    assert deployment_view(obj({})) == View(State.RUNNING, "Pending")


def test_constitution_view() -> None:
    assert constitution_view(obj({"hash": "ab", "conditions": [cond("Valid", "True")]})).state is State.DONE
    assert constitution_view(obj({"conditions": [cond("Valid", "False", message="bad")]})) == View(
        State.FAILED, "not Valid: bad")
    assert constitution_view(obj({})).state is State.RUNNING


def test_stage_clock_and_rows() -> None:
    stage = Stage("k", "title")
    assert stage.update(View(State.RUNNING, "a", 10.0), now=100.0)
    assert not stage.update(View(State.RUNNING, "b"), now=101.0)
    assert stage.percent == 10.0 and stage.detail == "b"
    assert stage.update(View(State.DONE, "ok"), now=112.5)
    assert stage.seconds == 12.5
    assert stage.row() == {"stage": "title", "key": "k", "state": "done", "detail": "ok", "seconds": 12.5}
    stages = Stages()
    stages.add("a", "A").update(View(State.FAILED, "x"), now=1.0)
    stages.add("b", "B")
    assert [s.key for s in stages.failed()] == ["a"]
    assert [r["state"] for r in stages.rows()] == ["failed", "pending"]
