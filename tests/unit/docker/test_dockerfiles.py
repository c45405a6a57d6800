"""Dockerfiles and the kind config, checked without Docker: paths exist, entrypoints and versions agree."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from acgs_operator import cli
from acgs_operator.devenv import binaries, images

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
CHART_VALUES = yaml.safe_load((ROOT / "helm" / "acgs" / "values.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["operator.Dockerfile", "ray.Dockerfile"])
def test_copied_paths_exist_and_the_image_runs_as_uid_1000(name: str) -> None:
    steps = instructions(DOCKER / name)
    copies = [shlex.split(args) for word, args in steps if word == "COPY"]
    sources = [s for args in copies if not any(a.startswith("--from") for a in args) for s in args[:-1]]
    sources = [s for s in sources if not s.startswith("--")]
    assert sources, name
    for source in sources:
        assert (ROOT / source).exists(), f"{name} copies {source}, which is not in the repository"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    assert (DOCKER / f"{name}.dockerignore").is_file()


def test_operator_image_entrypoint_is_the_console_script() -> None:
    steps = instructions(DOCKER / "operator.Dockerfile")
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    assert args["BASE"] == "python:3.11-slim" and [a for w, a in steps if w == "FROM"][-1] == "${BASE}"
    entrypoint = json.loads([a for w, a in steps if w == "ENTRYPOINT"][-1])
    cmd = json.loads([a for w, a in steps if w == "CMD"][-1])
    assert entrypoint == ["acgs"] and cmd == ["operator", "run"]
    # the image's own command line parses: `docker run IMAGE` runs the operator
    parsed = cli.parser().parse_args(cmd)
    assert parsed.func is cli.cmd_operator_run
    assert PYPROJECT["project"]["scripts"]["acgs"] == "acgs_operator.cli:main"
    assert "operator" in PYPROJECT["project"]["optional-dependencies"]
    assert any('".[operator]"' in a for w, a in steps if w == "RUN")
    env = " ".join(a for w, a in steps if w == "ENV").split()
    assert {"PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp"} <= set(env)  # read-only root, /tmp mounted


def test_ray_image_matches_the_ray_version_and_carries_the_workloads() -> None:
    steps = instructions(DOCKER / "ray.Dockerfile")
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    ray = __import__("importlib.metadata").metadata.version("ray")
    assert args["RAY_VERSION"] == ray == CHART_VALUES["rayCluster"]["rayVersion"]
    assert args["PYTHON_TAG"] == "py311" and args["VARIANT"] == "cpu"
    assert args["BASE"] == "rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${VARIANT}"
    assert [a for w, a in steps if w == "FROM"] == ["${BASE}"]
    assert "workloads" in PYPROJECT["project"]["optional-dependencies"]
    runs = [a for w, a in steps if w == "RUN"]
    deps = next(a for a in runs if "tomllib" in a)
    assert shlex.split(deps)[shlex.split(deps).index("-c") + 2] == "workloads"  # the extra the layer installs
    assert '"ray[default,serve,train]==${RAY_VERSION}"' in deps  # keep the image's Ray version
    assert "--no-deps ." in runs[-1] and "import acgs_workloads" in runs[-1]
    assert "://" not in " ".join(runs), "torch comes from the configured package index unless TORCH_INDEX_URL says so"


def test_ray_image_works_on_a_base_without_the_ray_user() -> None:
    steps = instructions(DOCKER / "ray.Dockerfile")
    env = " ".join(a for w, a in steps if w == "ENV").split()
    assert "HOME=/home/ray" in env
    users = [(i, a) for i, (w, a) in enumerate(steps) if w == "USER"]
    assert [a for _, a in users] == ["root", "1000"]
    first_run = next(i for i, (w, _) in enumerate(steps) if w == "RUN")
    assert users[0][0] < first_run  # the installs run as root (pip itself drops to the prefix's owner)
    create = steps[first_run][1]
    assert "id -u 1000" in create and "|| useradd --uid 1000" in create and "chown 1000:100 /home/ray" in create
    installs = [a for w, a in steps if w == "RUN" and "pip install" in a]
    assert len(installs) == 2 and all("setpriv" in a for a in installs)


@pytest.mark.parametrize("name", ["operator.Dockerfile", "ray.Dockerfile"])
def test_dependencies_are_installed_before_the_source_is_copied(name: str) -> None:
    """Docker's cache then keeps the dependency layer (torch, ~GBs) across code changes."""
    steps = instructions(DOCKER / name)
    deps = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "tomllib" in a)
    copies = [(i, shlex.split(a)) for i, (w, a) in enumerate(steps) if w == "COPY"]
    sources = {
        i: [s for s in args[:-1] if not s.startswith("--")]
        for i, args in copies
        if not any(a.startswith("--from") for a in args)
    }
    before = [s for i, srcs in sources.items() if i < deps for s in srcs]
    after = [s for i, srcs in sources.items() if i > deps for s in srcs]
    assert before == ["pyproject.toml"]
    assert {"README.md", "operator", "workloads"} <= {s.rstrip("/").removeprefix("./") for s in after}


