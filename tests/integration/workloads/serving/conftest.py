"""Fixtures of the serving integration tests: a real local Ray head (session fixture ``ray_address``), Serve
on a free loopback port, and models trained for real (plain torch, seconds) into a temporary artifact root."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import (
    ConstitutionSnapshot,
    DatasetSpec,
    GeneratorSpec,
    ModelSpec,
    TrainingSpec,
    TrainRunConfig,
)


@dataclass(frozen=True)
class Trained:
    component: str
    uri: str  # model directory
    sha256: str


@dataclass
class ServeEnv:
    base_url: str
    apps: list[str]

    def wait_running(self, name: str, timeout: float = 120.0) -> None:
        from ray import serve

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = serve.status().applications.get(name)
            if status is not None and str(status.status.value) == "RUNNING":
                return
            time.sleep(0.5)
        raise AssertionError(f"application {name} is not RUNNING: {serve.status().applications.get(name)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def constitution() -> ConstitutionSnapshot:
    return default_constitution()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, constitution: ConstitutionSnapshot
            ) -> Callable[[str], Trained]:
    """``trained(component)``: a model trained once per session with the real loop (plain torch)."""
    from acgs_workloads.train import run

    root: Path = tmp_path_factory.mktemp("serving-artifacts")
    cache: dict[str, Trained] = {}

    def get(component: str) -> Trained:
        if component not in cache:
            cfg = TrainRunConfig(
                run_id=f"serving-{component}", component=component, constitution=constitution,  # type: ignore[arg-type]
                dataset=DatasetSpec(generator=GeneratorSpec(examples=4000, seed=7)),
                model=ModelSpec(hidden_size=32, layers=1),
                training=TrainingSpec(epochs=3, batch_size=64, learning_rate=0.01),
                artifact_root=str(root), use_ray=False,
            )
            torch.set_grad_enabled(True)  # train.run leaves autograd disabled in this process after a run
            result = run(cfg)
            uri = result.model.uri.rsplit("/", 1)[0]  # the model directory
            cache[component] = Trained(component, uri, result.model.sha256)
        return cache[component]

    return get


def app_args(model: Trained, constitution: ConstitutionSnapshot, name: str, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "deployment": f"serving-it/{name}",
        "component": model.component,
        "modelUri": model.uri,
        "modelSha256": model.sha256,
        "constitution": constitution.wire(),
        "runtimeGuard": True,
        "maxBodyBytes": 65536,
    }
    args.update(overrides)
    return args


@pytest.fixture(scope="module")
def serve_env(ray_address: str) -> Iterator[ServeEnv]:
    """Serve on this session's Ray head; the module's applications are deleted at the end (Serve is shut
    down too when this fixture started it)."""
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=ray_address, log_to_driver=False)
    try:
        _get_global_client()
        started_here = False
    except Exception:
        started_here = True
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = _get_global_client().http_config.port
    env = ServeEnv(base_url=f"http://127.0.0.1:{port}", apps=[])
    try:
        yield env
    finally:
        for name in env.apps:
            with contextlib.suppress(Exception):
                serve.delete(name, _blocking=True)
        if started_here:
            serve.shutdown()
        if connected_here:  # later modules connect with their own options
            ray.shutdown()


@pytest.fixture(scope="module")
def http(serve_env: ServeEnv) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve_env.base_url, timeout=30.0) as client:
        yield client
