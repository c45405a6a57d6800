"""The directories install under import names that the stdlib's `operator` cannot shadow."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_packages_import_from_outside_the_repository(tmp_path: Path) -> None:
    code = (
        "import operator, acgs_operator, acgs_workloads, acgs_operator.api.v1alpha1, acgs_workloads.config;"
        "print(operator.__file__); print(acgs_operator.__file__); print(acgs_workloads.__file__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    stdlib_operator, ops, work = proc.stdout.split()
    assert not stdlib_operator.startswith(str(ROOT)), "the stdlib's operator module must win"
    assert Path(ops) == ROOT / "operator" / "__init__.py"
    assert Path(work) == ROOT / "workloads" / "__init__.py"


def test_the_repository_root_does_not_shadow_the_stdlib_with_safe_path() -> None:
    """From the repository root `python -m` would find operator/ first; PYTHONSAFEPATH (set by the
    Makefile and CI) keeps the root off sys.path, and the command line still works."""
    env = {"PATH": os.environ["PATH"], "PYTHONSAFEPATH": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "acgs_operator", "--help"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "acgs" in proc.stdout


def test_operator_package_does_not_import_torch_or_ray(tmp_path: Path) -> None:
    code = (
        "import sys, acgs_operator.cli, acgs_operator.handlers, acgs_operator.api.crdgen;"
        "bad = [m for m in ('torch', 'ray') if m in sys.modules]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_workloads_config_is_torch_and_kopf_free(tmp_path: Path) -> None:
    code = (
        "import sys, acgs_workloads.config, acgs_workloads.constitution;"
        "bad = [m for m in ('torch', 'ray', 'kopf', 'kubernetes') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
