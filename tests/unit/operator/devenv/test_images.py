"""Building and loading the dev cluster's images: the pure parts and the runners with fake commands (no Docker)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest

from acgs_operator.devenv import images
from acgs_operator.devenv.binaries import BuildError
from acgs_operator.devenv.process import ServiceError

ROOT = Path(__file__).resolve().parents[4]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def completed(cmd: Sequence[str], rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(cmd), rc, out, err)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of its own, and no real docker/ctr call: every short command fails unless a test fakes it."""
    monkeypatch.setenv("ACGS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ACGS_DOCKER_BUILDKIT", raising=False)
    monkeypatch.setattr(images, "_capture", lambda cmd, timeout=60: completed(cmd, 1, err="no Docker in unit tests"))


# --- requirements ------------------------------------------------------------------------------------------------


def test_requirements_are_the_dependencies_plus_the_extra() -> None:
    project = PYPROJECT["project"]
    for extra in ("operator", "workloads"):
        assert images.requirements(PYPROJECT, [extra]) == [
            *project["dependencies"],
            *project["optional-dependencies"][extra],
        ]
    ray = images.requirements(PYPROJECT, images.IMAGE_EXTRAS["ray"])
    assert any(r.startswith("torch") for r in ray) and any(r.startswith("ray[") for r in ray)
    assert not any(r.startswith(("torch", "ray")) for r in images.requirements(PYPROJECT, ["operator"]))


def test_requirements_drop_the_project_itself_and_name_unknown_extras() -> None:
    doc = {
        "project": {
            "name": "acgs",
            "dependencies": ["pyyaml>=6"],
            "optional-dependencies": {"dev": ["acgs[operator,workloads]", "pytest>=8", "acgs-tools>=1"]},
        }
    }
    assert images.requirements(doc, ["dev"]) == ["pyyaml>=6", "pytest>=8", "acgs-tools>=1"]
    with pytest.raises(KeyError, match="no extra 'gpu'"):
        images.requirements(doc, ["gpu"])


def test_requirements_digest_changes_with_the_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    before = images.requirements_digest(tmp_path, ["workloads"])
    assert before == images.requirements_digest(ROOT, ["workloads"])
    text = (tmp_path / "pyproject.toml").read_text().replace('"torch>=2.4"', '"torch>=2.5"')
    (tmp_path / "pyproject.toml").write_text(text)
    assert images.requirements_digest(tmp_path, ["workloads"]) != before
    assert images.requirements_digest(tmp_path, ["operator"]) == images.requirements_digest(ROOT, ["operator"])


def test_deps_note_says_when_the_dependency_layer_is_rebuilt() -> None:
    assert "first build" in images.deps_note(None, "d1")
    assert "unchanged" in images.deps_note("d1", "d1")
    assert "changed" in images.deps_note("d1", "d2") and "unchanged" not in images.deps_note("d1", "d2")


def test_the_requirements_stamp_is_written_after_a_good_build(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(images, "image_id_and_size", lambda image: ("sha256:x", 10**9))

    def fail(*args: Any, **kwargs: Any) -> float:
        raise BuildError("pip failed")

    monkeypatch.setattr(images, "run_streamed", fail)
    builder = images.Builder("docker", buildkit=True)
    with pytest.raises(BuildError):
        images.build_image(ROOT, "ray", "r:1", {}, builder)
    monkeypatch.setattr(images, "run_streamed", Recorder())
    images.build_image(ROOT, "ray", "r:1", {}, builder)
    images.build_image(ROOT, "ray", "r:1", {}, builder)
    out = capsys.readouterr().out.splitlines()
    notes = [line for line in out if "building docker/ray.Dockerfile" in line]
    assert ["first build" in n for n in notes] == [True, True, False] and "unchanged" in notes[-1]


# --- .dockerignore and the context -------------------------------------------------------------------------------


def rules_of(name: str) -> list[images.IgnoreRule]:
    return images.parse_dockerignore((ROOT / "docker" / f"{name}.Dockerfile.dockerignore").read_text())


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("pyproject.toml", False),
        ("README.md", False),
        ("operator/acgs_operator/cli.py", False),
        ("workloads/acgs_workloads/train.py", False),
        ("operator/acgs_operator/__pycache__/cli.cpython-311.pyc", True),
        ("workloads/x.pyc", True),
        ("tests/unit/test_layout.py", True),
        (".git/HEAD", True),
        (".mypy_cache/3.11/x.json", True),
        ("docker/ray.Dockerfile", True),
        ("reports/x.json", True),
    ],
)
def test_dockerignore_rules_match_like_docker(path: str, ignored: bool) -> None:
    for name in ("operator", "ray"):
        assert images.is_ignored(path, rules_of(name)) is ignored, (name, path)


def test_glob_semantics() -> None:
    rules = images.parse_dockerignore("# comment\n\n*.log\n!keep.log\ndata/*/raw\n/abs\n")
    assert images.is_ignored("a.log", rules) and not images.is_ignored("keep.log", rules)
    assert not images.is_ignored("sub/a.log", rules)  # `*` stays within one path element
    assert images.is_ignored("data/x/raw/file", rules)  # a rule matching a parent matches what is below
    assert not images.is_ignored("data/x/y/raw", rules)
    assert images.is_ignored("abs", rules)


