"""Each package directory carries its import name; nothing can shadow the stdlib's `operator`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packages_import_from_their_directories(tmp_path: Path) -> None:
    code = (
        "import operator, acgs_operator, acgs_workloads, acgs_operator.api.v1alpha1, acgs_workloads.contract;"
        "print(operator.__file__); print(acgs_operator.__file__); print(acgs_workloads.__file__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    stdlib_operator, ops, work = proc.stdout.split()
    assert not stdlib_operator.startswith(str(ROOT)), "the stdlib's operator module must win"
    assert Path(ops) == ROOT / "operator" / "acgs_operator" / "__init__.py"
    assert Path(work) == ROOT / "workloads" / "acgs_workloads" / "__init__.py"


def test_the_repository_root_does_not_shadow_the_stdlib() -> None:
    """`python -m` from the repository root puts the root first on sys.path: operator/ is no package
    there (no __init__.py), so the stdlib's `operator` still wins and the command line works."""
    code = "import operator, runpy; assert operator.attrgetter; import acgs_operator"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "acgs_operator", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "acgs" in proc.stdout
    assert not (ROOT / "operator" / "__init__.py").exists() and not (ROOT / "workloads" / "__init__.py").exists()


def test_editable_install_is_plain_paths() -> None:
    """No import hook: the venv's .pth file names the two directories."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    lines = {line.strip() for pth in site.glob("*.pth") for line in pth.read_text().splitlines()}
    assert {str(ROOT / "operator"), str(ROOT / "workloads")} <= lines
    assert not list(site.glob("__editable__*finder*.py"))


def test_operator_package_does_not_import_torch_or_ray(tmp_path: Path) -> None:
    code = (
        "import sys, acgs_operator.cli, acgs_operator.handlers, acgs_operator.api.crdgen;"
        "bad = [m for m in ('torch', 'ray') if m in sys.modules]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_workloads_config_is_torch_and_kopf_free(tmp_path: Path) -> None:
    code = (
        "import sys, acgs_workloads.contract, acgs_workloads.constitution;"
        "bad = [m for m in ('torch', 'ray', 'kopf', 'kubernetes') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
