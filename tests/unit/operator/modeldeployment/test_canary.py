"""spec.canary in the operator: the canary's gate, what the replicas get, status.canary and its events."""

from __future__ import annotations

from typing import Any

from acgs_operator.api.v1alpha1 import CanaryStatus, ModelDeploymentStatus
from acgs_operator.events import Event
from acgs_operator.modeldeployment import build as mds
from acgs_operator.reasons import Reason
from acgs_workloads.contract import parse_model_args

from .common import SHA, evidence, observation, spec
from .test_build import platform, running

CANARY_SHA = "c" * 64
CANARY = {"model": {"trainingJobRef": {"name": "job-v2"}}, "trafficPercent": 20}


def canary_evidence(**changes: Any) -> mds.ModelEvidence:
    return evidence(**{"uri": "file:///b/model.pt", "sha256": CANARY_SHA, "training_job": "ns/job-v2", **changes})


def settle(md: Any, canary: mds.ModelEvidence) -> tuple[mds.Decision, mds.Decision]:
    """The first reconcile (config put) and the next one, once Serve runs that config."""
    first = mds.decide(observation(md=md, canary=canary), "t1")
    assert first.application is not None
    apps = {"ns-md": running(first.application), mds.PLATFORM_APP: platform()}
    return first, mds.decide(observation(md=md, canary=canary, status=first.status, applications=apps), "t2")


def test_a_canary_that_passes_its_gate_is_loaded_by_the_replicas_and_serves_once_ready() -> None:
    first, second = settle(spec(canary=CANARY), canary_evidence())
    assert first.application is not None
    args = parse_model_args(first.application["args"])
    assert args.canary is not None and (args.canary.model_sha256, args.canary.traffic_percent) == (CANARY_SHA, 20)
    assert args.model_sha256 == SHA, "spec.model stays the primary"
    assert first.status.canary is not None and first.status.canary.phase == "Pending"
    assert first.status.canary.traffic_percent == 0, "no share is reported before Serve runs the config"
    assert second.status.phase == "Ready" and second.status.canary is not None
    assert (second.status.canary.phase, second.status.canary.traffic_percent) == ("Serving", 20)
    assert second.status.canary.model is not None and second.status.canary.model.sha256 == CANARY_SHA
    assert second.status.canary.compliance is not None and second.status.canary.compliance.score == 0.97
    assert Event.normal(Reason.CANARY_SERVING, "canary cccccccccccc answers 20% of the requests") in second.events
    again = mds.decide(observation(md=spec(canary=CANARY), canary=canary_evidence(), status=second.status,
                                   applications={"ns-md": running(first.application), mds.PLATFORM_APP: platform()}),
                       "t3")
    assert again.events == [] and not again.reconfigure


def test_a_canary_below_min_score_is_blocked_and_the_primary_answers_everything() -> None:
    first, second = settle(spec(canary=CANARY), canary_evidence(score=0.5))
    assert first.application is not None and parse_model_args(first.application["args"]).canary is None
    assert second.status.phase == "Ready", "a failed canary never takes the deployment down"
    canary = second.status.canary
    assert canary is not None and (canary.phase, canary.traffic_percent) == ("Blocked", 0)
    assert canary.compliance is not None and canary.compliance.reason == "ComplianceBelowThreshold"
    assert [e.reason for e in first.events if e.reason == Reason.CANARY_BLOCKED] == [Reason.CANARY_BLOCKED]
    assert not [e for e in second.events if e.reason == Reason.CANARY_BLOCKED], "one event, not one per reconcile"


def test_a_canary_of_another_component_is_blocked() -> None:
    decision = mds.decide(observation(md=spec(canary=CANARY), canary=canary_evidence(component="multi-agent")), "t")
    canary = decision.status.canary
    assert canary is not None and canary.phase == "Blocked"
    assert canary.compliance is not None and canary.compliance.reason == "ComponentMismatch"
    assert "multi-agent" in (canary.message or "")


def test_a_canary_still_training_is_pending() -> None:
    unfinished = canary_evidence(complete=False, not_ready="TrainingJob ns/job-v2 is Running")
    canary = mds.decide(observation(md=spec(canary=CANARY), canary=unfinished), "t").status.canary
    assert canary is not None and canary.phase == "Pending" and canary.message == "TrainingJob ns/job-v2 is Running"


def test_a_canary_pinned_to_another_digest_is_blocked() -> None:
    pinned = {"model": {"uri": "file:///b", "sha256": "e" * 64}, "trafficPercent": 10}
    canary = mds.decide(observation(md=spec(canary=pinned), canary=canary_evidence()), "t").status.canary
    assert canary is not None and canary.compliance is not None
    assert canary.compliance.reason == "ArtifactDigestMismatch"


def test_changing_the_share_redeploys_and_removing_the_canary_deletes_its_status() -> None:
    first, second = settle(spec(canary=CANARY), canary_evidence())
    assert first.application is not None
    apps = {"ns-md": running(first.application), mds.PLATFORM_APP: platform()}
    more = mds.decide(observation(md=spec(canary={**CANARY, "trafficPercent": 50}), canary=canary_evidence(),
                                  status=second.status, applications=apps), "t3")
    assert more.reconfigure and more.application is not None
    assert parse_model_args(more.application["args"]).canary is not None
    removed = mds.decide(observation(md=spec(), status=second.status, applications=apps), "t4")
    assert removed.reconfigure and removed.application is not None
    assert parse_model_args(removed.application["args"]).canary is None
    assert mds.status_patch(removed.status)["canary"] is None, "the merge patch deletes status.canary"
    quiet = mds.decide(observation(md=spec(), status=ModelDeploymentStatus()), "t5")
    assert "canary" not in mds.status_patch(quiet.status), "nothing to delete, nothing written"


def test_promoting_the_canary_is_a_rollout_to_its_digest() -> None:
    _, second = settle(spec(canary=CANARY), canary_evidence())
    promoted = spec(model={"trainingJobRef": {"name": "job-v2"}})
    running_primary = mds.decide(observation(md=spec(canary=CANARY), canary=canary_evidence()), "t").application
    assert running_primary is not None
    decision = mds.decide(observation(md=promoted, ev=canary_evidence(), status=second.status,
                                      applications={"ns-md": running(running_primary),
                                                    mds.PLATFORM_APP: platform()}), "t3")
    assert decision.status.rollout is not None
    assert (decision.status.rollout.from_sha256, decision.status.rollout.to_sha256) == (SHA, CANARY_SHA)
    assert decision.status.canary is None


def test_canary_status_validates_against_the_crd_model() -> None:
    _, second = settle(spec(canary=CANARY), canary_evidence())
    wire = second.status.wire()
    assert CanaryStatus.model_validate(wire["canary"]).traffic_percent == 20