def test_context_holds_only_what_the_rules_let_through(tmp_path: Path) -> None:
    for rel in [
        "pyproject.toml",
        "README.md",
        "operator/acgs_operator/cli.py",
        "operator/acgs_operator/__pycache__/cli.cpython-311.pyc",
        "workloads/acgs_workloads/__init__.py",
        "tests/test_x.py",
        ".git/objects/ab/cdef",
        ".mypy_cache/big.json",
        "docker/ray.Dockerfile",
        "docker/other.Dockerfile",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    files = images.context_files(tmp_path, rules_of("ray"), always=["docker/ray.Dockerfile"])
    assert files == [
        "README.md",
        "docker/ray.Dockerfile",
        "operator/acgs_operator/cli.py",
        "pyproject.toml",
        "workloads/acgs_workloads/__init__.py",
    ]
    buf = io.BytesIO()
    images.write_context_tar(tmp_path, files, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == set(files)
        assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
        extracted = tar.extractfile(members["pyproject.toml"])
        assert extracted is not None and extracted.read() == b"pyproject.toml"


def test_the_repository_context_is_small() -> None:
    files = images.context_files(ROOT, rules_of("ray"), always=["docker/ray.Dockerfile"])
    assert "pyproject.toml" in files and "docker/ray.Dockerfile" in files
    assert all(f.split("/")[0] in ("operator", "workloads", "docker", "README.md", "pyproject.toml") for f in files)
    assert sum((ROOT / f).stat().st_size for f in files) < 20_000_000


# --- command lines and output parsing ----------------------------------------------------------------------------


def test_import_changes() -> None:
    changes = images.import_changes(
        env=[("PATH", "/usr/bin"), ("PIP_BREAK_SYSTEM_PACKAGES", "1")],
        labels={"io.acgs.stamp": "abc"},
        entrypoint=["/pause"],
        cmd=["bash"],
        user="65532:65532",
    )
    assert changes == [
        "--change",
        "ENV PATH=/usr/bin",
        "--change",
        "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
        "--change",
        'LABEL io.acgs.stamp="abc"',
        "--change",
        'ENTRYPOINT ["/pause"]',
        "--change",
        'CMD ["bash"]',
        "--change",
        "USER 65532:65532",
    ]
    with pytest.raises(ValueError, match="whitespace"):
        images.import_changes(env=[("A", "b c")])
    assert images.docker_import_cmd("img:1", ["--change", "CMD []"]) == [
        *("docker", "import", "--change", "CMD []", "-", "img:1")
    ]


def test_base_image_command_lines() -> None:
    cmd = images.debootstrap_cmd(Path("/r"), "http://deb.debian.org/debian")
    assert cmd[:2] == ["debootstrap", "--variant=minbase"]
    assert cmd[-3:] == ["bookworm", "/r", "http://deb.debian.org/debian"]
    included = next(c for c in cmd if c.startswith("--include=")).removeprefix("--include=").split(",")
    wanted = {"python3", "python3-pip", "python-is-python3", "python3-venv", "ca-certificates", "wget", "bash"}
    assert wanted <= set(included)
    tar = images.rootfs_tar_cmd(Path("/r"))
    assert tar[:3] == ["tar", "-C", "/r"] and tar[-2:] == ["-c", "."] and "--exclude=./proc/*" in tar
    env = dict(images.BASE_ENV)
    assert env["PIP_BREAK_SYSTEM_PACKAGES"] == "1" and "/usr/local/bin" in env["PATH"].split(":")
    changes = images.base_image_changes("s1")
    assert "ENV PIP_BREAK_SYSTEM_PACKAGES=1" in changes and f'LABEL {images.STAMP_LABEL}="s1"' in changes


def test_docker_build_command_lines() -> None:
    assert images.docker_build_cmd("docker/ray.Dockerfile", "r:1", {"BASE": "b:1"}, "/repo", buildkit=True) == [
        "docker",
        "build",
        "-f",
        "docker/ray.Dockerfile",
        "-t",
        "r:1",
        "--build-arg",
        "BASE=b:1",
        "--progress=plain",
        "/repo",
    ]
    legacy = images.docker_build_cmd("docker/ray.Dockerfile", "r:1", {}, "-", buildkit=False, client="/usr/bin/docker")
    assert legacy == ["/usr/bin/docker", "build", "-f", "docker/ray.Dockerfile", "-t", "r:1", "-"]


def test_ctr_and_go_command_lines() -> None:
    assert images.ctr_cmd(Path("/run/c.sock"), "k8s.io", "images", "import", "-") == [
        "ctr",
        "--address",
        "/run/c.sock",
        "--namespace",
        "k8s.io",
        "images",
        "import",
        "-",
    ]
    assert images.go_build_cmd(Path("/b/pause"))[:2] == ["go", "build"] and "/b/pause" in images.go_build_cmd(
        Path("/b/pause")
    )


@pytest.mark.parametrize(
    ("line", "note"),
    [
        ("Step 3/12 : COPY pyproject.toml ./", "step 3/12: COPY pyproject.toml ./"),
        ("#5 [ 2/10] RUN id -u 1000", "step 2/10: RUN id -u 1000"),
        ("#4 [build 1/8] FROM acgs.local/python:3.11-bookworm", "step 1/8: FROM acgs.local/python:3.11-bookworm"),
        ("#15 exporting to image", "exporting to image"),
        ("#9 30.0 Collecting torch", None),
        (" ---> Using cache", None),
    ],
)
def test_build_progress(line: str, note: str | None) -> None:
    assert images.build_progress(line) == note


def test_build_detail_and_debootstrap_progress() -> None:
    assert images.build_detail("#9 31.13   Downloading torch-2.9.0-cp311.whl (900 MB)") == (
        "Downloading torch-2.9.0-cp311.whl (900 MB)"
    )
    assert images.build_detail("Collecting ray[default]==2.60.0") == "Collecting ray[default]==2.60.0"
    assert images.build_detail("#9 30.0      ━━━━━━━ 84.8/84.8 kB") is None
    assert images.debootstrap_progress("I: Retrieving libc6 2.36") == "Retrieving libc6 2.36"
    assert images.debootstrap_progress("W: something") is None


def test_long_steps_are_shortened() -> None:
    note = images.build_progress("Step 5/9 : RUN " + "x" * 200)
    assert note is not None and note.endswith("...") and len(note) < 100


CTR_LS = """REF                                 TYPE                                                 DIGEST                                                                  SIZE     PLATFORMS   LABELS
acgs.local/pause:3.10               application/vnd.docker.distribution.manifest.v2+json sha256:aaaa000000000000000000000000000000000000000000000000000000000000 1.2 MiB  linux/amd64 io.cri-containerd.image=managed
docker.io/library/python:3.11       application/vnd.oci.image.index.v1+json              sha256:bbbb000000000000000000000000000000000000000000000000000000000000 40.0 MiB linux/amd64 -
"""  # noqa: E501


def test_parse_ctr_images() -> None:
    assert images.parse_ctr_images(CTR_LS) == {
        "acgs.local/pause:3.10": "sha256:aaaa" + "0" * 60,
        "docker.io/library/python:3.11": "sha256:bbbb" + "0" * 60,
    }
    assert images.parse_ctr_images("REF TYPE DIGEST SIZE PLATFORMS LABELS\n") == {}


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("acgs.local/pause:3.10", "acgs.local/pause:3.10"),
        ("ghcr.io/acgs/acgs-ray:0.1.0", "ghcr.io/acgs/acgs-ray:0.1.0"),
        ("python:3.11", "docker.io/library/python:3.11"),
        ("rayproject/ray:2.60.0", "docker.io/rayproject/ray:2.60.0"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
    ],
)
def test_normalize_ref(ref: str, full: str) -> None:
    assert images.normalize_ref(ref) == full


def test_config_digests_of_a_manifest_and_an_index() -> None:
    blobs = {
        "sha256:m1": json.dumps({"config": {"digest": "sha256:c1"}}),
        "sha256:m2": json.dumps({"config": {"digest": "sha256:c2"}}),
        "sha256:idx": json.dumps({"manifests": [{"digest": "sha256:m1"}, {"digest": "sha256:m2"}, {"digest": "x"}]}),
    }

    def fetch(digest: str) -> str:
        return blobs[digest]

    assert images.config_digests("sha256:m1", fetch) == {"sha256:c1"}
    assert images.config_digests("sha256:idx", fetch) == {"sha256:c1", "sha256:c2"}


def test_client_major_version() -> None:
    assert images.client_major_version("20.10.24+dfsg1\n") == 20
    assert images.client_major_version("28.2.2") == 28
    assert images.client_major_version("") is None


# --- stamps ------------------------------------------------------------------------------------------------------


def test_base_stamps_follow_the_package_list_and_the_certificates(tmp_path: Path) -> None:
    ca = tmp_path / "proxy.crt"
    ca.write_text("CERT 1")
    stamp = images.base_image_stamp(images.BASE_PACKAGES, [ca])
    assert stamp == images.base_image_stamp(tuple(reversed(images.BASE_PACKAGES)), [ca])  # order does not matter
    assert stamp != images.base_image_stamp((*images.BASE_PACKAGES, "git"), [ca])
    assert images.base_rootfs_stamp() != images.base_rootfs_stamp((*images.BASE_PACKAGES, "git"))
    ca.write_text("CERT 2")
    assert stamp != images.base_image_stamp(images.BASE_PACKAGES, [ca])


def test_binary_image_stamp_and_pause_stamp(tmp_path: Path) -> None:
    a = images.binary_image_stamp("sha-a", "coredns", None, "ca")
    assert a == images.binary_image_stamp("sha-a", "coredns", None, "ca")
    assert a != images.binary_image_stamp("sha-b", "coredns", None, "ca")
    assert a != images.binary_image_stamp("sha-a", "manager", None, "ca")
    assert a != images.binary_image_stamp("sha-a", "coredns", "65532", "ca")
    src = tmp_path / "pause"
    src.mkdir()
    (src / "main.go").write_text("package main\n")
    (src / "go.mod").write_text("module x\n")
    (src / "README").write_text("ignored\n")
    first = images.pause_stamp(src, "go1.26")
    (src / "README").write_text("still ignored\n")
    assert images.pause_stamp(src, "go1.26") == first
    assert images.pause_stamp(src, "go1.27") != first
    (src / "main.go").write_text("package main\n// changed\n")
    assert images.pause_stamp(src, "go1.26") != first


def test_the_pause_source_is_a_module_of_its_own() -> None:
    assert (images.PAUSE_SOURCE / "go.mod").read_text().startswith("module ")
    main = (images.PAUSE_SOURCE / "main.go").read_text()
    assert "package main" in main and "SIGTERM" in main and "SIGCHLD" in main and "Wait4" in main


def test_binary_rootfs(tmp_path: Path) -> None:
    binary = tmp_path / "coredns"
    binary.write_bytes(b"\x7fELF...")
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    buf = io.BytesIO()
    images.write_binary_rootfs(buf, images.binary_rootfs_entries(binary, "coredns", bundle))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["coredns"].mode == 0o755 and members["coredns"].size == len(b"\x7fELF...")
        assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
        assert members["home/nonroot"].uid == 65532 and members["coredns"].uid == 0
        passwd = tar.extractfile(members["etc/passwd"])
        assert passwd is not None and b"nonroot:x:65532:65532" in passwd.read()
        assert "etc/ssl/certs/ca-certificates.crt" in members
    no_ca = [path for path, _, _, _ in images.binary_rootfs_entries(binary, "manager", None)]
    assert "etc/ssl/certs/ca-certificates.crt" not in no_ca and no_ca[-1] == "manager"


# --- runners -----------------------------------------------------------------------------------------------------


def test_run_streamed_logs_output_and_reports_failures(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    seconds = images.run_streamed(["sh", "-c", "echo 'Step 1/2 : FROM x'; echo done"], log, "demo")
    assert seconds >= 0 and "Step 1/2 : FROM x" in log.read_text() and "$ sh -c" in log.read_text()
    with pytest.raises(BuildError) as info:
        images.run_streamed(["sh", "-c", "echo the reason; exit 3"], log, "failing step")
    assert "failing step failed (exit 3)" in str(info.value) and "the reason" in str(info.value)
    assert str(log) in str(info.value)
    with pytest.raises(ServiceError, match="not installed"):
        images.run_streamed(["no-such-program-acgs"], log, "missing", error=ServiceError)


def test_run_streamed_pipes_and_feeds(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    images.run_streamed(["wc", "-c"], log, "pipe", upstream=["printf", "12345"])
    assert log.read_text().splitlines()[-1].strip() == "5"

    def feed(out: IO[bytes]) -> None:
        out.write(b"x" * 100_000)

    images.run_streamed(["wc", "-c"], log, "feed", feed=feed)
    assert log.read_text().splitlines()[-1].strip() == "100000"
    with pytest.raises(BuildError, match="upstream exit 1"):
        images.run_streamed(["cat"], log, "bad upstream", upstream=["sh", "-c", "exit 1"])

    def broken(out: IO[bytes]) -> None:
        out.write(b"partial")
        raise FileNotFoundError("operator/gone.py")

    with pytest.raises(BuildError, match="while writing the input"):
        images.run_streamed(["cat"], log, "vanished file", feed=broken)
    images.run_streamed(["true"], log, "consumer ignores its input", feed=feed)  # a closed pipe is no error


def test_run_streamed_prints_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(images, "PROGRESS_INTERVAL", 0.05)
    monkeypatch.setattr(images._Ticker.__init__, "__defaults__", (0.05,))
    images.run_streamed(
        ["sh", "-c", "echo 'Step 2/5 : RUN pip install'; echo 'Collecting torch'; sleep 0.4"],
        tmp_path / "x.log",
        "build ray",
        progress=images.build_progress,
        detail=images.build_detail,
    )
    out = capsys.readouterr().out
    assert "[acgs images]   build ray: step 2/5: RUN pip install [Collecting torch] (" in out


# --- Docker and the builders, faked ------------------------------------------------------------------------------


def test_ensure_docker_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    which: dict[str, str | None] = {"docker": None, "dockerd": None}
    monkeypatch.setattr(images.shutil, "which", lambda name: which.get(name))
    with pytest.raises(ServiceError, match=re.escape("apt-get install docker.io")):
        images.ensure_docker()
    which["docker"] = "/usr/bin/docker"
    monkeypatch.setattr(images, "_docker_answers", lambda: True)
    images.ensure_docker()  # docker info works: nothing else happens
    monkeypatch.setattr(images, "_docker_answers", lambda: False)
    with pytest.raises(ServiceError, match=re.escape("dockerd > /tmp/dockerd.log 2>&1 &")):
        images.ensure_docker(start=False)
    with pytest.raises(ServiceError, match=re.escape("apt-get install docker.io")):
        images.ensure_docker()
    which["dockerd"] = "/usr/sbin/dockerd"
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceError, match="only root can start it"):
        images.ensure_docker()


def test_ensure_docker_starts_dockerd_and_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho fake dockerd started\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setattr(images.shutil, "which", lambda name: str(fake) if name == "dockerd" else "/usr/bin/docker")
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    answers = iter([False, False, True])
    monkeypatch.setattr(images, "_docker_answers", lambda: next(answers))
    started: list[images.ManagedProcess] = []
    real_start = images.ManagedProcess.start

    def start(self: images.ManagedProcess) -> images.ManagedProcess:
        started.append(self)
        return real_start(self)

    monkeypatch.setattr(images.ManagedProcess, "start", start)
    try:
        images.ensure_docker()
        assert started and started[0].log == tmp_path / "cache" / "logs" / "dockerd.log"
    finally:
        for proc in started:
            proc.stop(grace=1)


def test_ensure_docker_reports_a_dying_dockerd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho cannot start: no cgroups\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(images.shutil, "which", lambda name: str(fake) if name == "dockerd" else "/usr/bin/docker")
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images, "_docker_answers", lambda: False)
    with pytest.raises(ServiceError, match="dockerd exited with code 1") as info:
        images.ensure_docker()
    assert "no cgroups" in str(info.value) and "dockerd.log" in str(info.value)


def fake_capture(
    answers: dict[tuple[str, ...], subprocess.CompletedProcess[str]], calls: list[list[str]]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        calls.append(list(cmd))
        for prefix, answer in answers.items():
            if tuple(cmd[: len(prefix)]) == prefix:
                return answer
        return completed(cmd, 1, err="unexpected command")

    return run


def test_builder_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    answers: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {
        ("/usr/local/bin/docker", "buildx"): completed([], 1),
        ("/usr/local/bin/docker", "version"): completed([], 0, "28.2.2\n"),
        ("/usr/bin/docker", "buildx"): completed([], 1),
        ("/usr/bin/docker", "version"): completed([], 0, "20.10.24+dfsg1\n"),
    }
    monkeypatch.setattr(images, "_capture", fake_capture(answers, calls))
    monkeypatch.setattr(images, "_docker_clients", lambda: ["/usr/local/bin/docker", "/usr/bin/docker"])
    assert images.choose_builder() == images.Builder("/usr/bin/docker", buildkit=True)
    monkeypatch.setenv("ACGS_DOCKER_BUILDKIT", "0")
    assert images.choose_builder() == images.Builder("/usr/local/bin/docker", buildkit=False)
    monkeypatch.delenv("ACGS_DOCKER_BUILDKIT")
    monkeypatch.setattr(images, "_docker_clients", lambda: ["/usr/local/bin/docker"])
    assert images.choose_builder() == images.Builder("/usr/local/bin/docker", buildkit=False)
    monkeypatch.setenv("ACGS_DOCKER_BUILDKIT", "1")
    with pytest.raises(BuildError, match="buildx"):
        images.choose_builder()
    answers[("/usr/local/bin/docker", "buildx")] = completed([], 0, "github.com/docker/buildx v0.20")
    assert images.choose_builder() == images.Builder("/usr/local/bin/docker", buildkit=True)


def test_docker_clients_lists_each_docker_on_path_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "docker").write_text("#!/bin/sh\n")
        (tmp_path / d / "docker").chmod(0o755)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "docker").symlink_to(tmp_path / "a" / "docker")
    monkeypatch.setenv("PATH", os.pathsep.join(str(tmp_path / d) for d in ("a", "c", "b")))
    assert images._docker_clients() == [str(tmp_path / "a" / "docker"), str(tmp_path / "b" / "docker")]


