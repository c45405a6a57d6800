"""The Helm chart with the real helm against the real API server: lint, server-side dry run, install,
upgrade, uninstall, and the values schema refusing bad values.

The optional kinds (KubeRay's RayCluster, the Prometheus operator's ServiceMonitor) have no CRDs on the
bare API server: the dry run maps them through schema-less stand-ins (third_party_crds.yaml) and their
bodies are checked field by field here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator import cli
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until

CHART = Path(__file__).resolve().parents[3] / "helm" / "acgs"
Helm = Any  # the `helm` fixture (conftest.py): the real helm bound to the session's kubeconfig

ALL_ON = (
    "rayCluster.enabled=true",
    "rayCluster.gpuWorkers.enabled=true",
    "rayCluster.nodePortService.enabled=true",
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.dashboard.enabled=true",
    "operator.rayAuthToken.existingSecret=ray-token",
)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def sets(*values: str) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


@pytest.mark.parametrize(
    "args",
    [
        [],
        sets(*ALL_ON),
        sets(*ALL_ON, "rbac.scope=namespace"),
        ["-f", str(CHART / "values-kind.yaml")],
        ["-f", str(CHART / "values-node.yaml")],
    ],
    ids=["defaults", "all-optional-parts", "all-optional-parts-namespace-scope", "values-kind", "values-node"],
)
def test_helm_lint(helm: Helm, args: list[str]) -> None:
    out = helm.run("lint", str(CHART), "--strict", *args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_rendered_chart_passes_a_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str, third_party_crds
) -> None:  # type: ignore[no-untyped-def]
    rendered = helm.template(namespace, *ALL_ON)
    objects = docs(rendered)
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "ConfigMap",
        "RayCluster",
        "ServiceMonitor",
    } <= kinds
    out = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=rendered).stdout
    assert out.count("(server dry run)") == len(objects), out

    (ray,) = by_kind(objects, "RayCluster")
    assert ray["apiVersion"] == "ray.io/v1" and ray["spec"]["enableInTreeAutoscaling"] is True
    head = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]}["dashboard"] == 8265
    assert {p["name"]: p["containerPort"] for p in head["ports"]}["serve"] == 8000
    from acgs_operator.devenv.ray_local import SERVE_ROUTER_ENV

    assert SERVE_ROUTER_ENV.items() <= {e["name"]: e.get("value") for e in head["env"]}.items()
    groups = {g["groupName"]: g for g in ray["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1 and groups["gpu"]["minReplicas"] <= groups["gpu"]["maxReplicas"]
    monitors = {m["spec"]["endpoints"][0]["port"] for m in by_kind(objects, "ServiceMonitor")}
    assert monitors == {"metrics", "serve"}

    (deployment,) = by_kind(objects, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ACGS_RAY_ADDRESS"] == f"http://{ray['metadata']['name']}-head-svc.{namespace}.svc:8265"
    assert env["ACGS_RAY_AUTH_TOKEN_FILE"] == "/var/run/secrets/acgs/ray/token"
    assert env["ACGS_SERVE_HTTP_PORT"] == "8000"


def test_operator_pod_is_locked_down(helm: Helm) -> None:
    (deployment,) = by_kind(docs(helm.template("acgs-system")), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # what the kubelet runs: the container's command (replacing the image's ENTRYPOINT) and its args
    assert container["command"] == ["acgs"] and container["args"] == ["operator", "run"]
    assert cli.parser().parse_args(container["args"]).func is cli.cmd_operator_run
    scoped = by_kind(docs(helm.template("acgs-system", "rbac.scope=namespace", "operator.verbose=true")), "Deployment")
    args = cli.parser().parse_args(scoped[0]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.func is cli.cmd_operator_run and args.namespace == ["acgs-system"] and args.verbose
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] and container["resources"]["requests"]


def _exists(kubectl: Kubectl, *args: str) -> bool:
    return kubectl.run("get", *args, "-o", "name", check=False).returncode == 0


def test_install_upgrade_uninstall(helm: Helm, kubectl: Kubectl, namespace: str, release: str) -> None:
    objects = [
        ("deployment", release, namespace),
        ("serviceaccount", release, namespace),
        ("service", f"{release}-metrics", namespace),
        ("configmap", f"{release}-dashboard", namespace),
        ("role", f"{release}-secret-reader", namespace),
        ("rolebinding", f"{release}-secret-reader", namespace),
        ("clusterrole", release, None),
        ("clusterrolebinding", release, None),
    ]

    def where(ns: str | None) -> list[str]:
        return ["-n", ns] if ns else []

    try:
        out = helm.run("install", release, str(CHART), "-n", namespace).stdout
        assert "STATUS: deployed" in out and f"Deployment {release}" in out  # NOTES.txt names what it installed
        for kind, name, ns in objects:
            assert _exists(kubectl, f"{kind}/{name}", *where(ns)), f"{kind}/{name} was not created"
        for crd in ("constitutions.acgs.io", "trainingjobs.acgs.io", "modeldeployments.acgs.io"):
            assert _exists(kubectl, f"crd/{crd}")

        url = "http://ray-head.example.svc:8265"
        helm.run(
            "upgrade",
            release,
            str(CHART),
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            f"operator.rayAddress={url}",
            "--set",
            "operator.logFormat=plain",
        )
        deployment = kubectl.get_json("deployment", release, "-n", namespace)
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["ACGS_RAY_ADDRESS"] == url and env["ACGS_LOG_FORMAT"] == "plain"
        assert deployment["metadata"]["generation"] == 2
        history = yaml.safe_load(helm.run("history", release, "-n", namespace, "-o", "yaml").stdout)
        assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

        helm.run("uninstall", release, "-n", namespace)
        wait_until(
            lambda: not any(_exists(kubectl, f"{k}/{n}", *where(ns)) for k, n, ns in objects),
            timeout=60,
            what=f"the objects of release {release} to be removed",
        )
        # helm keeps CRDs from crds/ on uninstall (they hold users' resources)
        assert _exists(kubectl, "crd/trainingjobs.acgs.io")
    finally:
        helm.run("uninstall", release, "-n", namespace, "--ignore-not-found", check=False)


BAD_VALUES = [
    # (--set value, the field helm's error must name)
    ("rbac.scope=global", "/rbac/scope"),
    ("operator.replicas=-1", "/operator/replicas"),
    ("operator.replicas=2", "/operator/replicas"),
    ("operator.image.repository=", "/operator/image/repository"),
    ("operator.image.pullPolicy=Sometimes", "/operator/image/pullPolicy"),
    ("rayCluster.gpuWorkers.replicas=-1", "/rayCluster/gpuWorkers/replicas"),
    ("rayCluster.gpuWorkers.gpusPerWorker=0", "/rayCluster/gpuWorkers/gpusPerWorker"),
    ("operator.metricsPort=http", "/operator/metricsPort"),
    ("operator.logFormat=xml", "/operator/logFormat"),
    ("operator.rayAddress=ray-head:8265", "/operator/rayAddress"),
    ("rbac.watchNamespaces[0]=Not_A_Namespace", "/rbac/watchNamespaces/0"),
    ("rayCluster.cpuWorkers.minReplicas=5", "rayCluster.cpuWorkers.minReplicas"),  # template `fail`
    ("rayCluster.gpuWorkers.replicas=3", "rayCluster.gpuWorkers.replicas"),  # above maxReplicas 2
    ("operator.resources.limits.cpu=lots", "/operator/resources/limits/cpu"),
    ("unknownTopLevel=1", "unknownTopLevel"),
]


@pytest.mark.parametrize(("value", "field"), BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_bad_values_are_refused_naming_the_field(helm: Helm, value: str, field: str) -> None:
    proc = helm.run("template", "acgs", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0, f"{value} was accepted"
    assert field in proc.stderr, proc.stderr
