"""The envtest-style control plane: real kube-apiserver + etcd, RBAC on, kubectl works, failures explain."""

import json
import os
import socket
from pathlib import Path

import pytest

from acgs_operator.devenv.controlplane import ControlPlane
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import ServiceError


def test_kubectl_talks_to_a_real_api_server(kubectl: Kubectl) -> None:
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.3")
    namespaces = kubectl.get_json("namespaces")
    assert {"default", "kube-system"} <= {n["metadata"]["name"] for n in namespaces["items"]}


def test_rbac_is_enforced(kubectl: Kubectl) -> None:
    nobody = "--as=system:serviceaccount:default:nobody"
    assert kubectl.run("auth", "can-i", "list", "secrets", nobody, check=False).stdout.strip() == "no"
    assert kubectl.run("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_crds_are_established_with_short_names(kubectl: Kubectl) -> None:
    resources = kubectl.run("api-resources", "--api-group=acgs.io", "-o", "wide").stdout
    for short, kind in (("tj", "TrainingJob"), ("md", "ModelDeployment"), ("cst", "Constitution")):
        assert short in resources and kind in resources


def test_kubectl_explain_prints_field_docs(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "trainingjob.spec.training").stdout
    assert "DESCRIPTION:\n    Optimisation settings." in out
    for field in ("epochs", "batchSize", "learningRate", "mixedPrecision", "gradientAccumulationSteps"):
        assert field in out
    assert "Passes over the training split" in kubectl.run("explain", "trainingjob.spec.training.epochs").stdout


def test_port_taken_is_reported(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} .* taken"):
            ControlPlane(tmp_path, apiserver_port=port).start()


def test_missing_binary_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACGS_ETCD", str(tmp_path / "no-etcd"))
    with pytest.raises(FileNotFoundError, match="acgs dev build-binaries"):
        ControlPlane(tmp_path).start()


def test_etcd_dying_is_reported_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd: simulated crash' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ACGS_ETCD", str(fake))
    with pytest.raises(ServiceError, match="etcd exited with code 3") as err:
        ControlPlane(tmp_path / "cp").start()
    assert "simulated crash" in str(err.value)
    assert (tmp_path / "cp" / "logs" / "etcd.log").is_file(), "component logs are kept"
    assert not os.path.exists(tmp_path / "cp" / "state.json")
