"""Building the control plane from Go modules: pure parts (no Go run here)."""

import os
from pathlib import Path

import pytest

from acgs_operator.devenv import binaries

GOMOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-2025
)

replace k8s.io/cri-api => ./staging/src/k8s.io/cri-api
"""


def test_staging_replacements_come_from_the_downloaded_gomod() -> None:
    assert binaries.staging_replacements(GOMOD, "v0.36.3") == {
        "k8s.io/api": "v0.36.3",
        "k8s.io/client-go": "v0.36.3",
        "k8s.io/cri-api": "v0.36.3",
    }


def test_recipes_cover_the_control_plane_and_pin_versions() -> None:
    by_group = {g: {b for r in binaries.RECIPES if r.group == g for b in r.binaries} for g in ("dev", "cluster")}
    assert by_group["dev"] == {"etcd", "kube-apiserver", "kubectl", "helm", "kind", "vegeta"}
    assert by_group["cluster"] == {
        "kubelet", "kube-scheduler", "kube-controller-manager", "kube-proxy", "coredns", "kuberay-operator"
    }
    assert set(binaries.ALL_BINARIES) == by_group["dev"] | by_group["cluster"]
    node = next(r for r in binaries.RECIPES if r.name == "kubernetes-node")
    assert (node.module, node.version) == ("k8s.io/kubernetes", binaries.KUBERNETES_VERSION)  # one build cache
    k8s = next(r for r in binaries.RECIPES if r.name == "kubernetes")
    assert k8s.staging_version == "v0." + k8s.version.lstrip("v").split(".", 1)[1]
    assert binaries.ETCD_VERSION.startswith("v3.6.")
    assert 34 <= int(binaries.KUBERNETES_VERSION.split(".")[1]) <= 37


def test_make_setup_builds_only_the_dev_group_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    monkeypatch.setattr(binaries, "_provided_elsewhere", lambda recipe: False)
    monkeypatch.setattr(binaries, "build", lambda recipe, force=False: built.append(recipe.name) or 0.0)
    monkeypatch.setattr(binaries, "version_of", lambda name: "v")
    binaries.ensure_all()
    assert "kubernetes-node" not in built and "kubernetes" in built
    built.clear()
    binaries.ensure_all(groups=("dev", "cluster"))
    assert {"kubernetes-node", "coredns", "kuberay"} <= set(built)


def test_digest_changes_with_the_recipe() -> None:
    r = binaries.RECIPES[0]
    assert r.digest() == binaries.Recipe(**{**r.__dict__}).digest()
    assert r.digest() != binaries.Recipe(**{**r.__dict__, "version": "v0.0.1"}).digest()


def test_override_then_cache_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACGS_CACHE", str(tmp_path / "cache"))
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "kind").write_text("#!/bin/sh\n")
    (on_path / "kind").chmod(0o755)
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ACGS_KIND", raising=False)
    assert binaries.find_binary("kind") == on_path / "kind"
    cached = tmp_path / "cache" / "bin" / "kind"
    cached.parent.mkdir(parents=True)
    cached.write_text("")
    assert binaries.find_binary("kind") == cached
    override = tmp_path / "mine"
    override.write_text("")
    monkeypatch.setenv("ACGS_KIND", str(override))
    assert binaries.find_binary("kind") == override
    monkeypatch.setenv("ACGS_KIND", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="ACGS_KIND"):
        binaries.require_binary("kind")
