"""The embedded default: a local control plane, the CRDs, a local Ray head and the operator.

``acgs up`` runs this until Ctrl-C; the integration tests use the same pieces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acgs_operator.api import crdgen
from acgs_operator.devenv import keys
from acgs_operator.devenv.binaries import cache_dir
from acgs_operator.devenv.controlplane import ControlPlane
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import ManagedProcess, free_port, wait_until
from acgs_operator.devenv.ray_local import RayHead


def install_crds(kubectl: Kubectl) -> None:
    """Apply the CRDs generated from the API models and wait until they are Established."""
    for text in crdgen.crd_files().values():
        kubectl.apply(text)
    names = [kind.crd_name for kind in crdgen.KINDS]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])


@dataclass
class OperatorProcess:
    """The operator as a subprocess (``python -m acgs_operator operator run``) with its own ports."""

    kubeconfig: Path
    ray_address: str
    artifact_root: str
    log: Path
    serve_port: int = 8000
    extra_env: dict[str, str] = field(default_factory=dict)
    health_port: int = 0
    metrics_port: int = 0
    process: ManagedProcess | None = None

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            ACGS_RAY_ADDRESS=self.ray_address,
            ACGS_ARTIFACT_ROOT=self.artifact_root,
            ACGS_HEALTH_PORT=str(self.health_port),
            ACGS_METRICS_PORT=str(self.metrics_port),
            ACGS_RAY_PYTHON=sys.executable,
            ACGS_SERVE_HTTP_HOST="127.0.0.1",
            ACGS_SERVE_HTTP_PORT=str(self.serve_port),  # the local Ray head runs from this environment
            PYTHONUNBUFFERED="1",
            **self.extra_env,
        )
        self.process = ManagedProcess(
            "acgs operator", [sys.executable, "-m", "acgs_operator", "operator", "run"], self.log, env=env
        ).start()
        url = f"http://127.0.0.1:{self.health_port}/healthz"

        def healthy() -> bool:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200

        wait_until(
            healthy, timeout=timeout, interval=0.3, what=f"operator liveness at {url}", abort=self.process.death_notice
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=15)

    def kill(self) -> None:
        """SIGKILL the operator's process group and reap it: a crash, an OOM kill, an evicted pod."""
        if self.process is None or self.process.proc is None or self.process.exited() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.proc.wait(timeout=30)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.exited() is None


@dataclass
class EmbeddedStack:
    workdir: Path = field(default_factory=lambda: Path(os.environ.get("ACGS_RUN_DIR", cache_dir() / "run")))
    with_ray: bool = True
    existing_kubeconfig: Path | None = None  # use this cluster instead of starting a local control plane
    control_plane: ControlPlane | None = None
    ray: RayHead | None = None
    operator: OperatorProcess | None = None

    @property
    def kubeconfig(self) -> Path:
        if self.existing_kubeconfig is not None:
            return self.existing_kubeconfig
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubeconfig)

    def start(self, log: Callable[[str], object] = print) -> EmbeddedStack:
        if self.existing_kubeconfig is None:
            self.control_plane = ControlPlane(self.workdir / "control-plane")
            self.control_plane.start()
            log(f"control plane up at {self.control_plane.server} in {self.control_plane.startup_seconds:.1f}s")
        else:
            log(f"using the cluster of {self.existing_kubeconfig}")
        install_crds(self.kubectl)
        log("CRDs installed: " + ", ".join(k.crd_name for k in crdgen.KINDS))
        signing_secret = keys.install_signing_key(self.kubectl)
        keys.install_verification_keys(self.kubectl, "default")
        log(f"signing key in Secret {signing_secret}; its public key in ConfigMap default/acgs-verification-keys")
        ray_dashboard = os.environ.get("ACGS_RAY_ADDRESS", "")
        if self.with_ray and not ray_dashboard:
            self.ray = RayHead(self.workdir / "ray")
            state = self.ray.start()
            ray_dashboard = state.dashboard_url
            log(f"Ray head up: dashboard {state.dashboard_url}, GCS {state.address}")
        self.operator = OperatorProcess(
            kubeconfig=self.kubeconfig,
            ray_address=ray_dashboard or "http://127.0.0.1:8265",
            serve_port=self.ray.state.serve_port if self.ray and self.ray.state else 8000,
            artifact_root=str(self.workdir / "artifacts"),
            log=self.workdir / "operator.log",
            extra_env={"ACGS_SIGNING_KEY_SECRET": signing_secret},
        ).start()
        log(f"operator running (liveness :{self.operator.health_port}, metrics :{self.operator.metrics_port})")
        return self

    def stop(self) -> None:
        for part in (self.operator, self.ray, self.control_plane):
            if part is not None:
                part.stop()
