"""A real Kubernetes node on this host: containerd, kubelet, kube-proxy, scheduler and controller-manager.

It joins a ``ControlPlane`` started with an ``advertise_address`` (so that pods reach the API server
through the ``kubernetes`` Service). Each process keeps its log under ``<workdir>/logs``; containerd has
its own root, state and socket beside Docker's. The settings that matter on this kind of host are in
``node_config`` (pure); this module writes them, runs the processes and tears them down again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from acgs_operator.devenv import images
from acgs_operator.devenv import node_config as cfg
from acgs_operator.devenv.binaries import require_binary
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.pki import Pki
from acgs_operator.devenv.process import (
    LocalService,
    ManagedProcess,
    ServiceError,
    StateFile,
    free_port,
    runs_program,
    stop_process_group,
    wait_until,
)

NODE_READY_TIMEOUT = 120.0
CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
# program -> the Debian package that provides it
HOST_PREREQUISITES = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "ip": "iproute2",
    "mount": "mount",
}


@dataclass
class NodeState(StateFile):
    workdir: str
    kubeconfig: str
    node_name: str
    node_ip: str
    containerd_socket: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0


def host_address() -> str:
    """The address of the interface that holds the default route (not loopback)."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.254"], capture_output=True, text=True)
    words = out.stdout.split()
    if out.returncode == 0 and "src" in words:
        return words[words.index("src") + 1]
    for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        address = str(info[4][0])
        if not address.startswith("127."):
            return address
    raise ServiceError("no non-loopback IPv4 address found (`ip -4 route` has no default route)")


def cni_bin_dir() -> Path:
    for path in CNI_BIN_DIRS:
        if (path / "bridge").is_file() and (path / "firewall").is_file():
            return path
    raise ServiceError(
        "the CNI plugins (bridge, host-local, portmap, firewall) are missing: "
        "`apt-get install containernetworking-plugins`"
    )


def check_host() -> list[str]:
    """What this host lacks to run a node, each with the command that fixes it (empty: nothing)."""
    problems = [
        f"`{prog}` not found: `apt-get install {pkg}`"
        for prog, pkg in HOST_PREREQUISITES.items()
        if not shutil.which(prog)
    ]
    try:
        cni_bin_dir()
    except ServiceError as exc:
        problems.append(str(exc))
    if os.geteuid() != 0:
        problems.append("a node needs root (containerd, kubelet, iptables): run as root")
    return problems


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.exists() and path.read_text().strip() != value:
        try:
            path.write_text(value)
        except OSError as exc:
            raise ServiceError(f"cannot set {key}={value} ({exc}); pods could not reach Services") from exc


def prepare_host() -> None:
    """Forwarding for the pods' bridge, and bridged traffic through iptables (kube-proxy's Services)."""
    if not Path("/proc/sys/net/bridge").exists():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    _sysctl("net.ipv4.ip_forward", "1")
    _sysctl("net.bridge.bridge-nf-call-iptables", "1")


class Node(LocalService):
    """One node: its processes in start order, stopped in reverse."""

    def __init__(self, workdir: Path, kubeconfig: Path, pki: Pki, node_ip: str) -> None:
        self.workdir = workdir
        self.paths = cfg.NodePaths(workdir)
        self.kubeconfig = kubeconfig
        self.pki = pki
        self.node_ip = node_ip
        self.node_name = socket.gethostname().lower()
        self.processes: dict[str, ManagedProcess] = {}
        self.state: NodeState | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> NodeState:
        if problems := check_host():
            raise ServiceError("this host cannot run a node:\n  " + "\n  ".join(problems))
        stop_from_state(self.workdir)  # a node left running by a killed process
        prepare_host()
        self._write_configs()
        try:
            self._start_containerd()
            self._start_kubernetes()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.state = NodeState(
            workdir=str(self.workdir),
            kubeconfig=str(self.kubeconfig),
            node_name=self.node_name,
            node_ip=self.node_ip,
            containerd_socket=str(self.paths.containerd_socket),
            pids={name: proc.pid for name, proc in self.processes.items()},
            started_at=time.time(),
        )
        self.state.save(self.state_file)
        return self.state

    def stop(self) -> None:
        pids = {name: proc.pid for name, proc in self.processes.items() if proc.exited() is None}
        teardown(self.paths, self.kubeconfig, pids)
        for proc in self.processes.values():
            proc.stop(grace=5)  # reaps the children teardown stopped
        self.processes.clear()
        self.forget_state()

    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubeconfig)

    def wait_ready(self, timeout: float = NODE_READY_TIMEOUT) -> None:
        wait_until(
            lambda: node_ready(self.kubectl(), self.node_name),
            timeout=timeout,
            interval=1.0,
            what=f"node {self.node_name} Ready",
            abort=self._died,
        )

    # ------------------------------------------------------------------ steps

    def _write_configs(self) -> None:
        paths = self.paths
        for directory in (paths.cni_conf_dir, paths.logs, paths.kubelet_root, paths.containerd_state):
            directory.mkdir(parents=True, exist_ok=True)
        paths.containerd_config.write_text(cfg.containerd_config(paths, images.PAUSE_IMAGE, cni_bin_dir()))
        conflist = cfg.cni_conflist()
        conflist["plugins"][0]["ipam"]["dataDir"] = str(paths.workdir / "cni" / "ipam")
        shutil.rmtree(paths.workdir / "cni" / "ipam", ignore_errors=True)  # addresses of pods that no longer exist
        (paths.cni_conf_dir / "10-acgs.conflist").write_text(cfg.to_json(conflist))
        paths.kubelet_config.write_text(cfg.to_json(cfg.kubelet_config(self.pki.ca_cert)))
        paths.kube_proxy_config.write_text(cfg.to_json(cfg.kube_proxy_config(self.kubeconfig, self.node_name)))

    def _spawn(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, args, self.paths.logs / f"{name}.log").start()
        self.processes[name] = proc
        return proc

    def _start_containerd(self) -> None:
        proc = self._spawn("containerd", ["containerd", "--config", str(self.paths.containerd_config)])

        def serving() -> bool:
            return ctr(self.paths.containerd_socket, "version").returncode == 0

        wait_until(serving, timeout=30, interval=0.3, what="containerd", abort=proc.death_notice)

    def _start_kubernetes(self) -> None:
        paths, pki = self.paths, self.pki
        self._spawn(
            "kubelet", cfg.kubelet_args(require_binary("kubelet"), paths, self.kubeconfig, self.node_ip)
        )
        self._spawn("kube-proxy", cfg.kube_proxy_args(require_binary("kube-proxy"), paths))
        self._spawn(
            "kube-scheduler", cfg.scheduler_args(require_binary("kube-scheduler"), self.kubeconfig, free_port())
        )
        self._spawn(
            "kube-controller-manager",
            cfg.controller_manager_args(
                require_binary("kube-controller-manager"), self.kubeconfig, pki.sa_private, pki.ca_cert, free_port()
            ),
        )

    def _died(self) -> str | None:
        for proc in self.processes.values():
            if notice := proc.death_notice():
                return notice
        return None


