"""manifests/install.yaml is the chart rendered by hack/render_install.py (fails on drift with the fix)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_install_manifest_matches_the_chart() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "render_install.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, (
        proc.stderr + "\n(run `python hack/render_install.py` and commit manifests/install.yaml)"
    )


def test_install_manifest_holds_the_namespace_crds_and_operator() -> None:
    objects = [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "acgs-system", "labels": {"app.kubernetes.io/part-of": "acgs"}},
    }
    crds = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition")
    assert crds == ["constitutions.acgs.io", "modeldeployments.acgs.io", "trainingjobs.acgs.io"]
    namespaced = [o for o in objects if o["kind"] in {"Deployment", "ServiceAccount", "Service", "ConfigMap"}]
    assert {o["kind"] for o in namespaced} == {"Deployment", "ServiceAccount", "Service", "ConfigMap"}
    assert all(o["metadata"]["namespace"] == "acgs-system" for o in namespaced)
