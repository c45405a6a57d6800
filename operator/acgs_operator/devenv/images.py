"""Build every container image the single-node dev cluster runs, from nothing, and load them into containerd.

No image registry is reachable here, so nothing is pulled:

* the base image (``BASE_IMAGE``): Debian bookworm from ``debootstrap`` (the Debian mirror is reachable), with
  Python 3.11, pip, the host's CA certificates (pip then reaches PyPI through this machine's proxy) and the
  tools KubeRay's probes use (bash, wget), imported with ``docker import``;
* the ACGS operator and Ray images: ``docker/operator.Dockerfile`` and ``docker/ray.Dockerfile`` with
  ``--build-arg BASE=<the base image>``;
* the pod sandbox image (``PAUSE_IMAGE``): ``hack/pause`` compiled with Go into an image holding ``/pause``;
* CoreDNS and the KubeRay operator: a static binary (built by ``binaries.py``) in an otherwise empty image.

Every step is cached: an image carries a label with a hash of what it was made from and is not rebuilt while
that hash matches; Docker's layer cache makes a rebuild of the ACGS images after a code change fast (the
Dockerfiles install the dependencies from ``pyproject.toml`` before they copy the source). Loading into
containerd skips an image whose config digest there is already the Docker image ID.

``docker build`` uses BuildKit when some ``docker`` client on PATH can (the buildx plugin, or a client older
than 23 with BuildKit built in: Debian's docker.io 20.10 at /usr/bin/docker); BuildKit reads
``docker/<name>.Dockerfile.dockerignore``. Otherwise the classic builder gets a tar of only what those rules let
through on stdin (it reads no per-Dockerfile ignore file). ``ACGS_DOCKER_BUILDKIT=0|1`` forces the choice.

Command lines are built by small pure functions (``*_cmd``) and run by a few runners below them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from acgs_operator.devenv.binaries import BuildError, bin_dir, cache_dir
from acgs_operator.devenv.process import ManagedProcess, ServiceError, wait_until

BASE_IMAGE = "acgs.local/python:3.11-bookworm"
PAUSE_IMAGE = "acgs.local/pause:3.10"
OPERATOR_REPOSITORY = "ghcr.io/acgs/acgs-operator"
RAY_REPOSITORY = "ghcr.io/acgs/acgs-ray"

REPO_ROOT = Path(__file__).resolve().parents[3]
PAUSE_SOURCE = REPO_ROOT / "hack" / "pause"

DEBIAN_SUITE = "bookworm"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What the base image holds besides Debian's minimal system. KubeRay's probes run `bash -c ... wget ...`.
BASE_PACKAGES = (
    "python3",
    "python3-pip",
    "python-is-python3",
    "python3-venv",
    "ca-certificates",
    "wget",
    "curl",
    "bash",
    "procps",
    "iproute2",
)
# Bump when the way the base image is made changes (cleanup, environment, certificates).
BASE_RECIPE_VERSION = "1"
BASE_ENV: tuple[tuple[str, str], ...] = (
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LANG", "C.UTF-8"),
    # Debian marks its Python externally managed (PEP 668); images built on this one pip-install into
    # /usr/local, which is on the PATH of login shells too (KubeRay runs `bash -lc`).
    ("PIP_BREAK_SYSTEM_PACKAGES", "1"),
)
# Left in the rootfs by debootstrap and apt, not needed in an image: the contents of these directories go
# (the directories stay), and these files go. Logs are truncated, not removed.
BASE_CLEANUP_DIRS = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
)
BASE_CLEANUP_FILES = (
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
)
# Bump when the layout of binary images (the files beside the binary) changes.
BINARY_IMAGE_VERSION = "2"

STAMP_LABEL = "io.acgs.stamp"
BINARY_LABEL = "io.acgs.binary.sha256"
# kubelet's image garbage collection keeps pinned images, but not its reclaim under disk pressure: that removed
# the labelled pause and CoreDNS images here (containerd issue 10270), so free disk space is what keeps them.
PINNED_LABEL = "io.cri-containerd.pinned=pinned"
# Loading an image into containerd needs its content and its unpacked snapshot: about twice its size.
LOAD_SPACE_FACTOR = 2.2

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")

PROGRESS_INTERVAL = 15.0

# Which dependency list each Dockerfile installs before it copies the source (pyproject extras).
IMAGE_EXTRAS = {"operator": ("operator",), "ray": ("workloads",)}


def _log(msg: str) -> None:
    print(f"[acgs images] {msg}", flush=True)


def images_dir() -> Path:
    return cache_dir() / "images"


def logs_dir() -> Path:
    return cache_dir() / "logs"


def debian_mirror() -> str:
    return os.environ.get("ACGS_DEBIAN_MIRROR", DEFAULT_DEBIAN_MIRROR)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp_of(*parts: object) -> str:
    """A short hash of everything an artifact is made from."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- requirements: what the Dockerfiles install before copying the source ---------------------------------------