class Recorder:
    """Stands in for run_streamed: records each call and runs the feed into a buffer."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, cmd: Sequence[str], log: Path, label: str, **kwargs: Any) -> float:
        fed = io.BytesIO()
        if kwargs.get("feed") is not None:
            kwargs["feed"](fed)
        self.calls.append({"cmd": list(cmd), "log": log, "label": label, "fed": fed.getvalue(), **kwargs})
        return 1.0


def test_build_acgs_images_with_buildkit_and_without(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(images, "run_streamed", recorder)
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    monkeypatch.setattr(images, "image_labels", lambda image: {})
    monkeypatch.setattr(images, "image_id_and_size", lambda image: ("sha256:x", 10**9))
    monkeypatch.setattr(images, "choose_builder", lambda: images.Builder("docker", buildkit=True))
    built = images.build_acgs_images(ROOT, "0.1.0")
    assert built == {"operator": "ghcr.io/acgs/acgs-operator:0.1.0", "ray": "ghcr.io/acgs/acgs-ray:0.1.0"}
    operator, ray = recorder.calls
    assert operator["cmd"][-1] == str(ROOT) and operator["env"] == {"DOCKER_BUILDKIT": "1"}
    assert "--build-arg" in ray["cmd"] and f"BASE={images.BASE_IMAGE}" in ray["cmd"]
    assert ray["cmd"][ray["cmd"].index("-f") + 1] == "docker/ray.Dockerfile"

    recorder.calls.clear()
    monkeypatch.setattr(images, "choose_builder", lambda: images.Builder("docker", buildkit=False))
    images.build_acgs_images(ROOT, "dev", base="python:3.11-slim")
    operator, ray = recorder.calls
    assert ray["cmd"][-1] == "-" and ray["env"] == {"DOCKER_BUILDKIT": "0"} and "BASE=python:3.11-slim" in ray["cmd"]
    with tarfile.open(fileobj=io.BytesIO(ray["fed"])) as tar:
        names = set(tar.getnames())
    assert {"docker/ray.Dockerfile", "pyproject.toml", "README.md", "operator/acgs_operator/cli.py"} <= names
    assert not any(n.startswith(("tests/", ".git/")) or "__pycache__" in n for n in names)


def test_build_acgs_images_wants_the_local_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    monkeypatch.setattr(images, "image_labels", lambda image: None)
    with pytest.raises(BuildError, match="ensure_base_image"):
        images.build_acgs_images(ROOT, "0.1.0")


def test_base_image_is_skipped_while_its_stamp_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    monkeypatch.setattr(images, "image_labels", lambda image: {images.STAMP_LABEL: images.base_image_stamp()})
    monkeypatch.setattr(images, "_debootstrap", lambda rootfs: pytest.fail("debootstrap ran"))
    assert images.ensure_base_image() == images.BASE_IMAGE


def test_base_image_needs_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(ServiceError, match=re.escape("apt-get install debootstrap")):
        images._debootstrap(tmp_path / "rootfs")


def test_base_image_reuses_a_fresh_rootfs(monkeypatch: pytest.MonkeyPatch) -> None:
    rootfs = images.images_dir() / "rootfs-bookworm"
    (rootfs / "etc/ssl/certs").mkdir(parents=True)
    images._rootfs_stamp_file(rootfs).write_text(images.base_rootfs_stamp() + "\n")
    recorder = Recorder()
    monkeypatch.setattr(images, "run_streamed", recorder)
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    monkeypatch.setattr(images, "image_labels", lambda image: None)
    monkeypatch.setattr(images, "image_id_and_size", lambda image: ("sha256:x", 10**8))
    monkeypatch.setattr(images, "host_ca_files", lambda: [])
    monkeypatch.setattr(images, "_debootstrap", lambda rootfs: pytest.fail("debootstrap ran"))
    assert images.ensure_base_image() == images.BASE_IMAGE
    (call,) = recorder.calls
    assert call["upstream"] == images.rootfs_tar_cmd(rootfs)
    assert call["cmd"][:2] == ["docker", "import"] and call["cmd"][-2:] == ["-", images.BASE_IMAGE]


def test_clean_rootfs(tmp_path: Path) -> None:
    for rel in [
        "var/cache/apt/archives/libc6.deb",
        "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
        "usr/share/doc/bash/copyright",
        "var/cache/debconf/config.dat",
        "var/cache/debconf/config.dat-old",
        "var/log/apt/term.log",
        "etc/resolv.conf",
        "usr/bin/python3",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("content")
    images._clean_rootfs(tmp_path)
    assert not (tmp_path / "var/cache/apt/archives/libc6.deb").exists()
    assert (tmp_path / "var/cache/apt/archives/partial").is_dir() and (tmp_path / "var/lib/apt/lists/partial").is_dir()
    assert not list((tmp_path / "usr/share/doc").iterdir())
    assert (tmp_path / "var/cache/debconf/config.dat").read_text() == "content"  # debconf's database stays
    assert not (tmp_path / "var/cache/debconf/config.dat-old").exists()
    assert (tmp_path / "var/log/apt/term.log").read_text() == ""
    assert (tmp_path / "etc/resolv.conf").read_text() == ""
    assert (tmp_path / "usr/bin/python3").read_text() == "content"


def test_binary_image_builds_once_per_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "coredns"
    binary.write_bytes(b"binary v1")
    labels: dict[str, dict[str, str]] = {}
    recorder = Recorder()

    def run(cmd: Sequence[str], log: Path, label: str, **kwargs: Any) -> float:
        recorder(cmd, log, label, **kwargs)
        stamp = next(c for c in cmd if c.startswith(f"LABEL {images.STAMP_LABEL}="))
        labels[cmd[-1]] = {images.STAMP_LABEL: json.loads(stamp.split("=", 1)[1])}
        return 0.5

    monkeypatch.setattr(images, "run_streamed", run)
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    monkeypatch.setattr(images, "image_labels", lambda image: labels.get(image))
    assert images.binary_image("acgs.local/coredns:v1", binary, "coredns") == "acgs.local/coredns:v1"
    images.binary_image("acgs.local/coredns:v1", binary, "coredns")
    assert len(recorder.calls) == 1
    (call,) = recorder.calls
    assert 'ENTRYPOINT ["/coredns"]' in call["cmd"] and not any(c.startswith("USER") for c in call["cmd"])
    assert f"LABEL {images.BINARY_LABEL}=" in " ".join(call["cmd"])
    with tarfile.open(fileobj=io.BytesIO(call["fed"])) as tar:
        member = tar.extractfile("coredns")
        assert member is not None and member.read() == b"binary v1"
    binary.write_bytes(b"binary v2")
    images.binary_image("acgs.local/coredns:v1", binary, "coredns")
    assert len(recorder.calls) == 2
    with pytest.raises(BuildError, match="does not exist"):
        images.binary_image("acgs.local/x:1", tmp_path / "missing", "x")


def test_load_into_containerd_skips_what_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "containerd.sock"
    sock.write_text("")
    ctr = ("ctr", "--address", str(sock), "--namespace", "k8s.io")
    calls: list[list[str]] = []
    answers = {
        (*ctr, "images", "ls"): completed([], 0, CTR_LS),
        (*ctr, "content", "get", "sha256:aaaa" + "0" * 60): completed(
            [], 0, json.dumps({"config": {"digest": "sha256:pauseid"}})
        ),
        (*ctr, "images", "label"): completed([], 0, "labelled"),
        (*ctr, "containers", "ls"): completed([], 0, "CONTAINER IMAGE RUNTIME\n"),
        ("docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}", images.PAUSE_IMAGE): completed(
            [], 0, "sha256:pauseid 700000\n"
        ),
        ("docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}", "ghcr.io/acgs/acgs-ray:0.1.0"): completed(
            [], 0, "sha256:rayid 9000000000\n"
        ),
    }
    monkeypatch.setattr(images, "_capture", fake_capture(answers, calls))
    monkeypatch.setattr(images.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    recorder = Recorder()

    def import_ray(*args: Any, **kwargs: Any) -> float:
        answers[(*ctr, "images", "ls")] = completed([], 0, CTR_LS + RAY_LINE)
        return recorder(*args, **kwargs)

    monkeypatch.setattr(images, "run_streamed", import_ray)
    images.load_into_containerd([images.PAUSE_IMAGE, "ghcr.io/acgs/acgs-ray:0.1.0"], sock)
    (load,) = recorder.calls
    assert load["upstream"] == ["docker", "save", "ghcr.io/acgs/acgs-ray:0.1.0"]
    assert load["cmd"] == [*ctr, "images", "import", "-"] and load["error"] is ServiceError
    assert [*ctr, "images", "label", "ghcr.io/acgs/acgs-ray:0.1.0", images.PINNED_LABEL] in calls


RAY_LINE = (
    "ghcr.io/acgs/acgs-ray:0.1.0 application/vnd.docker.distribution.manifest.v2+json sha256:new 6.2 GiB "
    "linux/amd64 io.cri-containerd.image=managed\n"
)


def test_unneeded_refs_are_id_records_left_by_a_moved_name_and_what_is_replaced() -> None:
    listing = {
        "ghcr.io/acgs/acgs-ray:0.1.0": "sha256:m3",
        "sha256:c3": "sha256:m3",
        "sha256:c2": "sha256:m2",  # the ID record of the version before: nothing names it
        "sha256:c1": "sha256:m1",  # older still, but a container runs it
        "acgs.local/pause:3.10": "sha256:p",
        "sha256:cp": "sha256:p",
    }
    assert images.unneeded_refs(listing, {"sha256:c1"}) == ["sha256:c2"]
    assert images.unneeded_refs(listing, set()) == ["sha256:c1", "sha256:c2"]
    # about to import the Ray image again: its current version goes too, both records
    replacing = images.unneeded_refs(listing, {"sha256:c1"}, replacing="ghcr.io/acgs/acgs-ray:0.1.0")
    assert replacing == ["ghcr.io/acgs/acgs-ray:0.1.0", "sha256:c2", "sha256:c3"]
    # ... unless a container uses it, by name as kubelet's containers do
    assert images.unneeded_refs(listing, {"ghcr.io/acgs/acgs-ray:0.1.0"}, "ghcr.io/acgs/acgs-ray:0.1.0") == [
        "sha256:c1",
        "sha256:c2",
    ]
    # or another name points at it
    both = {**listing, "ghcr.io/acgs/acgs-ray:latest": "sha256:m3"}
    assert "sha256:c3" not in images.unneeded_refs(both, set(), replacing="ghcr.io/acgs/acgs-ray:0.1.0")


def test_parse_ctr_container_images() -> None:
    text = "CONTAINER    IMAGE    RUNTIME\nabc    acgs.local/pause:3.10    io.containerd.runc.v2\n"
    assert images.parse_ctr_container_images(text) == {"acgs.local/pause:3.10"}
    assert images.parse_ctr_container_images("CONTAINER    IMAGE    RUNTIME\n") == set()


def test_disk_shortfall_counts_the_snapshot_and_the_kubelets_reserve() -> None:
    gb = 10**9
    assert images.disk_shortfall(free=30 * gb, total=100 * gb, size=6 * gb, reserve_fraction=0.03) == 0
    # 6 GB of image needs about 13.2 GB, and 3 GB must stay free for the kubelet
    missing = images.disk_shortfall(free=12 * gb, total=100 * gb, size=6 * gb, reserve_fraction=0.03)
    assert missing == int(6 * gb * images.LOAD_SPACE_FACTOR) + 3 * gb - 12 * gb


class FakeContainerd:
    """``ctr`` for load_into_containerd: image records that imports and removals change."""

    def __init__(self, sock: Path, listing: dict[str, str], containers: Sequence[str] = ()) -> None:
        self.prefix = ("ctr", "--address", str(sock), "--namespace", "k8s.io")
        self.listing = dict(listing)
        self.containers = list(containers)
        self.removed: list[str] = []
        self.calls: list[list[str]] = []

    def capture(self, cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        args = tuple(cmd[len(self.prefix) :])
        if args == ("images", "ls"):
            lines = [f"{ref} manifest {digest} 1 MiB linux/amd64 -" for ref, digest in self.listing.items()]
            return completed(cmd, 0, "\n".join(["REF TYPE DIGEST SIZE PLATFORMS LABELS", *lines]) + "\n")
        if args == ("containers", "ls"):
            return completed(cmd, 0, "\n".join(["CONTAINER IMAGE RUNTIME", *(f"c {i} runc" for i in self.containers)]))
        if args[:3] == ("images", "rm", "--sync"):
            for ref in args[3:]:
                self.listing.pop(ref)
                self.removed.append(ref)
            return completed(cmd, 0)
        if args[:2] == ("images", "label"):
            return completed(cmd, 0)
        if args[:2] == ("content", "get"):
            return completed(cmd, 0, json.dumps({"config": {"digest": args[2].replace("sha256:m", "sha256:c")}}))
        if tuple(cmd[:5]) == ("docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}"):
            return completed(cmd, 0, "sha256:c9 6000000000\n")
        return completed(cmd, 1, err="unexpected command")

    def importer(self, ref: str, keep: bool = True) -> Callable[..., float]:
        def load(*args: Any, **kwargs: Any) -> float:
            if keep:
                self.listing[ref] = "sha256:m9"
                self.listing["sha256:c9"] = "sha256:m9"
            return 1.0

        return load


def _fake_containerd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listing: dict[str, str], containers: Sequence[str] = ()
) -> tuple[Path, FakeContainerd]:
    sock = tmp_path / "containerd.sock"
    sock.write_text("")
    fake = FakeContainerd(sock, listing, containers)
    monkeypatch.setattr(images, "_capture", fake.capture)
    monkeypatch.setattr(images.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(images, "ensure_docker", lambda start=True: None)
    return sock, fake


RAY = "ghcr.io/acgs/acgs-ray:0.1.0"
OLD_RAY = {RAY: "sha256:m2", "sha256:c2": "sha256:m2", "sha256:c1": "sha256:m1"}


def test_load_into_containerd_removes_old_versions_before_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, fake = _fake_containerd(tmp_path, monkeypatch, OLD_RAY)
    monkeypatch.setattr(images, "run_streamed", fake.importer(RAY))
    images.load_into_containerd([RAY], sock)
    assert fake.removed == ["sha256:c1", RAY, "sha256:c2"]  # what nothing named, then what the import replaces
    assert fake.listing == {RAY: "sha256:m9", "sha256:c9": "sha256:m9"}


def test_load_into_containerd_keeps_a_version_a_container_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock, fake = _fake_containerd(tmp_path, monkeypatch, OLD_RAY, containers=[RAY])
    monkeypatch.setattr(images, "run_streamed", fake.importer(RAY))
    images.load_into_containerd([RAY], sock)
    assert fake.removed == ["sha256:c1"]
    assert fake.listing["sha256:c2"] == "sha256:m2"


def test_load_into_containerd_refuses_without_room_and_says_how_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, fake = _fake_containerd(tmp_path, monkeypatch, {})
    monkeypatch.setattr(images, "run_streamed", fake.importer(RAY))
    monkeypatch.setattr(images.shutil, "disk_usage", lambda path: SimpleNamespace(total=100 * 10**9, free=10 * 10**9))
    with pytest.raises(ServiceError, match=r"acgs-ray:0.1.0 \(6.0 GB\).* 10.0 GB free of 100.0 GB.*free 6.2 GB more"):
        images.load_into_containerd([RAY], sock, disk=tmp_path, reserve_fraction=0.03)
    assert not fake.listing  # nothing was imported


def test_load_into_containerd_fails_when_an_image_left_while_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, fake = _fake_containerd(tmp_path, monkeypatch, {})
    monkeypatch.setattr(images, "run_streamed", fake.importer(RAY, keep=False))
    with pytest.raises(
        ServiceError, match=r"acgs-ray:0\.1\.0 left containerd while the images loaded.*cannot be pulled"
    ):
        images.load_into_containerd([RAY], sock)


def test_load_into_containerd_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(ServiceError, match=re.escape("apt-get install containerd")):
        images.load_into_containerd([images.PAUSE_IMAGE], tmp_path / "c.sock")
    monkeypatch.setattr(images.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(ServiceError, match="is the node's containerd running"):
        images.load_into_containerd([images.PAUSE_IMAGE], tmp_path / "c.sock")
