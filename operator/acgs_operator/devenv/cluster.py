"""``acgs dev cluster up|down``: a real single-node Kubernetes with cluster DNS and KubeRay, on this host.

The control plane of ``controlplane.py`` (advertising this host's address), a node of ``node.py``
(containerd + kubelet + kube-proxy + scheduler + controller-manager), the images built locally from a
Debian base (``images.py``) and loaded into the node's containerd, CoreDNS and the KubeRay operator as
pods. What it prints is what a user exports to use it (KUBECONFIG); the cluster test tier uses the same.

No image registry is needed: every image is built here and used with ``imagePullPolicy`` Never or
IfNotPresent. On a machine with kind, use kind instead (README, "Install on a real cluster").
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acgs_operator.devenv import binaries, images, keys
from acgs_operator.devenv import node_config as cfg
from acgs_operator.devenv.binaries import cache_dir
from acgs_operator.devenv.controlplane import ControlPlane
from acgs_operator.devenv.controlplane import stop_from_state as stop_control_plane
from acgs_operator.devenv.kubectl import Kubectl, KubectlError
from acgs_operator.devenv.node import Node, check_host, host_address, node_ready
from acgs_operator.devenv.node import stop_from_state as stop_node
from acgs_operator.devenv.pki import Pki
from acgs_operator.devenv.process import ServiceError, StateFile

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "helm" / "acgs"
# The node's directory for training artifacts, mounted into the operator and every Ray pod
# (helm/acgs/values-node.yaml); one node, so a hostPath is a shared volume.
ARTIFACT_DIR = Path("/var/lib/acgs-artifacts")


def default_workdir() -> Path:
    return cache_dir() / "run" / "cluster"


def chart_app_version() -> str:
    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"])


def coredns_image() -> str:
    return f"acgs.local/coredns:{binaries.COREDNS_VERSION}"


def kuberay_image() -> str:
    return f"acgs.local/kuberay-operator:{binaries.KUBERAY_VERSION}"


def kuberay_module_dir() -> Path:
    """The KubeRay operator's Go module (downloaded when it was built): its CRDs and its ClusterRole."""
    out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(out) / "github.com" / "ray-project" / "kuberay" / f"ray-operator@{binaries.KUBERAY_VERSION}"
    if not (path / "config" / "crd" / "bases").is_dir():
        raise ServiceError(f"{path} has no config/crd/bases: build KubeRay first (`acgs dev build-binaries --cluster`)")
    return path


@dataclass
class ClusterState(StateFile):
    workdir: str
    kubeconfig: str
    server: str
    node_name: str
    node_ip: str
    images: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class Timer:
    """Seconds per step, printed as each step ends (``acgs dev cluster up`` shows its progress)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"[acgs cluster] {name} ...", flush=True)
        start = time.monotonic()
        result = fn()
        self.seconds[name] = round(time.monotonic() - start, 1)
        print(f"[acgs cluster] {name}: {self.seconds[name]}s", flush=True)
        return result


def build_images(timer: Timer) -> dict[str, str]:
    """Every image the node runs: pause, CoreDNS, KubeRay, the ACGS operator and Ray images."""
    timer.step("docker engine", images.ensure_docker)
    timer.step("Debian base image", images.ensure_base_image)
    built = {"pause": timer.step("pause image", images.build_pause_image)}
    built["coredns"] = timer.step(
        "CoreDNS image",
        lambda: images.binary_image(coredns_image(), binaries.require_binary("coredns"), "coredns"),
    )
    built["kuberay"] = timer.step(
        "KubeRay image",
        lambda: images.binary_image(kuberay_image(), binaries.require_binary("kuberay-operator"), "manager"),
    )
    built.update(timer.step("ACGS images", lambda: images.build_acgs_images(REPO_ROOT, chart_app_version())))
    return built


def stuck_report(nodes: dict[str, Any], pods: dict[str, Any], events: dict[str, Any]) -> list[str]:
    """Why pods do not become ready, from the node list, the pods and the Warning events: each node's pressure
    conditions and taints, each pod's phase, unscheduled reason and waiting containers."""
    lines = []
    for node in nodes.get("items", []):
        name = node["metadata"]["name"]
        for cond in node.get("status", {}).get("conditions", []):
            if (cond["type"] == "Ready") != (cond.get("status") == "True"):
                lines.append(f"node {name}: {cond['type']}={cond.get('status')} ({cond.get('message', '')})")
        for taint in node.get("spec", {}).get("taints", []):
            lines.append(f"node {name}: taint {taint['key']}:{taint['effect']}")
    for pod in pods.get("items", []):
        status = pod.get("status", {})
        parts = [status.get("phase", "?")]
        parts += [
            f"{c['reason']}: {c.get('message', '')}"
            for c in status.get("conditions", [])
            if c["type"] == "PodScheduled" and c.get("status") != "True" and "reason" in c
        ]
        for container in status.get("containerStatuses", []):
            if waiting := container.get("state", {}).get("waiting"):
                parts.append(f"{container['name']} {waiting.get('reason')}: {waiting.get('message', '')}")
        lines.append(f"pod {pod['metadata']['name']}: " + "; ".join(parts))
    warnings = [e for e in events.get("items", []) if e.get("type") == "Warning"]
    for event in warnings[-5:]:
        lines.append(f"event {event['involvedObject'].get('name')}: {event.get('reason')}: {event.get('message')}")
    return lines


