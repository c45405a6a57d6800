"""values-node.yaml fits the single-node cluster of `acgs dev cluster up`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from acgs_operator.devenv.cluster import ARTIFACT_DIR

pytestmark = pytest.mark.unit

VALUES = yaml.safe_load((Path(__file__).resolve().parents[3] / "helm" / "acgs" / "values-node.yaml").read_text())


def test_every_pod_mounts_the_artifact_directory_the_dev_cluster_creates() -> None:
    root = VALUES["operator"]["artifactRoot"]
    assert root == str(ARTIFACT_DIR)
    for part in (VALUES["operator"], VALUES["rayCluster"]):
        assert {v["hostPath"]["path"] for v in part["volumes"]} == {root}
        mounts = part["volumeMounts"]
        assert {m["mountPath"] for m in mounts} == {root}
        assert not any(m.get("readOnly") for m in mounts)  # the operator signs into the model directory


def test_nothing_is_pulled_and_the_pods_fit_two_cores() -> None:
    assert VALUES["operator"]["image"]["pullPolicy"] == "IfNotPresent"
    assert VALUES["rayCluster"]["image"]["pullPolicy"] == "IfNotPresent"
    ray = VALUES["rayCluster"]
    millis = [VALUES["operator"]["resources"]["requests"]["cpu"], ray["head"]["resources"]["requests"]["cpu"],
              ray["cpuWorkers"]["resources"]["requests"]["cpu"]]
    total = sum(int(c[:-1]) if c.endswith("m") else int(float(c) * 1000) for c in millis)
    assert total <= 1500, total  # CoreDNS and KubeRay need the rest of the node's 2,000m