def requirements(pyproject: Mapping[str, object], extras: Iterable[str]) -> list[str]:
    """``[project].dependencies`` plus each extra's list, as the Dockerfiles derive it with ``tomllib``.

    A requirement naming the project itself (``acgs[...]``) is dropped: the project is installed afterwards.
    """
    project = pyproject["project"]
    assert isinstance(project, dict)
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra {extra!r} (extras: {', '.join(sorted(optional))})")
        out += optional[extra]
    own = re.compile(rf"^{re.escape(project['name'])}\s*(\[|$|[<>=!~;])", re.I)
    return [r for r in out if not own.match(r)]


def requirements_digest(repo_root: Path, extras: Iterable[str]) -> str:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    return stamp_of(requirements(pyproject, extras))


# --- .dockerignore and the build context -------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    regex: re.Pattern[str]
    negated: bool


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``**`` any number of directories, ``*`` and ``?`` within one path element."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


def parse_dockerignore(text: str) -> list[IgnoreRule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append(IgnoreRule(pattern, _glob_to_regex(pattern), negated))
    return rules


def is_ignored(path: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether Docker leaves ``path`` (relative, ``/``-separated) out of the context: the last matching rule wins,
    and a rule matching a parent directory matches everything below it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.regex.match(p) for p in prefixes):
            ignored = not rule.negated
    return ignored


def context_files(root: Path, rules: Sequence[IgnoreRule], always: Iterable[str] = ()) -> list[str]:
    """The files (relative paths) a build context holds under ``rules``, plus ``always`` (the Dockerfile)."""
    negations = [r.pattern for r in rules if r.negated]
    files: set[str] = set(always)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        kept = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            # an ignored directory is skipped unless a negation could re-include something below it
            if is_ignored(rel, rules) and not any(_may_reach(n, rel) for n in negations):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not is_ignored(rel, rules):
                files.add(rel)
    return sorted(files)


def _may_reach(pattern: str, directory: str) -> bool:
    """Whether a negation ``pattern`` could match something inside ``directory``."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return literal.startswith(directory + "/") or (directory + "/").startswith(literal) or literal == ""


def write_context_tar(root: Path, files: Iterable[str], out: IO[bytes]) -> None:
    """A build context as a tar stream: owner root, original modes and mtimes (Docker's cache ignores mtimes).

    The docker client peeks at the first 512 bytes to tell a tar from a Dockerfile, so the first header must
    be a plain one: GNU format with whole-second mtimes (no PAX record), a short name first (no long-name entry).
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for rel in sorted(files, key=lambda name: (len(name.encode()) >= 100, name)):
            info = tar.gettarinfo(str(root / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = int(info.mtime)
            if info.isreg():
                with (root / rel).open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


# --- command lines -----------------------------------------------------------------------------------------------


def docker_cmd(*args: str, client: str = "docker") -> list[str]:
    return [client, *args]


def import_changes(
    *,
    env: Sequence[tuple[str, str]] = (),
    labels: Mapping[str, str] | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
) -> list[str]:
    """``--change`` arguments of ``docker import``."""
    out: list[str] = []
    for key, value in env:
        if re.search(r"\s", value):
            raise ValueError(f"ENV {key}: values with whitespace are not supported here: {value!r}")
        out += ["--change", f"ENV {key}={value}"]
    for key, value in sorted((labels or {}).items()):
        out += ["--change", f"LABEL {key}={json.dumps(value)}"]
    if entrypoint is not None:
        out += ["--change", f"ENTRYPOINT {json.dumps(list(entrypoint))}"]
    if cmd is not None:
        out += ["--change", f"CMD {json.dumps(list(cmd))}"]
    if user is not None:
        out += ["--change", f"USER {user}"]
    if workdir is not None:
        out += ["--change", f"WORKDIR {workdir}"]
    return out


def docker_import_cmd(image: str, changes: Sequence[str], client: str = "docker") -> list[str]:
    return [client, "import", *changes, "-", image]


def debootstrap_cmd(target: Path, mirror: str, packages: Sequence[str] = BASE_PACKAGES) -> list[str]:
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        "--components=main",
        DEBIAN_SUITE,
        str(target),
        mirror,
    ]


def rootfs_tar_cmd(rootfs: Path) -> list[str]:
    # /dev, /proc and /sys are the runtime's; keep the directories, not what debootstrap left in them
    return [
        "tar",
        "-C",
        str(rootfs),
        "--numeric-owner",
        "--exclude=./dev/*",
        "--exclude=./proc/*",
        "--exclude=./sys/*",
        "-c",
        ".",
    ]


def docker_build_cmd(
    dockerfile: str,
    tag: str,
    build_args: Mapping[str, str],
    context: str,
    *,
    buildkit: bool,
    client: str = "docker",
) -> list[str]:
    """``docker build``; ``context`` is a directory, or ``-`` for a tar stream on stdin (``dockerfile`` inside it)."""
    cmd = [client, "build", "-f", dockerfile, "-t", tag]
    for key, value in build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if buildkit:
        cmd += ["--progress=plain"]
    return [*cmd, context]


def ctr_cmd(address: Path, namespace: str, *args: str) -> list[str]:
    return ["ctr", "--address", str(address), "--namespace", namespace, *args]


def go_build_cmd(output: Path) -> list[str]:
    return ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(output), "."]


# --- output parsing ----------------------------------------------------------------------------------------------

_LEGACY_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
_BUILDKIT_EXPORT = re.compile(r"^#\d+ (exporting to image)$")
_BUILDKIT_STEP = re.compile(r"^#\d+ \[(?:[\w.-]+ )? *(\d+)/(\d+)\] (.*)")


def build_progress(line: str) -> str | None:
    """``step N/M: INSTRUCTION`` from a line of ``docker build`` output (classic or BuildKit plain)."""
    if export := _BUILDKIT_EXPORT.match(line):
        return export.group(1)
    match = _LEGACY_STEP.match(line) or _BUILDKIT_STEP.match(line)
    if match is None:
        return None
    step, total, what = match.groups()
    what = what.strip()
    return f"step {step}/{total}: {what[:70]}{'...' if len(what) > 70 else ''}"


_BUILDKIT_OUTPUT = re.compile(r"^#\d+ \d+\.\d+ ")
_PIP_ACTIVITY = ("Collecting", "Downloading", "Installing", "Building wheel", "Successfully", "Processing")


def build_detail(line: str) -> str | None:
    """What pip is doing, from a line of ``docker build`` output (shown beside the step)."""
    text = _BUILDKIT_OUTPUT.sub("", line).strip()
    if text.startswith(_PIP_ACTIVITY):
        return text[:80]
    return None


def debootstrap_progress(line: str) -> str | None:
    return line[3:].strip() if line.startswith("I: ") else None


def parse_ctr_images(text: str) -> dict[str, str]:
    """``ctr images ls`` output -> {ref: manifest (or index) digest}."""
    out = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("sha256:"):
            out[fields[0]] = fields[2]
    return out


def parse_ctr_container_images(text: str) -> set[str]:
    """``ctr containers ls`` output -> the image each container was created from."""
    return {fields[1] for line in text.splitlines()[1:] if len(fields := line.split()) >= 2}


def unneeded_refs(listing: Mapping[str, str], in_use: Iterable[str], replacing: str | None = None) -> list[str]:
    """The image records of ``listing`` ({ref: manifest digest}) that nothing needs: no name other than
    ``replacing`` points at their manifest and no container uses it. The CRI plugin keeps an ID record
    (``sha256:<config>``) beside each name; when a name moves to a new import, the ID record keeps the old image
    (content and unpacked snapshot, 14 GB for the Ray image) on disk. ``replacing``: a name about to be imported
    again, whose current image goes too unless a container uses it."""
    used = {listing.get(ref) or listing.get(normalize_ref(ref)) or ref for ref in in_use}
    named = {digest for ref, digest in listing.items() if not ref.startswith("sha256:") and ref != replacing}
    return sorted(ref for ref, digest in listing.items() if digest not in used | named)


def disk_shortfall(free: int, total: int, size: int, reserve_fraction: float) -> int:
    """Bytes missing to load an image of ``size`` and still leave ``reserve_fraction`` of the disk free (where
    the kubelet starts to reclaim space, removing every image no pod uses); 0 when it fits."""
    need = int(size * LOAD_SPACE_FACTOR) + int(total * reserve_fraction)
    return max(0, need - free)


def normalize_ref(ref: str) -> str:
    """The fully qualified reference containerd stores (``python:3.11`` -> ``docker.io/library/python:3.11``)."""
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def client_major_version(text: str) -> int | None:
    match = re.match(r"\s*(\d+)\.", text)
    return int(match.group(1)) if match else None


# --- runners -----------------------------------------------------------------------------------------------------


def _capture(cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a short command and capture its output (the tests replace this)."""
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def _quote(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


class _Ticker:
    """Prints ``label: <latest progress> (Ns)`` every ``interval`` seconds while a long command runs."""

    def __init__(self, label: str, interval: float = PROGRESS_INTERVAL) -> None:
        self.label = label
        self.interval = interval
        self.latest = "running"
        self.detail: str | None = None
        self.start = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            detail = f" [{self.detail}]" if self.detail else ""
            _log(f"  {self.label}: {self.latest}{detail} ({time.monotonic() - self.start:.0f}s)")

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=1)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def run_streamed(
    cmd: Sequence[str],
    log: Path,
    label: str,
    *,
    upstream: Sequence[str] | None = None,
    feed: Callable[[IO[bytes]], None] | None = None,
    progress: Callable[[str], str | None] | None = None,
    detail: Callable[[str], str | None] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    error: type[Exception] = BuildError,
    hint: str = "",
) -> float:
    """Run ``cmd`` with its output appended to ``log``, printing progress every 15 s; returns seconds taken.

    ``upstream``: a command whose stdout is ``cmd``'s stdin (``docker save IMG | ctr import -``).
    ``feed``: writes ``cmd``'s stdin from a thread (a tar stream made here).
    ``progress`` turns an output line into the current step, ``detail`` into what happens within it.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    tail: list[str] = []
    feed_error: list[BaseException] = []
    with log.open("ab") as fh, _Ticker(label) as ticker:
        shown = f"{_quote(upstream)} | {_quote(cmd)}" if upstream else _quote(cmd)
        fh.write(f"\n$ {shown}\n".encode())
        fh.flush()
        producer = None
        stdin: int | IO[bytes] | None = subprocess.DEVNULL
        try:
            if upstream is not None:
                producer = subprocess.Popen(list(upstream), stdout=subprocess.PIPE, stderr=fh, env=full_env, cwd=cwd)
                stdin = producer.stdout
            elif feed is not None:
                stdin = subprocess.PIPE
            proc = subprocess.Popen(
                list(cmd), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
            )
        except FileNotFoundError as exc:
            if producer is not None:
                producer.kill()
                producer.wait()
            raise error(f"`{exc.filename}` is not installed (needed for: {shown}){hint}") from exc
        if producer is not None and producer.stdout is not None:
            producer.stdout.close()  # the consumer holds the pipe now; the producer sees EPIPE if it dies
        writer = None
        if feed is not None and proc.stdin is not None:
            pipe = proc.stdin

            def _feed() -> None:
                try:
                    feed(pipe)
                except (BrokenPipeError, ConnectionResetError):  # the consumer died; its exit code says so
                    pass
                except BaseException as exc:  # e.g. a file of the context vanished: the input is incomplete
                    feed_error.append(exc)
                finally:
                    with contextlib.suppress(OSError):
                        pipe.close()

            writer = threading.Thread(target=_feed, daemon=True)
            writer.start()
        assert proc.stdout is not None
        for raw in proc.stdout:
            fh.write(raw)
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail = [*tail[-19:], line]
                if progress is not None and (note := progress(line)):
                    ticker.latest, ticker.detail = note, None
                elif detail is not None and (note := detail(line)):
                    ticker.detail = note
        rc = proc.wait()
        producer_rc = producer.wait() if producer is not None else 0
        if writer is not None:
            writer.join()
        elapsed = ticker.elapsed
    failed = rc != 0 or producer_rc != 0 or bool(feed_error)
    if feed_error:
        tail.append(f"(while writing the input: {feed_error[0]!r})")
    if failed:
        which = f"exit {rc}" if producer_rc == 0 else f"exit {rc}, upstream exit {producer_rc}"
        raise error(f"{label} failed ({which}): `{shown}`; log: {log}\n" + "\n".join(tail[-15:]) + hint)
    return elapsed


# --- Docker ------------------------------------------------------------------------------------------------------

INSTALL_DOCKER = "install Docker with `apt-get install docker.io`"


def _docker_answers() -> bool:
    try:
        return _capture(["docker", "info"], timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_docker(start: bool = True) -> None:
    """Make sure ``docker info`` works, starting ``dockerd`` (as root, in the background) when allowed."""
    if shutil.which("docker") is None:
        raise ServiceError(f"the docker client is not on PATH; {INSTALL_DOCKER}")
    if _docker_answers():
        return
    dockerd = shutil.which("dockerd")
    how = "start it with `dockerd > /tmp/dockerd.log 2>&1 &` (as root)"
    if not start:
        raise ServiceError(f"the Docker daemon is not reachable (`docker info` fails); {how}")
    if dockerd is None:
        raise ServiceError(f"the Docker daemon is not reachable and `dockerd` is not on PATH; {INSTALL_DOCKER}")
    if os.geteuid() != 0:
        raise ServiceError(
            "the Docker daemon is not reachable (`docker info` fails) and only root can start it here; "
            f"{how}, or make your user a member of the `docker` group"
        )
    log = logs_dir() / "dockerd.log"
    _log(f"starting dockerd (log: {log})")
    proc = ManagedProcess("dockerd", [dockerd], log).start()
    try:
        wait_until(
            lambda: _docker_answers() or None,
            timeout=60,
            interval=0.5,
            what="the Docker daemon (`docker info`)",
            abort=proc.death_notice,
        )
    except ServiceError as exc:
        raise ServiceError(f"{exc}\ndockerd log: {log}") from exc
    _log(f"dockerd is up (pid {proc.pid})")


def image_labels(image: str) -> dict[str, str] | None:
    """The labels of a local image, or None when Docker has no such image."""
    proc = _capture(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image])
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip() or "null") or {}


def image_id_and_size(image: str) -> tuple[str, int]:
    proc = _capture(["docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}", image])
    if proc.returncode != 0:
        raise BuildError(f"image {image} is not in Docker: {proc.stderr.strip()}")
    image_id, size = proc.stdout.split()
    return image_id, int(size)


def image_id(image: str) -> str | None:
    proc = _capture(["docker", "image", "inspect", "-f", "{{.Id}}", image])
    return proc.stdout.strip() if proc.returncode == 0 else None


def remove_replaced(old_id: str | None, image: str) -> None:
    """Remove the image ``image`` named before it was re-imported (best effort: images built on it keep it)."""
    if old_id and old_id != image_id(image):
        _capture(["docker", "image", "rm", old_id])


def _image_is_current(image: str, stamp: str) -> bool:
    labels = image_labels(image)
    return labels is not None and labels.get(STAMP_LABEL) == stamp


# --- the Debian base image ---------------------------------------------------------------------------------------


def host_ca_files() -> list[Path]:
    """The host's extra CA certificates (e.g. a proxy's), which the base image trusts too."""
    if not HOST_EXTRA_CAS.is_dir():
        return []
    return sorted(p for p in HOST_EXTRA_CAS.rglob("*.crt") if p.is_file())


def base_rootfs_stamp(packages: Sequence[str] = BASE_PACKAGES) -> str:
    return stamp_of("rootfs", DEBIAN_SUITE, sorted(packages), BASE_RECIPE_VERSION)


def base_image_stamp(packages: Sequence[str] = BASE_PACKAGES, ca_files: Sequence[Path] | None = None) -> str:
    cas = host_ca_files() if ca_files is None else ca_files
    return stamp_of(
        base_rootfs_stamp(packages),
        list(BASE_ENV),
        [(p.name, sha256_file(p)) for p in cas],
        sha256_file(HOST_CA_BUNDLE) if not cas and HOST_CA_BUNDLE.is_file() else "",
    )


def _rootfs_stamp_file(rootfs: Path) -> Path:
    return rootfs.with_name(rootfs.name + ".stamp")


def _debootstrap(rootfs: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise ServiceError("debootstrap is not installed; install it with `apt-get install debootstrap`")
    if os.geteuid() != 0:
        raise ServiceError("debootstrap needs root (it chroots and creates device files); run this as root")
    work = rootfs.with_name(rootfs.name + ".tmp")
    if work.exists():
        shutil.rmtree(work)
    _rootfs_stamp_file(rootfs).unlink(missing_ok=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    _log(f"debootstrap {DEBIAN_SUITE} (minbase + {len(BASE_PACKAGES)} packages) from {mirror} into {rootfs}")
    seconds = run_streamed(
        debootstrap_cmd(work, mirror),
        logs_dir() / "debootstrap.log",
        "debootstrap",
        progress=debootstrap_progress,
        hint="\n(another mirror: ACGS_DEBIAN_MIRROR=http://.../debian)",
    )
    _clean_rootfs(work)
    if rootfs.exists():
        shutil.rmtree(rootfs)
    work.rename(rootfs)
    _rootfs_stamp_file(rootfs).write_text(base_rootfs_stamp() + "\n")
    _log(f"debootstrap done in {seconds:.0f}s")


def _clean_rootfs(rootfs: Path) -> None:
    for rel in BASE_CLEANUP_DIRS:
        path = rootfs / rel
        for child in path.iterdir() if path.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    for rel in BASE_CLEANUP_FILES:
        (rootfs / rel).unlink(missing_ok=True)
    for log in (rootfs / "var/log").rglob("*"):
        if log.is_file() and not log.is_symlink():
            log.write_bytes(b"")
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    # the container runtime provides these; do not ship the build host's
    resolv = rootfs / "etc/resolv.conf"
    if resolv.is_file() and not resolv.is_symlink():
        resolv.write_text("")
    (rootfs / "etc/hostname").write_text("localhost\n")


def install_host_cas(rootfs: Path) -> None:
    """Trust what the host trusts: its extra CAs go to /usr/local/share/ca-certificates (so the image's own
    update-ca-certificates keeps them) and into the bundle; without extras the host's bundle is copied."""
    extras = host_ca_files()
    target = rootfs / "usr/local/share/ca-certificates"
    if target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in extras:
        shutil.copy2(path, target / path.relative_to(HOST_EXTRA_CAS).as_posix().replace("/", "_"))
    if extras:
        proc = _capture(["chroot", str(rootfs), "update-ca-certificates", "--fresh"], timeout=120)
        if proc.returncode != 0:
            raise BuildError(f"update-ca-certificates in {rootfs} failed: {proc.stdout}{proc.stderr}")
    elif HOST_CA_BUNDLE.is_file():
        shutil.copy2(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")


def base_image_changes(stamp: str) -> list[str]:
    return import_changes(env=BASE_ENV, labels={STAMP_LABEL: stamp}, cmd=["bash"])


def ensure_base_image(force: bool = False) -> str:
    """The Debian bookworm image with Python 3.11 and pip that the ACGS images build on; returns its name."""
    ensure_docker(start=False)
    stamp = base_image_stamp()
    if not force and _image_is_current(BASE_IMAGE, stamp):
        _log(f"{BASE_IMAGE}: up to date")
        return BASE_IMAGE
    rootfs = images_dir() / f"rootfs-{DEBIAN_SUITE}"
    stamp_file = _rootfs_stamp_file(rootfs)
    fresh = rootfs.is_dir() and stamp_file.is_file() and stamp_file.read_text().strip() == base_rootfs_stamp()
    if force or not fresh:
        _debootstrap(rootfs)
    else:
        _log(f"reusing the rootfs in {rootfs}")
    install_host_cas(rootfs)
    _log(f"importing {rootfs} as {BASE_IMAGE}")
    old_id = image_id(BASE_IMAGE)
    seconds = run_streamed(
        docker_import_cmd(BASE_IMAGE, base_image_changes(stamp)),
        logs_dir() / "base-image.log",
        f"docker import {BASE_IMAGE}",
        upstream=rootfs_tar_cmd(rootfs),
    )
    remove_replaced(old_id, BASE_IMAGE)
    _, size = image_id_and_size(BASE_IMAGE)
    _log(f"{BASE_IMAGE}: {size / 1e6:.0f} MB, imported in {seconds:.0f}s")
    return BASE_IMAGE


# --- the ACGS images ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    """How ``docker build`` runs: which client, and BuildKit or the classic builder."""

    client: str
    buildkit: bool


def _docker_clients() -> list[str]:
    """Every ``docker`` executable on PATH, first one first (a distribution's client may hide behind another)."""
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = str(candidate.resolve())
            if real not in [str(Path(s).resolve()) for s in seen]:
                seen.append(str(candidate))
    return seen


def supports_buildkit(client: str) -> bool:
    """BuildKit through the buildx plugin, or a client older than 23 (built-in BuildKit, no plugin needed)."""
    try:
        if _capture([client, "buildx", "version"], timeout=20).returncode == 0:
            return True
        version = _capture([client, "version", "-f", "{{.Client.Version}}"], timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    major = client_major_version(version)
    return major is not None and major < 23


def choose_builder() -> Builder:
    """BuildKit when a client can use it (``ACGS_DOCKER_BUILDKIT=0|1`` forces), else the classic builder."""
    clients = _docker_clients() or ["docker"]
    forced = os.environ.get("ACGS_DOCKER_BUILDKIT")
    if forced == "0":
        return Builder(clients[0], buildkit=False)
    for client in clients:
        if supports_buildkit(client):
            return Builder(client, buildkit=True)
    if forced == "1":
        raise BuildError(
            "ACGS_DOCKER_BUILDKIT=1 but no docker client here can use BuildKit; "
            "install the buildx plugin (`apt-get install docker-buildx` or docker-buildx-plugin)"
        )
    return Builder(clients[0], buildkit=False)


def build_acgs_images(repo_root: Path, tag: str, base: str = BASE_IMAGE) -> dict[str, str]:
    """Build the operator and Ray images from ``docker/*.Dockerfile`` on ``base``; returns {"operator", "ray"}."""
    ensure_docker(start=False)
    if base.startswith("acgs.local/") and image_labels(base) is None:
        raise BuildError(f"base image {base} is not in Docker; build it first with images.ensure_base_image()")
    builder = choose_builder()
    how = "BuildKit" if builder.buildkit else "the classic builder, context streamed as a tar"
    _log(f"building with {builder.client} ({how})")
    built = {}
    for name, repository in (("operator", OPERATOR_REPOSITORY), ("ray", RAY_REPOSITORY)):
        built[name] = build_image(repo_root, name, f"{repository}:{tag}", {"BASE": base}, builder)
    return built


def deps_note(previous: str | None, digest: str) -> str:
    """Whether the dependency layer is likely to be rebuilt, from the requirements of the last good build."""
    if previous is None:
        return "first build here: the dependency layer is installed from PyPI"
    if previous != digest:
        return "pyproject.toml's dependencies changed: the dependency layer is reinstalled from PyPI"
    return "dependencies unchanged: Docker's cache should keep the dependency layer"


def _requirements_stamp(name: str) -> Path:
    return images_dir() / "stamps" / f"{name}-requirements.txt"


def build_image(repo_root: Path, name: str, tag: str, build_args: Mapping[str, str], builder: Builder) -> str:
    """``docker build -f docker/<name>.Dockerfile -t <tag>`` with the build context ``repo_root``."""
    dockerfile = f"docker/{name}.Dockerfile"
    log = logs_dir() / f"image-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"building {tag} from {repo_root / dockerfile}\n")
    stamp = _requirements_stamp(name)
    digest = requirements_digest(repo_root, IMAGE_EXTRAS[name])
    previous = stamp.read_text().strip() if stamp.is_file() else None
    _log(f"{tag}: building {dockerfile} ({deps_note(previous, digest)}; log: {log})")
    env = {"DOCKER_BUILDKIT": "1" if builder.buildkit else "0"}
    old_id = image_id(tag)
    if builder.buildkit:  # BuildKit reads docker/<name>.Dockerfile.dockerignore itself
        cmd = docker_build_cmd(dockerfile, tag, build_args, str(repo_root), buildkit=True, client=builder.client)
        seconds = run_streamed(
            cmd, log, f"build {name}", progress=build_progress, detail=build_detail, env=env, cwd=repo_root
        )
    else:  # the classic builder ignores it: send only what it lets through
        ignore = repo_root / f"{dockerfile}.dockerignore"
        rules = parse_dockerignore(ignore.read_text()) if ignore.is_file() else []
        files = context_files(repo_root, rules, always=[dockerfile])
        cmd = docker_build_cmd(dockerfile, tag, build_args, "-", buildkit=False, client=builder.client)
        seconds = run_streamed(
            cmd,
            log,
            f"build {name}",
            feed=lambda out: write_context_tar(repo_root, files, out),
            progress=build_progress,
            detail=build_detail,
            env=env,
            cwd=repo_root,
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    remove_replaced(old_id, tag)  # the previous build shares all but its last layers with this one
    _, size = image_id_and_size(tag)
    _log(f"{tag}: {size / 1e9:.2f} GB, built in {seconds:.0f}s")
    return tag


# --- the pause image and single-binary images --------------------------------------------------------------------


def go_version() -> str:
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go >= 1.22 to build the pause program")
    return _capture(["go", "version"]).stdout.strip()


def pause_stamp(source: Path = PAUSE_SOURCE, go: str = "") -> str:
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in (".go", ".mod", ".sum"))
    return stamp_of("pause", [(p.name, sha256_file(p)) for p in files], go)


def build_pause_binary(source: Path = PAUSE_SOURCE) -> Path:
    """``hack/pause`` compiled statically into ``bin_dir()/pause`` (skipped while its stamp matches)."""
    if not (source / "main.go").is_file():
        raise BuildError(f"the pause program's source is missing: {source / 'main.go'} (run from the repository)")
    output = bin_dir() / "pause"
    stamp_file = bin_dir() / ".stamps" / "pause.json"
    stamp = pause_stamp(source, go_version())
    if output.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()).get("digest") == stamp:
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {"CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    _log(f"compiling {source} -> {output}")
    run_streamed(go_build_cmd(output), logs_dir() / "build-pause.log", "go build pause", env=env, cwd=source)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(json.dumps({"digest": stamp}))
    return output


def build_pause_image() -> str:
    """``PAUSE_IMAGE``: the pod sandbox, ``/pause`` only; exits 0 on SIGTERM/SIGINT."""
    return binary_image(PAUSE_IMAGE, build_pause_binary(), "pause")


NONROOT_UID = 65532
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


RootfsEntry = tuple[str, int, bytes | Path | None, int]  # path, mode, content (None: a directory), owner


def binary_rootfs_entries(binary: Path, entrypoint_name: str, ca_bundle: Path | None) -> Iterator[RootfsEntry]:
    """The files of a single-binary image: /etc basics, CA certificates, nonroot's home, /tmp, the binary."""
    yield "etc", 0o755, None, 0
    yield "etc/passwd", 0o644, PASSWD.encode(), 0
    yield "etc/group", 0o644, GROUP.encode(), 0
    yield "etc/nsswitch.conf", 0o644, b"hosts: files dns\n", 0
    yield "etc/ssl", 0o755, None, 0
    yield "etc/ssl/certs", 0o755, None, 0
    if ca_bundle is not None and ca_bundle.is_file():
        yield "etc/ssl/certs/ca-certificates.crt", 0o644, ca_bundle, 0
    yield "home", 0o755, None, 0
    yield "home/nonroot", 0o700, None, NONROOT_UID
    yield "tmp", 0o1777, None, 0
    yield entrypoint_name, 0o755, binary, 0


def write_binary_rootfs(out: IO[bytes], entries: Iterable[RootfsEntry]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for path, mode, content, owner in entries:
            info = tarfile.TarInfo(path)
            info.mode = mode
            info.mtime = 0
            info.uid = info.gid = owner
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with content.open("rb") as fh:
                    tar.addfile(info, fh)


def binary_image_stamp(binary_sha: str, entrypoint_name: str, user: str | None, ca_sha: str) -> str:
    return stamp_of("binary", BINARY_IMAGE_VERSION, binary_sha, entrypoint_name, user, ca_sha)


def binary_image(image: str, binary: Path, entrypoint_name: str, *, user: str | None = None) -> str:
    """An image holding one static binary at ``/<entrypoint_name>`` (its ENTRYPOINT), CA certificates and an
    /etc/passwd with ``nonroot`` (65532). Runs as root unless ``user`` is given (pods set ``runAsUser``).
    Skipped while the image's label holds this binary's sha256."""
    ensure_docker(start=False)
    if not binary.is_file():
        hint = f"; build it with `acgs dev build-binaries` ({binary.name})" if binary.parent == bin_dir() else ""
        raise BuildError(f"{binary} does not exist{hint}")
    binary_sha = sha256_file(binary)
    ca = HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None
    stamp = binary_image_stamp(binary_sha, entrypoint_name, user, sha256_file(ca) if ca else "")
    if _image_is_current(image, stamp):
        _log(f"{image}: up to date ({binary.name} sha256 {binary_sha[:12]})")
        return image
    changes = import_changes(
        labels={STAMP_LABEL: stamp, BINARY_LABEL: binary_sha},
        entrypoint=[f"/{entrypoint_name}"],
        user=user,
    )
    entries = list(binary_rootfs_entries(binary, entrypoint_name, ca))
    old_id = image_id(image)
    seconds = run_streamed(
        docker_import_cmd(image, changes),
        logs_dir() / "binary-images.log",
        f"docker import {image}",
        feed=lambda out: write_binary_rootfs(out, entries),
    )
    remove_replaced(old_id, image)
    _log(f"{image}: /{entrypoint_name} from {binary} ({binary.stat().st_size / 1e6:.0f} MB), {seconds:.1f}s")
    return image


# --- containerd --------------------------------------------------------------------------------------------------


def _ctr(address: Path, namespace: str, *args: str, timeout: float = 60) -> str:
    proc = _capture(ctr_cmd(address, namespace, *args), timeout=timeout)
    if proc.returncode != 0:
        raise ServiceError(f"`{_quote(ctr_cmd(address, namespace, *args))}` failed: {proc.stderr.strip()}")
    return proc.stdout


def config_digests(digest: str, fetch: Callable[[str], str]) -> set[str]:
    """The image config digests a manifest (or an index of manifests) names; ``fetch`` reads a blob."""
    doc = json.loads(fetch(digest))
    if "manifests" in doc:
        out: set[str] = set()
        for entry in doc["manifests"]:
            with contextlib.suppress(ValueError, KeyError):  # a platform whose blob this store does not hold
                out |= config_digests(entry["digest"], fetch)
        return out
    return {doc["config"]["digest"]} if "config" in doc else set()


def loaded_config_digests(address: Path, namespace: str, refs: Iterable[str]) -> dict[str, set[str]]:
    """{ref: config digests} for each of ``refs`` containerd has (refs as given, not normalised)."""
    listing = parse_ctr_images(_ctr(address, namespace, "images", "ls"))

    def fetch(digest: str) -> str:
        proc = _capture(ctr_cmd(address, namespace, "content", "get", digest))
        if proc.returncode != 0:
            raise KeyError(digest)
        return proc.stdout

    out = {}
    for ref in refs:
        digest = listing.get(normalize_ref(ref)) or listing.get(ref)
        if digest is not None:
            with contextlib.suppress(KeyError, ValueError):
                out[ref] = config_digests(digest, fetch)
    return out


def _containerd_images(address: Path, namespace: str) -> dict[str, str]:
    return parse_ctr_images(_ctr(address, namespace, "images", "ls"))


def _remove_unneeded(address: Path, namespace: str, replacing: str | None = None) -> None:
    listing = _containerd_images(address, namespace)
    in_use = parse_ctr_container_images(_ctr(address, namespace, "containers", "ls"))
    if refs := unneeded_refs(listing, in_use, replacing):
        _log(f"removing {len(refs)} image record(s) no name or container needs: {', '.join(refs)}")
        _ctr(address, namespace, "images", "rm", "--sync", *refs, timeout=600)


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _check_space(disk: Path, image: str, size: int, reserve_fraction: float) -> None:
    usage = shutil.disk_usage(disk)
    if missing := disk_shortfall(usage.free, usage.total, size, reserve_fraction):
        raise ServiceError(
            f"not enough disk space to load {image} ({_gb(size)}) into containerd: {disk} has {_gb(usage.free)} "
            f"free of {_gb(usage.total)}, loading needs about {_gb(size * LOAD_SPACE_FACTOR)} and the kubelet "
            f"reclaims space (removing every image no pod uses) below {_gb(usage.total * reserve_fraction)} free; "
            f"free {_gb(missing)} more (`docker builder prune`, `docker image prune`) and run again"
        )


def load_into_containerd(
    images: list[str],
    address: Path,
    namespace: str = "k8s.io",
    *,
    disk: Path | None = None,
    reserve_fraction: float = 0.0,
) -> None:
    """Stream each image from Docker into containerd (``docker save | ctr images import -``), skipping one whose
    config digest containerd already has as that ref. Image records nothing needs go first, and the version an
    import replaces goes before it (unless a container uses it), so that old images do not pile up on disk.
    ``disk``: a directory on containerd's filesystem, checked for room before each import; ``reserve_fraction``
    the share of it the kubelet keeps free (``evictionHard``). An image that is gone after the loads (the
    kubelet removed it under disk pressure) is an error: none of them can be pulled again."""
    if shutil.which("ctr") is None:
        raise ServiceError("`ctr` (containerd's client) is not on PATH; install it with `apt-get install containerd`")
    if not address.exists():
        raise ServiceError(f"containerd socket {address} does not exist: is the node's containerd running?")
    ensure_docker(start=False)
    _remove_unneeded(address, namespace)
    loaded = loaded_config_digests(address, namespace, images)
    for image in images:
        docker_id, size = image_id_and_size(image)
        if docker_id in loaded.get(image, set()):
            _log(f"{image}: already in containerd ({docker_id[7:19]})")
            continue
        _remove_unneeded(address, namespace, replacing=normalize_ref(image))
        if disk is not None:
            _check_space(disk, image, size, reserve_fraction)
        _log(f"{image}: loading {size / 1e6:.0f} MB into containerd ({address})")
        seconds = run_streamed(
            ctr_cmd(address, namespace, "images", "import", "-"),
            logs_dir() / "containerd-import.log",
            f"load {image}",
            upstream=["docker", "save", image],
            error=ServiceError,
        )
        _ctr(address, namespace, "images", "label", normalize_ref(image), PINNED_LABEL)
        _log(f"{image}: loaded in {seconds:.0f}s ({size / 1e6 / max(seconds, 0.1):.0f} MB/s)")
    listing = _containerd_images(address, namespace)
    if missing := [image for image in images if normalize_ref(image) not in listing and image not in listing]:
        free = f" ({_gb(shutil.disk_usage(disk).free)} free on {disk})" if disk is not None else ""
        raise ServiceError(
            f"{', '.join(missing)} left containerd while the images loaded{free}: the kubelet removes every image "
            "no pod uses when the disk is nearly full, and these cannot be pulled; free space and run again"
        )
