"""Build the binaries (etcd, kube-apiserver, kubectl, helm, kind, vegeta) from Go modules.

No Docker engine and no download sites are reachable here, so every binary is compiled from the
Go module proxy into a cache outside the repository (``~/.cache/acgs/bin`` by default). Building is
idempotent: a binary whose stamp matches its recipe is not rebuilt, so a warm run takes seconds.

Binaries a user already has win: ``ACGS_<NAME>`` (e.g. ``ACGS_KUBE_APISERVER``) pointing at a file,
then the cache, then ``PATH``. Only what none of these provides is built.

This module uses the standard library only, so it also runs as a plain script
(``python3 operator/devenv/binaries.py``) before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"
KIND_VERSION = "v0.33.0"
VEGETA_VERSION = "v12.13.0"
COREDNS_VERSION = "v1.14.7"
KUBERAY_VERSION = "v1.5.0"


def cache_dir() -> Path:
    """Root of everything ACGS caches outside the repository."""
    return Path(os.environ.get("ACGS_CACHE", Path.home() / ".cache" / "acgs"))


def bin_dir() -> Path:
    return cache_dir() / "bin"


@dataclass(frozen=True)
class Recipe:
    """How to build one or more binaries from one wrapper Go module."""

    name: str
    module: str
    version: str
    binaries: dict[str, str]  # binary name -> Go package path
    # When set, this module's go.mod replaces k8s.io/* staging modules with ./staging paths;
    # the wrapper replaces each of them with the published module at this version instead.
    staging_version: str | None = None
    ldflags: tuple[str, ...] = field(default_factory=tuple)
    # "dev": the control plane, helm, kind, vegeta (every `make setup`); "cluster": what a real node adds
    # (`acgs dev cluster up`, the cluster test tier). Not part of the digest.
    group: str = "dev"

    def digest(self) -> str:
        payload = json.dumps(
            [self.module, self.version, self.binaries, self.staging_version, self.ldflags],
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _k8s_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return (
        f"-X {pkg}.gitVersion={version}",
        f"-X {pkg}.gitMajor={major}",
        f"-X {pkg}.gitMinor={minor}",
        f"-X {pkg}.gitTreeState=clean",
        f"-X {pkg}.gitCommit=module-proxy",
    )


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="etcd",
        module="go.etcd.io/etcd/server/v3",
        version=ETCD_VERSION,
        binaries={"etcd": "go.etcd.io/etcd/server/v3"},
    ),
    Recipe(
        name="kubernetes",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        binaries={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        staging_version="v0." + KUBERNETES_VERSION.lstrip("v").split(".", 1)[1],
        ldflags=_k8s_ldflags(KUBERNETES_VERSION),
    ),
    Recipe(
        name="helm",
        module="helm.sh/helm/v3",
        version=HELM_VERSION,
        binaries={"helm": "helm.sh/helm/v3/cmd/helm"},
        ldflags=(f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",),
    ),
    Recipe(
        name="kind",
        module="sigs.k8s.io/kind",
        version=KIND_VERSION,
        binaries={"kind": "sigs.k8s.io/kind"},
    ),
    Recipe(  # the HTTP load generator of the serving benchmarks and reliability case 5
        name="vegeta",
        module="github.com/tsenart/vegeta/v12",
        version=VEGETA_VERSION,
        binaries={"vegeta": "github.com/tsenart/vegeta/v12"},
    ),
    Recipe(  # the node: same wrapper module as kube-apiserver, so the Go build cache is shared
        name="kubernetes-node",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        binaries={
            "kubelet": "k8s.io/kubernetes/cmd/kubelet",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        },
        staging_version="v0." + KUBERNETES_VERSION.lstrip("v").split(".", 1)[1],
        ldflags=_k8s_ldflags(KUBERNETES_VERSION),
        group="cluster",
    ),
    Recipe(  # cluster DNS, run as a pod
        name="coredns",
        module="github.com/coredns/coredns",
        version=COREDNS_VERSION,
        binaries={"coredns": "github.com/coredns/coredns"},
        group="cluster",
    ),
    Recipe(  # the KubeRay operator, run as a pod; its CRDs and RBAC come from the same module
        name="kuberay",
        module="github.com/ray-project/kuberay/ray-operator",
        version=KUBERAY_VERSION,
        binaries={"kuberay-operator": "github.com/ray-project/kuberay/ray-operator"},
        group="cluster",
    ),
)

ALL_BINARIES = tuple(b for r in RECIPES for b in r.binaries)


class BuildError(RuntimeError):
    """A binary could not be built; the message says which step failed and where the log is."""


def _env_override(name: str) -> Path | None:
    value = os.environ.get("ACGS_" + name.upper().replace("-", "_"))
    return Path(value) if value else None


def find_binary(name: str) -> Path | None:
    """Where ``name`` comes from: explicit override, the ACGS cache, then PATH."""
    override = _env_override(name)
    if override is not None:
        return override if override.is_file() else None
    cached = bin_dir() / name
    if cached.is_file():
        return cached
    found = shutil.which(name)
    return Path(found) if found else None


def require_binary(name: str) -> Path:
    path = find_binary(name)
    if path is None:
        raise FileNotFoundError(
            f"{name} not found (looked at $ACGS_{name.upper().replace('-', '_')}, {bin_dir()}, PATH); "
            "build it with `acgs dev build-binaries` or `make binaries`"
        )
    return path


def _stamp_path(name: str) -> Path:
    return bin_dir() / ".stamps" / f"{name}.json"


def _is_fresh(recipe: Recipe) -> bool:
    stamp = _stamp_path(recipe.name)
    if not stamp.is_file():
        return False
    try:
        data = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    return data.get("digest") == recipe.digest() and all((bin_dir() / b).is_file() for b in recipe.binaries)


def _provided_elsewhere(recipe: Recipe) -> bool:
    """True when the user already has every binary of this recipe outside our cache."""
    for name in recipe.binaries:
        override = _env_override(name)
        if override is not None and override.is_file():
            continue
        if shutil.which(name) and not (bin_dir() / name).is_file():
            continue
        return False
    return True


def _log(msg: str) -> None:
    print(f"[acgs build] {msg}", flush=True)


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str]) -> str:
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        fh.write(proc.stdout)
        fh.write(proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); log: {log}\n{tail}")
    return proc.stdout


def staging_replacements(gomod_text: str, version: str) -> dict[str, str]:
    """Map every ``k8s.io/*`` module that a go.mod replaces with ``./staging/...`` to ``version``.

    k8s.io/kubernetes builds its staging modules from its own tree; a module that requires it
    from the proxy must point each of them at the published release instead.
    """
    pattern = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[\w.\-/]+)\s*=>\s*\./staging/", re.M)
    return {m: version for m in sorted(set(pattern.findall(gomod_text)))}


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    env["CGO_ENABLED"] = env.get("CGO_ENABLED", "0")
    return env


def _go_build_with_progress(cmd: list[str], cwd: Path, log: Path, env: dict[str, str], label: str) -> None:
    """Run ``go build -v`` and print how many packages have been compiled so far."""
    count = 0
    lock = threading.Lock()
    start = time.monotonic()
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(15):
            with lock:
                n = count
            _log(f"  {label}: {n} packages compiled, {time.monotonic() - start:.0f}s")

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=fh, text=True)
        assert proc.stderr is not None
        tail: list[str] = []
        for line in proc.stderr:
            fh.write(line)
            with lock:
                count += 1
            tail = ([*tail, line.rstrip()])[-15:]
        rc = proc.wait()
    done.set()
    if rc != 0:
        raise BuildError(f"{label}: go build failed (exit {rc}); log: {log}\n" + "\n".join(tail))


def build(recipe: Recipe, force: bool = False) -> float:
    """Build every binary of ``recipe`` into the cache. Returns seconds spent (0 when fresh)."""
    if not force and _is_fresh(recipe):
        _log(f"{recipe.name} {recipe.version}: up to date ({', '.join(recipe.binaries)})")
        return 0.0
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go >= 1.24 to build the control plane")
    start = time.monotonic()
    work = cache_dir() / "src" / f"{recipe.name}-{recipe.version}"
    logs = cache_dir() / "logs"
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    bin_dir().mkdir(parents=True, exist_ok=True)
    log = logs / f"build-{recipe.name}.log"
    log.write_text(f"building {recipe.module}@{recipe.version}\n")
    env = _go_env()
    _log(f"{recipe.name} {recipe.version}: preparing wrapper module in {work}")

    (work / "go.mod").write_text(f"module acgs.local/build/{recipe.name}\n\ngo 1.24\n")
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in recipe.binaries.values())
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    edits = [f"-require={recipe.module}@{recipe.version}"]
    if recipe.staging_version:
        _log(f"{recipe.name}: downloading {recipe.module}@{recipe.version} to read its staging modules")
        info = json.loads(_run(["go", "mod", "download", "-json", f"{recipe.module}@{recipe.version}"], work, log, env))
        replacements = staging_replacements(Path(info["GoMod"]).read_text(), recipe.staging_version)
        if not replacements:
            raise BuildError(f"no staging replacements found in {info['GoMod']}")
        _log(f"{recipe.name}: replacing {len(replacements)} staging modules with {recipe.staging_version}")
        edits += [f"-replace={m}={m}@{v}" for m, v in replacements.items()]
    _run(["go", "mod", "edit", *edits], work, log, env)
    _log(f"{recipe.name}: resolving dependencies (go mod tidy)")
    _run(["go", "mod", "tidy"], work, log, env)

    out = work / "out"
    out.mkdir(exist_ok=True)
    for name, pkg in recipe.binaries.items():
        _log(f"{recipe.name}: compiling {name} ({pkg})")
        cmd = ["go", "build", "-v", "-trimpath", "-o", str(out / name)]
        if recipe.ldflags:
            cmd += ["-ldflags", "-s -w " + " ".join(recipe.ldflags)]
        else:
            cmd += ["-ldflags", "-s -w"]
        _go_build_with_progress([*cmd, pkg], work, log, env, name)
        shutil.copy2(out / name, bin_dir() / name)
    elapsed = time.monotonic() - start
    stamp = _stamp_path(recipe.name)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"digest": recipe.digest(), "version": recipe.version, "seconds": round(elapsed, 1)}))
    _log(f"{recipe.name} {recipe.version}: built {', '.join(recipe.binaries)} in {elapsed:.0f}s")
    return elapsed


def version_of(name: str) -> str:
    path = find_binary(name)
    if path is None:
        return "missing"
    args = {"kubectl": ["version", "--client"], "helm": ["version", "--short"], "kind": ["version"]}.get(
        name, ["--version"]
    )
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable ({exc})"
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def _selected(recipe: Recipe, only: list[str] | None, groups: tuple[str, ...]) -> bool:
    return recipe.name in only if only else recipe.group in groups


def ensure_all(
    force: bool = False, only: list[str] | None = None, groups: tuple[str, ...] = ("dev",)
) -> dict[str, float]:
    """Build what is missing; returns seconds spent per recipe. Prints versions at the end.

    ``only`` names recipes; otherwise every recipe of ``groups`` is built ("dev" by default,
    "cluster" adds the node, CoreDNS and KubeRay).
    """
    start = time.monotonic()
    spent: dict[str, float] = {}
    for recipe in RECIPES:
        if not _selected(recipe, only, groups):
            continue
        if not force and _provided_elsewhere(recipe):
            _log(f"{recipe.name}: using {', '.join(str(find_binary(b)) for b in recipe.binaries)}")
            continue
        spent[recipe.name] = build(recipe, force=force)
    for recipe in RECIPES:
        if not _selected(recipe, only, groups):
            continue
        for name in recipe.binaries:
            _log(f"{name:15} {find_binary(name)}: {version_of(name)}")
    _log(f"done in {time.monotonic() - start:.1f}s")
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is fresh")
    parser.add_argument("--only", action="append", choices=[r.name for r in RECIPES])
    parser.add_argument("--cluster", action="store_true", help="also build the node, CoreDNS and KubeRay")
    args = parser.parse_args(argv)
    try:
        ensure_all(force=args.force, only=args.only, groups=("dev", "cluster") if args.cluster else ("dev",))
    except BuildError as exc:
        print(f"[acgs build] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
