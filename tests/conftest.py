"""Shared fixtures: a real control plane, a real Ray head and the operator, started once per session.

Tiers are marked by directory: tests/unit -> unit, tests/integration -> integration, tests/e2e -> e2e,
tests/reliability -> reliability, tests/cluster -> cluster (a real node: tests/cluster/conftest.py).
Integration fixtures never skip: if the control plane or Ray cannot start, the tests fail with the
reason and the component logs.

``ACGS_TEST_KUBECONFIG`` points the tests at an existing cluster (kind, ...) instead of starting one.
"""

from __future__ import annotations

import contextlib

# torch must be loaded before regopy: the other order aborts the process at `import torch`
# ("double free or corruption", regopy 1.5.2 with torch 2.15). Tests compile Rego long before some
# of them import torch, so load it first, once.
with contextlib.suppress(ImportError):
    import torch  # noqa: F401

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The session's Ray head runs without token auth on loopback; drivers in the tests must not insist on one.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
TIERS = ("unit", "integration", "e2e", "reliability", "cluster")
ACGS_PLURALS = ("modeldeployments.acgs.io", "trainingjobs.acgs.io", "constitutions.acgs.io")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in TIERS and not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The kubeconfig of a real kube-apiserver + etcd with the ACGS CRDs installed."""
    from acgs_operator.devenv.controlplane import ControlPlane
    from acgs_operator.devenv.embedded import install_crds
    from acgs_operator.devenv.kubectl import Kubectl

    existing = os.environ.get("ACGS_TEST_KUBECONFIG")
    if existing:
        install_crds(Kubectl(Path(existing)))
        yield Path(existing)
        return
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"))
    try:
        plane.start()
    except Exception as exc:
        pytest.fail(f"the local control plane did not start: {exc}", pytrace=False)
    try:
        install_crds(Kubectl(plane.kubeconfig))
        yield plane.kubeconfig
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubectl(control_plane: Path):  # type: ignore[no-untyped-def]
    from acgs_operator.devenv.kubectl import Kubectl

    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real local Ray head (``ray start --head``) with its dashboard; yields its state."""
    from acgs_operator.devenv.ray_local import RayHead

    head = RayHead(tmp_path_factory.mktemp("ray"))
    try:
        state = head.start()
    except Exception as exc:
        pytest.fail(f"the local Ray head did not start: {exc}", pytrace=False)
    try:
        yield state
    finally:
        head.stop()


@pytest.fixture(scope="session")
def ray_address(ray_head) -> str:  # type: ignore[no-untyped-def]
    """GCS address of the session's Ray head, for ``ray.init(address=...)``."""
    return str(ray_head.address)


@pytest.fixture(scope="session")
def operator_factory(control_plane: Path, ray_head, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Start (and later stop) operator subprocesses against the session's control plane and Ray head."""
    from acgs_operator.devenv import keys
    from acgs_operator.devenv.embedded import OperatorProcess
    from acgs_operator.devenv.kubectl import Kubectl

    started: list[OperatorProcess] = []
    artifacts = tmp_path_factory.mktemp("artifacts")
    signing_secret = keys.install_signing_key(Kubectl(control_plane))  # every model the tests train is signed

    def start() -> OperatorProcess:
        workdir = tmp_path_factory.mktemp("operator")
        operator = OperatorProcess(
            kubeconfig=control_plane,
            ray_address=ray_head.dashboard_url,
            artifact_root=str(artifacts),
            serve_port=ray_head.serve_port,
            log=workdir / "operator.log",
            extra_env={"ACGS_SIGNING_KEY_SECRET": signing_secret},
        )
        started.append(operator)
        try:
            return operator.start()
        except Exception as exc:
            pytest.fail(f"the operator did not start: {exc}", pytrace=False)

    yield start
    for operator in started:
        operator.stop()


@pytest.fixture(scope="session")
def acgs_operator(operator_factory):  # type: ignore[no-untyped-def]
    """The operator as a subprocess against the session's control plane and Ray head."""
    return operator_factory()


@pytest.fixture
def namespace(kubectl, request: pytest.FixtureRequest) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A namespace of this test's own; its ACGS resources are deleted (finalizers run) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", ",".join(ACGS_PLURALS), "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
        # no namespace controller runs in an envtest-style control plane: the namespace stays Terminating
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