@pytest.mark.parametrize(("name", "extra"), [("operator.Dockerfile", "operator"), ("ray.Dockerfile", "workloads")])
def test_the_dependency_list_the_dockerfile_derives(name: str, extra: str) -> None:
    """The Dockerfile's `python -c` one-liner, run here on pyproject.toml, lists what images.requirements says."""
    deps = next(a for w, a in instructions(DOCKER / name) if w == "RUN" and "tomllib" in a)
    words = shlex.split(deps)
    code, arg = words[words.index("-c") + 1], words[words.index("-c") + 2]
    assert arg == extra
    proc = subprocess.run([sys.executable, "-c", code, arg], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == images.requirements(PYPROJECT, [extra])
    assert images.IMAGE_EXTRAS[name.split(".")[0]] == (extra,)


def test_operator_image_installs_wheels_without_an_index_in_the_final_stage() -> None:
    steps = instructions(DOCKER / "operator.Dockerfile")
    final = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    installs = [a for w, a in steps[final:] if w == "RUN" and "pip install" in a]
    assert installs and all("--no-index" in a for a in installs)
    assert any("-r /wheels/deps/requirements.txt" in a for a in installs)
    assert any("--no-deps" in a and "import acgs_operator.cli" in a for a in installs)


def test_dockerignore_files_keep_the_context_to_the_sources() -> None:
    for name in ("operator", "ray"):
        rules = images.parse_dockerignore((DOCKER / f"{name}.Dockerfile.dockerignore").read_text())
        assert not images.is_ignored("pyproject.toml", rules) and not images.is_ignored("operator/x/y.py", rules)
        assert images.is_ignored("tests/unit/x.py", rules) and images.is_ignored(".git/config", rules)


def test_chart_default_images() -> None:
    assert CHART_VALUES["operator"]["image"]["repository"] == "ghcr.io/acgs/acgs-operator"
    assert CHART_VALUES["rayCluster"]["image"]["repository"] == "ghcr.io/acgs/acgs-ray"
    assert CHART_VALUES["operator"]["image"]["tag"] == CHART_VALUES["rayCluster"]["image"]["tag"] == ""


def test_kind_config() -> None:
    config = yaml.safe_load((ROOT / "manifests" / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 1
    default_image = (
        Path.home()
        / "go"
        / "pkg"
        / "mod"
        / f"sigs.k8s.io/kind@{binaries.KIND_VERSION}"
        / "pkg"
        / "apis"
        / "config"
        / "defaults"
        / "image.go"
    )
    images = {n.get("image") for n in config["nodes"]}
    assert len(images) == 1
    if default_image.is_file():  # the module source is in the Go cache wherever kind was built here
        assert f'"{images.pop()}"' in default_image.read_text()
    ports = {m["containerPort"]: m["hostPort"] for n in config["nodes"] for m in n.get("extraPortMappings", [])}
    ray = CHART_VALUES["rayCluster"]
    assert ports == {
        ray["nodePortService"]["serve"]: ray["head"]["servePort"],
        ray["nodePortService"]["dashboard"]: ray["head"]["dashboardPort"],
    }


def test_kind_values_mount_the_artifact_directory_every_kind_node_has() -> None:
    config = yaml.safe_load((ROOT / "manifests" / "kind-config.yaml").read_text())
    mounts = {m["containerPath"] for n in config["nodes"] for m in n.get("extraMounts", [])}
    assert len(config["nodes"]) == sum(bool(n.get("extraMounts")) for n in config["nodes"])
    kind_values = yaml.safe_load((ROOT / "helm" / "acgs" / "values-kind.yaml").read_text())
    root = kind_values["operator"]["artifactRoot"]
    assert mounts == {root}
    for part in (kind_values["operator"], kind_values["rayCluster"]):
        assert {v["hostPath"]["path"] for v in part["volumes"]} == {root}
        assert {m["mountPath"] for m in part["volumeMounts"]} == {root}
