"""A real kube-apiserver + etcd on loopback, started the way controller-runtime's envtest does.

No kubelet, scheduler or controller-manager: the API server, its storage, RBAC, admission, CRDs and
CEL validation are all real, which is what an operator and its tests talk to.

    with ControlPlane.start_new() as cp:
        subprocess.run(["kubectl", "--kubeconfig", cp.kubeconfig, "get", "ns"])

Logs and the PKI stay in the work directory after a stop, so a failure can be read afterwards.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from acgs_operator.devenv import pki as pki_mod
from acgs_operator.devenv.binaries import cache_dir, require_binary
from acgs_operator.devenv.process import (
    LocalService,
    ManagedProcess,
    ServiceError,
    StateFile,
    free_port,
    pid_alive,
    port_in_use,
    runs_program,
    stop_process_group,
    wait_until,
)

START_TIMEOUT = 90.0


@dataclass
class ControlPlaneState(StateFile):
    """What a running control plane is; saved as JSON so another process can stop it."""

    workdir: str
    kubeconfig: str
    server: str
    etcd_url: str
    etcd_pid: int
    apiserver_pid: int
    started_at: float


def default_workdir() -> Path:
    return cache_dir() / "run" / "control-plane"


class ControlPlane(LocalService):
    """Owns one etcd and one kube-apiserver process."""

    def __init__(
        self,
        workdir: Path,
        apiserver_port: int | None = None,
        etcd_port: int | None = None,
        advertise_address: str | None = None,
    ) -> None:
        """``advertise_address``: a non-loopback address of this host, for a control plane with a node (its pods
        reach the API server there through the ``kubernetes`` Service). The API server then binds every address."""
        self.workdir = workdir
        self.advertise_address = advertise_address
        self.apiserver_port = apiserver_port
        self.etcd_port = etcd_port
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.state: ControlPlaneState | None = None
        self._certs: pki_mod.Pki | None = None

    # ------------------------------------------------------------------ public API

    @classmethod
    def start_new(
        cls, workdir: Path | None = None, apiserver_port: int | None = None, etcd_port: int | None = None
    ) -> ControlPlane:
        plane = cls(workdir or default_workdir(), apiserver_port=apiserver_port, etcd_port=etcd_port)
        plane.start()
        return plane

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def server(self) -> str:
        assert self.state is not None, "control plane not started"
        return self.state.server

    def start(self) -> ControlPlaneState:
        etcd_bin = require_binary("etcd")
        apiserver_bin = require_binary("kube-apiserver")
        self._check_not_running()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in ("etcd-data",):
            path = self.workdir / stale
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
        extra_ips = (self.advertise_address,) if self.advertise_address else ()
        certs = pki_mod.create(self.workdir / "pki", extra_ips=extra_ips)
        etcd_port = self._port(self.etcd_port, "etcd")
        apiserver_port = self._port(self.apiserver_port, "kube-apiserver")
        started = time.monotonic()
        try:
            etcd_url = self._start_etcd(etcd_bin, etcd_port)
            server = self._start_apiserver(apiserver_bin, apiserver_port, etcd_url, certs)
        except BaseException:
            self.stop()
            raise
        self._write_kubeconfig(server, certs)
        assert self.etcd is not None and self.apiserver is not None
        self.state = ControlPlaneState(
            workdir=str(self.workdir),
            kubeconfig=str(self.kubeconfig),
            server=server,
            etcd_url=etcd_url,
            etcd_pid=self.etcd.pid,
            apiserver_pid=self.apiserver.pid,
            started_at=time.time(),
        )
        self.state.save(self.workdir / "state.json")
        self.startup_seconds = time.monotonic() - started
        return self.state

    def stop(self, keep_data: bool = False) -> None:
        """Stop kube-apiserver and etcd; ``keep_data`` keeps the state file for a later ``resume()``."""
        for proc in (self.apiserver, self.etcd):
            if proc is not None:
                proc.stop()
        if not keep_data:
            self.forget_state()

    def resume(self) -> ControlPlaneState:
        """Start etcd and kube-apiserver again after ``stop(keep_data=True)``: same ports, data and certs."""
        assert self.state is not None and self.etcd is not None and self.apiserver is not None, "never started"
        self.etcd.start()
        self._wait_etcd(self.state.etcd_url)
        self.apiserver.start()
        self._wait_apiserver(self.state.server)
        self.state.etcd_pid, self.state.apiserver_pid = self.etcd.pid, self.apiserver.pid
        self.state.save(self.state_file)
        return self.state

    def restart(self, downtime: float = 0.0) -> float:
        """Stop both processes, stay down ``downtime`` seconds, resume; returns the seconds the API was down."""
        down = time.monotonic()
        self.stop(keep_data=True)
        time.sleep(max(0.0, downtime - (time.monotonic() - down)))
        self.resume()
        return time.monotonic() - down

    # ------------------------------------------------------------------ steps

    def _check_not_running(self) -> None:
        state_file = self.workdir / "state.json"
        if not state_file.exists():
            return
        state = ControlPlaneState.load(state_file)
        if pid_alive(state.apiserver_pid) or pid_alive(state.etcd_pid):
            raise ServiceError(
                f"a control plane is already running from {self.workdir} (kube-apiserver pid {state.apiserver_pid}); "
                f"use KUBECONFIG={state.kubeconfig}, or stop it with `acgs dev control-plane down`"
            )
        state_file.unlink()

    @staticmethod
    def _port(requested: int | None, component: str) -> int:
        if requested is None:
            return free_port()
        if port_in_use(requested) or port_in_use(requested, "0.0.0.0"):
            raise ServiceError(
                f"port {requested} for {component} is taken by another process; "
                f"free it (e.g. `ss -ltnp | grep :{requested}`) or omit the port to pick a free one"
            )
        return requested

    def _start_etcd(self, binary: Path, port: int) -> str:
        peer = free_port()
        url = f"http://127.0.0.1:{port}"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(binary),
                "--name=acgs",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=acgs=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            self.logs / "etcd.log",
        ).start()

        self._wait_etcd(url)
        return url

    def _wait_etcd(self, url: str) -> None:
        def healthy() -> bool:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                return bool(json.load(resp).get("health") == "true")

        wait_until(healthy, timeout=START_TIMEOUT, what=f"etcd at {url}", abort=self._etcd_died)

    def _etcd_died(self) -> str | None:
        assert self.etcd is not None
        notice = self.etcd.death_notice()
        if notice and "address already in use" in notice:
            notice += "\nanother process holds the etcd port: stop it or let ACGS pick free ports"
        return notice

    def _start_apiserver(self, binary: Path, port: int, etcd_url: str, certs: pki_mod.Pki) -> str:
        server = f"https://127.0.0.1:{port}"
        node_args = (
            [
                # the kubelet's client certificate for logs, exec and port-forward (system:masters)
                f"--kubelet-client-certificate={certs.admin_cert}",
                f"--kubelet-client-key={certs.admin_key}",
            ]
            if self.advertise_address
            else []
        )
        self.apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(binary),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={'0.0.0.0' if self.advertise_address else '127.0.0.1'}",
                f"--advertise-address={self.advertise_address or '127.0.0.1'}",
                *node_args,
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={certs.serving_cert}",
                f"--tls-private-key-file={certs.serving_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--service-account-key-file={certs.sa_public}",
                f"--service-account-signing-key-file={certs.sa_private}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--v=1",
            ],
            self.logs / "kube-apiserver.log",
        ).start()
        self._certs = certs
        self._wait_apiserver(server)
        return server

    def _wait_apiserver(self, server: str) -> None:
        certs = self._certs
        assert certs is not None
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))

        def ready() -> bool:
            with urllib.request.urlopen(f"{server}/readyz", timeout=5, context=context) as resp:
                return resp.status == 200

        def died() -> str | None:
            assert self.apiserver is not None and self.etcd is not None
            if notice := self.etcd.death_notice():
                return "etcd died while kube-apiserver was starting: " + notice
            return self.apiserver.death_notice()

        wait_until(ready, timeout=START_TIMEOUT, interval=0.3, what=f"kube-apiserver at {server}/readyz", abort=died)

    def _write_kubeconfig(self, server: str, certs: pki_mod.Pki) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "acgs-local", "cluster": {"server": server, "certificate-authority-data": b64(certs.ca_cert)}}
            ],
            "users": [
                {
                    "name": "acgs-admin",
                    "user": {"client-certificate-data": b64(certs.admin_cert), "client-key-data": b64(certs.admin_key)},
                }
            ],
            "contexts": [{"name": "acgs-local", "context": {"cluster": "acgs-local", "user": "acgs-admin"}}],
            "current-context": "acgs-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)


def stop_from_state(workdir: Path | None = None) -> bool:
    """Stop a control plane started by another process (``acgs dev control-plane down``)."""
    workdir = workdir or default_workdir()
    state_file = workdir / "state.json"
    if not state_file.exists():
        return False
    state = ControlPlaneState.load(state_file)
    for pid, program in ((state.apiserver_pid, "kube-apiserver"), (state.etcd_pid, "etcd")):
        if runs_program(pid, program):
            stop_process_group(pid)
    state_file.unlink()
    return True
