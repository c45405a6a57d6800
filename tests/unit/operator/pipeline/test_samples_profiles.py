"""The sample manifests and the profiles that scale them (pure)."""

from __future__ import annotations

import copy

import pytest

from acgs_operator.pipeline import profiles, samples
from acgs_workloads.contract import COMPONENTS


@pytest.fixture(scope="module")
def loaded() -> samples.Samples:
    return samples.load()


def test_samples_cover_every_component_and_the_served_three(loaded: samples.Samples) -> None:
    assert [samples.component_of(j) for j in loaded.training_jobs] == list(COMPONENTS)
    assert all(j["spec"]["constitutionRef"]["name"] == "default" for j in loaded.training_jobs)
    assert loaded.constitution["kind"] == "Constitution" and loaded.constitution["metadata"]["name"] == "default"
    served = sorted(samples.deployment_component(m, loaded.training_jobs) for m in loaded.deployments)
    assert served == sorted(samples.SERVED)
    # the documented routes: /constitutional-ai, /policy-governance, /multi-agent
    assert sorted(samples.route_prefix(m, loaded.training_jobs) for m in loaded.deployments) == [
        "/constitutional-ai", "/multi-agent", "/policy-governance"]


def test_split_refuses_a_dangling_training_job_reference() -> None:
    docs = [{"kind": "Constitution", "metadata": {"name": "c"}},
            {"kind": "ModelDeployment", "metadata": {"name": "m"},
             "spec": {"model": {"trainingJobRef": {"name": "missing"}}}}]
    with pytest.raises(ValueError, match="missing"):
        samples.split(docs)
    with pytest.raises(ValueError, match="exactly one Constitution"):
        samples.split(docs[1:])


def test_small_profile_scales_without_touching_the_input(loaded: samples.Samples) -> None:
    before = copy.deepcopy(loaded)
    small = profiles.apply_profile(loaded, "small")
    assert loaded == before
    for job in small.training_jobs:
        scale = profiles.PROFILES["small"][samples.component_of(job)]
        assert job["spec"]["dataset"] == {"generator": {**job["spec"]["dataset"]["generator"],
                                                        "examples": scale.examples}}
        assert job["spec"]["training"]["epochs"] == scale.epochs
        assert job["spec"]["faultTolerance"]["checkpointEvery"] <= scale.epochs
    for job, sample in zip(small.training_jobs, loaded.training_jobs, strict=True):
        assert job["spec"].get("evaluation") == sample["spec"].get("evaluation")  # no profile lowers a gate
        gates = (sample["spec"].get("evaluation") or {}).get("gates") or {}
        assert gates.get("minCompliance", 0.9) >= 0.9, samples.component_of(sample)
    assert small.deployments == loaded.deployments
    assert profiles.apply_profile(loaded, "full") == loaded


def test_scale_job_replaces_a_uri_dataset_and_caps_checkpoints() -> None:
    job = {"kind": "TrainingJob", "metadata": {"name": "x"},
           "spec": {"component": "wina-optimization", "dataset": {"uri": "/data/x.jsonl"},
                    "faultTolerance": {"checkpointEvery": 5}}}
    out = profiles.scale_job(job, profiles.Scale(examples=100, epochs=2))
    assert "evaluation" not in out["spec"]
    assert out["spec"]["dataset"] == {"generator": {"examples": 100}}
    assert out["spec"]["training"] == {"epochs": 2}
    assert out["spec"]["faultTolerance"] == {"checkpointEvery": 2}
    assert job["spec"]["dataset"] == {"uri": "/data/x.jsonl"}


def test_unknown_profile_and_component(loaded: samples.Samples) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.apply_profile(loaded, "huge")
    with pytest.raises(ValueError, match="no sample TrainingJob"):
        profiles.select(loaded, ["nope"])


def test_select_keeps_the_deployments_of_the_chosen_components(loaded: samples.Samples) -> None:
    only = profiles.select(loaded, ["constitutional-ai", "wina-optimization"])
    assert [samples.component_of(j) for j in only.training_jobs] == ["constitutional-ai", "wina-optimization"]
    assert [m["metadata"]["name"] for m in only.deployments] == ["constitutional-ai"]
    assert profiles.select(loaded, None) is loaded