def wait_for_rollout(kubectl: Kubectl, namespace: str, deployment: str, seconds: int = 120) -> None:
    """``kubectl rollout status``; when it times out, the error says why the pods are not ready."""
    try:
        status = ["-n", namespace, "rollout", "status", f"deployment/{deployment}", f"--timeout={seconds}s"]
        kubectl.run(*status, timeout=seconds + 30)
    except (KubectlError, subprocess.TimeoutExpired) as exc:
        try:
            report = stuck_report(
                kubectl.get_json("nodes"),
                kubectl.get_json("-n", namespace, "pods"),
                kubectl.get_json("-n", namespace, "events"),
            )
        except (KubectlError, subprocess.TimeoutExpired, ValueError) as why:
            report = [f"(could not read the pods and node: {why})"]
        detail = "\n  ".join(report)
        raise ServiceError(f"{namespace}/{deployment} was not ready in {seconds}s: {exc}\n  {detail}") from exc


def install_coredns(kubectl: Kubectl) -> None:
    docs = cfg.coredns_manifests(coredns_image())
    kubectl.apply("\n---\n".join(yaml.safe_dump(d) for d in docs))
    wait_for_rollout(kubectl, cfg.DNS_NAMESPACE, "coredns")


def install_kuberay(kubectl: Kubectl) -> None:
    module = kuberay_module_dir()
    names = []
    for crd in sorted((module / "config" / "crd" / "bases").glob("*.yaml")):
        kubectl.apply(crd.read_text())
        names.append("crd/" + yaml.safe_load(crd.read_text())["metadata"]["name"])
    # every kind it watches must be served before it starts, or it logs "no matches for kind" at start
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *names)
    role = yaml.safe_load((module / "config" / "rbac" / "role.yaml").read_text())
    docs = cfg.kuberay_manifests(kuberay_image(), role)
    kubectl.apply("\n---\n".join(yaml.safe_dump(d) for d in docs))
    wait_for_rollout(kubectl, cfg.KUBERAY_NAMESPACE, "kuberay-operator")


def load_images(refs: list[str], paths: cfg.NodePaths) -> None:
    """The node's images into its containerd, checked for room against the kubelet's eviction threshold."""
    images.load_into_containerd(
        refs, paths.containerd_socket, disk=paths.workdir, reserve_fraction=cfg.EVICTION_DISK_PERCENT / 100
    )


class DevCluster:
    """The whole cluster; ``up()`` from nothing or from caches, ``down()`` leaves nothing running."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or default_workdir()
        self.state: ClusterState | None = None

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def running(self) -> ClusterState | None:
        """The state of a cluster that is up and answering, else None."""
        if not self.state_file.exists():
            return None
        state = ClusterState.load(self.state_file)
        return state if node_ready(Kubectl(Path(state.kubeconfig)), state.node_name) else None

    def up(self) -> ClusterState:
        if (state := self.running()) is not None:
            return self.refresh(state)
        self.down()
        if problems := check_host():
            raise ServiceError("this host cannot run a node:\n  " + "\n  ".join(problems))
        timer = Timer()
        timer.step("binaries", lambda: binaries.ensure_all(groups=("dev", "cluster")))
        built = build_images(timer)
        address = host_address()
        plane = ControlPlane(self.workdir / "control-plane", advertise_address=address)
        timer.step("control plane", plane.start)
        node = Node(self.workdir / "node", plane.kubeconfig, Pki(plane.workdir / "pki"), address)
        try:
            timer.step("node Ready", node.start)
            timer.step(
                "images into containerd",
                lambda: load_images(list(built.values()), node.paths),
            )
            ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
            ARTIFACT_DIR.chmod(0o777)
            kubectl = Kubectl(plane.kubeconfig)
            timer.step("cluster DNS", lambda: install_coredns(kubectl))
            timer.step("KubeRay operator", lambda: install_kuberay(kubectl))
            keys.key_pair()  # the development signing key pair (README: its Secret and ConfigMap)
        except BaseException:
            node.stop()
            plane.stop()
            raise
        self.state = ClusterState(
            workdir=str(self.workdir),
            kubeconfig=str(plane.kubeconfig),
            server=plane.server,
            node_name=node.node_name,
            node_ip=address,
            images=built,
            seconds={**timer.seconds, "total": round(sum(timer.seconds.values()), 1)},
        )
        self.state.save(self.state_file)
        return self.state

    def refresh(self, state: ClusterState) -> ClusterState:
        """A cluster that is already up: rebuild what changed in the images (Docker's cache makes it seconds when
        nothing did) and load the changed ones into the node, so that new pods run the code of this checkout."""
        print(f"[acgs cluster] already up (export KUBECONFIG={state.kubeconfig}); refreshing the images", flush=True)
        timer = Timer()
        built = build_images(timer)
        paths = cfg.NodePaths(Path(state.workdir) / "node")
        timer.step("images into containerd", lambda: load_images(list(built.values()), paths))
        state.images = built
        state.seconds = {**timer.seconds, "total": round(sum(timer.seconds.values()), 1)}
        state.save(self.state_file)
        self.state = state
        return state

    def down(self) -> bool:
        """Stop the node (its pods first) and the control plane; True when something was running."""
        stopped = stop_node(self.workdir / "node")
        stopped = stop_control_plane(self.workdir / "control-plane") or stopped
        self.state_file.unlink(missing_ok=True)
        return stopped
