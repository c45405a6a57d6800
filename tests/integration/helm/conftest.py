"""Fixtures for the chart's tests: the real helm binary bound to the session's API server."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from acgs_operator.devenv.binaries import require_binary
from acgs_operator.devenv.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "acgs"
THIRD_PARTY_CRDS = Path(__file__).with_name("third_party_crds.yaml")


@dataclass(frozen=True)
class Helm:
    kubeconfig: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(require_binary("helm")), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def template(self, namespace: str, *sets: str, release: str = "acgs") -> str:
        args = ["template", release, str(CHART), "--namespace", namespace]
        for value in sets:
            args += ["--set", value]
        return self.run(*args).stdout


@pytest.fixture(scope="session")
def helm(control_plane: Path) -> Helm:
    return Helm(control_plane)


@pytest.fixture
def release() -> str:
    """A release name of this test's own (cluster-scoped RBAC objects are named after it)."""
    return f"acgs-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def third_party_crds(kubectl: Kubectl) -> Iterator[None]:
    """Schema-less RayCluster and ServiceMonitor CRDs for the dry runs of the optional parts; removed after."""
    kubectl.run("apply", "-f", str(THIRD_PARTY_CRDS))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(THIRD_PARTY_CRDS))
    try:
        yield
    finally:
        kubectl.run("delete", "-f", str(THIRD_PARTY_CRDS), "--wait=false", check=False)
