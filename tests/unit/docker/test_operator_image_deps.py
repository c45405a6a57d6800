"""The operator image installs `acgs[operator]` only: the operator must start with nothing else present.

Every top-level module of this environment that no distribution of `acgs[operator]` (with its
dependencies) provides is hidden; the modules `acgs operator run` loads must still import. Optional
imports (a library's `try: import x except ImportError`) are fine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

PROBE = """
import importlib.abc, json, os, sys

HIDDEN = set(json.loads(os.environ["ACGS_HIDDEN_MODULES"]))
BEFORE = set(sys.modules)  # loaded by the interpreter's own start-up (.pth files), not by the operator

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed by acgs[operator])", name=name)
        return None

sys.meta_path.insert(0, Hide())
import acgs_operator.cli, acgs_operator.runner, acgs_operator.handlers  # what `acgs operator run` loads
print(json.dumps(sorted(m for m in set(sys.modules) - BEFORE if m.split(".")[0] in HIDDEN)))
"""


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(dist: str, extras: set[str]) -> set[str]:
    """Normalised names of ``dist`` and every distribution it requires with ``extras``, transitively."""
    seen: set[str] = set()
    todo = [(dist, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if _key(name) in seen:
            continue
        seen.add(_key(name))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def hidden_modules() -> list[str]:
    allowed = closure("acgs", {"operator"})
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if not {_key(d) for d in dists} & allowed and module not in ("acgs_operator", "acgs_workloads")
    )


def test_closure_of_the_operator_extra() -> None:
    allowed = closure("acgs", {"operator"})
    assert {"kopf", "kubernetes", "pydantic", "regopy", "prometheus-client", "pyarrow"} <= allowed
    assert not {"torch", "ray", "fastapi", "matplotlib"} & allowed


def test_operator_starts_with_only_the_operator_extra_installed() -> None:
    hidden = hidden_modules()
    assert "torch" in hidden and "ray" in hidden
    env = {**os.environ, "ACGS_HIDDEN_MODULES": json.dumps(hidden)}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
