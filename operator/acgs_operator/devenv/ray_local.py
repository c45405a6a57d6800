"""A real local Ray head with its dashboard on loopback (``ray start --head --block``).

The head runs in its own process group with its own temp dir and ports, so stopping it never touches
another Ray on the machine (unlike ``ray stop``, which kills every Ray process of the user).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from acgs_operator.devenv.binaries import cache_dir
from acgs_operator.devenv.process import (
    LocalService,
    ManagedProcess,
    ServiceError,
    StateFile,
    free_ports,
    pid_alive,
    stop_process_group,
    wait_until,
)

START_TIMEOUT = 120.0
# Ray Serve's request router (in the HTTP proxy) under overload. With Ray's defaults (backoff up to 0.5 s when
# every replica is at max_ongoing_requests, queue-length probes whose deadline doubles up to 1 s on a busy
# replica) a saturated route on 2 cores answered 4 requests/s and stayed there after the load dropped to a
# quarter of its capacity; with these it kept answering its capacity and recovered at once (README: Serving
# under overload). The chart sets the same on every Ray pod (values rayCluster.serveRouterEnv).
SERVE_ROUTER_ENV = {
    "RAY_SERVE_ROUTER_RETRY_MAX_BACKOFF_S": "0.05",
    "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "0.1",
}


@dataclass
class RayHeadState(StateFile):
    address: str  # GCS address for ray.init(address=...)
    dashboard_url: str  # Jobs and Serve REST APIs
    serve_port: int  # where Serve's HTTP proxy listens once an application is deployed
    pid: int
    temp_dir: str
    log: str


def ray_executable() -> str:
    """The ``ray`` CLI next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name("ray")
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("ray")
    if not found:
        raise ServiceError("the `ray` command is not installed; run `make setup` (pip install 'acgs[workloads]')")
    return found


def default_workdir() -> Path:
    return cache_dir() / "run" / "ray"


class RayHead(LocalService):
    """One Ray head node; ``num_cpus`` is logical, so Ray Train can place more workers than cores."""

    def __init__(self, workdir: Path | None = None, num_cpus: int = 4, object_store_mb: int = 512) -> None:
        self.workdir = workdir or default_workdir()
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self.process: ManagedProcess | None = None
        self.state: RayHeadState | None = None

    def start(self) -> RayHeadState:
        state_file = self.workdir / "state.json"
        if state_file.exists():
            old = RayHeadState.load(state_file)
            if pid_alive(old.pid):
                raise ServiceError(
                    f"a Ray head from {self.workdir} is already running at {old.dashboard_url} (pid {old.pid}); "
                    "use it (RAY_ADDRESS) or stop it with `acgs dev ray down`"
                )
            state_file.unlink()
        self.workdir.mkdir(parents=True, exist_ok=True)
        gcs_port, dashboard_port, serve_port, *others = free_ports(8)
        # every port Ray would otherwise take at a fixed default, so several heads can share a machine
        flags = (
            "--dashboard-agent-listen-port",  # default 52365
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
            "--ray-client-server-port",
        )  # default 10001
        fixed_defaults = dict(zip(flags, others, strict=True))
        # a short temp dir: Ray's unix socket paths must stay under 107 characters
        temp_dir = Path("/tmp") / f"acgs-ray-{gcs_port}"
        # A development head on loopback: token auth off explicitly, so a token left in ~/.ray by an
        # earlier `ray.init()` does not silently turn it on (and lock out the dashboard clients).
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
        # Ray runs its workers (Serve proxy and replicas, training workers) at niceness 15 by default: on a
        # small shared machine they then starve behind the API server, the operator and a load generator.
        env.setdefault("RAY_worker_niceness", "0")
        for key, value in SERVE_ROUTER_ENV.items():
            env.setdefault(key, value)
        self.process = ManagedProcess(
            "ray head",
            [
                ray_executable(),
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--port={gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}",
                "--include-dashboard=true",
                f"--num-cpus={self.num_cpus}",
                f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
                *[f"{flag}={port}" for flag, port in fixed_defaults.items()],
            ],
            self.workdir / "ray-head.log",
            env=env,
        ).start()
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        started = time.monotonic()
        try:
            self._wait_dashboard(dashboard)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.state = RayHeadState(
            address=f"127.0.0.1:{gcs_port}",
            dashboard_url=dashboard,
            serve_port=serve_port,
            pid=self.process.pid,
            temp_dir=str(temp_dir),
            log=str(self.process.log),
        )
        self.state.save(state_file)
        return self.state

    def _wait_dashboard(self, dashboard: str) -> None:
        assert self.process is not None

        def jobs_api_up() -> bool:
            with urllib.request.urlopen(f"{dashboard}/api/version", timeout=3) as resp:
                return resp.status == 200

        wait_until(
            jobs_api_up,
            timeout=START_TIMEOUT,
            interval=0.5,
            what=f"Ray dashboard at {dashboard}",
            abort=self.process.death_notice,
        )

    def stop(self, keep_state: bool = False) -> None:
        """Stop the head's process group; ``keep_state`` keeps the state file for a later ``resume()``."""
        if self.process is not None:
            self.process.stop(grace=3.0)  # `ray start --block` ignores SIGTERM for a long time
        if self.state is not None:
            shutil.rmtree(self.state.temp_dir, ignore_errors=True)
        if not keep_state:
            self.forget_state()

    def resume(self) -> RayHeadState:
        """Start the head again after ``stop(keep_state=True)`` on the same ports (a fresh GCS: without
        external GCS storage Ray forgets its jobs, as a real head restart does)."""
        assert self.process is not None and self.state is not None, "never started"
        self.process.start()
        started = time.monotonic()
        self._wait_dashboard(self.state.dashboard_url)
        self.startup_seconds = time.monotonic() - started
        self.state.pid = self.process.pid
        self.state.save(self.state_file)
        return self.state



def stop_from_state(workdir: Path | None = None) -> bool:
    workdir = workdir or default_workdir()
    state_file = workdir / "state.json"
    if not state_file.exists():
        return False
    raw = json.loads(state_file.read_text())  # tolerate state files of older versions: pid and temp dir suffice
    stop_process_group(int(raw["pid"]), grace=3.0)
    shutil.rmtree(str(raw["temp_dir"]), ignore_errors=True)
    state_file.unlink()
    return True