def node_ready(kubectl: Kubectl, name: str) -> bool:
    """Whether node ``name`` reports Ready (False while the API server does not answer)."""
    proc = kubectl.run("get", "node", name, "-o", "json", check=False, timeout=15)
    if proc.returncode != 0:
        return False
    conditions = json.loads(proc.stdout)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ctr(socket_path: Path, *args: str, namespace: str = "k8s.io") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ctr", "--address", str(socket_path), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def remove_pods(socket_path: Path) -> None:
    """Kill every container of the node's containerd (the kubelet is already stopped): shims outlive both."""
    if not socket_path.exists():
        return
    listed = ctr(socket_path, "tasks", "ls", "-q")
    for task in listed.stdout.split():
        ctr(socket_path, "tasks", "kill", "--signal", "SIGKILL", task)
    deadline = time.monotonic() + 15
    for task in listed.stdout.split():
        while time.monotonic() < deadline and ctr(socket_path, "tasks", "delete", task).returncode != 0:
            time.sleep(0.3)


def cleanup_host(paths: cfg.NodePaths) -> None:
    """Unmount what the kubelet and containerd mounted under the work directory, stop leftover shims and
    remove kube-proxy's iptables rules, so that a later node starts clean."""
    for proc in _shims(paths.containerd_socket):
        stop_process_group(proc, grace=5)
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(str(paths.workdir) + "/"):
                mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
    proxy = Path(require_binary("kube-proxy"))
    subprocess.run([str(proxy), "--cleanup"], capture_output=True, timeout=60)


def _shims(socket_path: Path) -> list[int]:
    """containerd-shim processes started by the containerd listening on ``socket_path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if cmdline and b"containerd-shim" in cmdline[0] and str(socket_path).encode() in cmdline:
                found.append(int(entry.name))
    return found


def drain(kubeconfig: Path, socket_path: Path, timeout: float = 60.0) -> None:
    """Delete every pod through the API and let the kubelet stop them: it tears their network down through
    CNI (a killed sandbox leaves its veth and network namespace behind). The controllers must be stopped first,
    or they would create the pods again."""
    kubectl = Kubectl(kubeconfig)
    proc = kubectl.run("delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force",
                       "--wait=false", check=False, timeout=60)
    if proc.returncode != 0:
        return
    with contextlib.suppress(ServiceError):
        wait_until(lambda: not ctr(socket_path, "tasks", "ls", "-q").stdout.split(), timeout=timeout, interval=0.5,
                   what="the kubelet to stop every pod")


def _running(pids: dict[str, int], name: str) -> int | None:
    """The pid of component ``name`` if it still runs (a state file's pid may be another process's by now)."""
    pid = pids.get(name, 0)
    return pid if runs_program(pid, name) else None


def teardown(paths: cfg.NodePaths, kubeconfig: Path, pids: dict[str, int]) -> None:
    """Stop a node's processes in the order that leaves nothing behind: controllers, pods, kubelet, runtime."""
    for name in ("kube-controller-manager", "kube-scheduler"):
        if pid := _running(pids, name):
            stop_process_group(pid, grace=10)
    containerd = _running(pids, "containerd")
    if _running(pids, "kubelet") and containerd:
        drain(kubeconfig, paths.containerd_socket)
    for name in ("kubelet", "kube-proxy"):
        if pid := _running(pids, name):
            stop_process_group(pid, grace=10)
    if containerd:
        remove_pods(paths.containerd_socket)  # whatever the kubelet did not stop
        stop_process_group(containerd, grace=10)
    cleanup_host(paths)


def stop_from_state(workdir: Path) -> bool:
    """Stop a node that another process started (``acgs dev cluster down``)."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return False
    state = NodeState.load(state_file)
    teardown(cfg.NodePaths(workdir), Path(state.kubeconfig), state.pids)
    state_file.unlink(missing_ok=True)
    return True
