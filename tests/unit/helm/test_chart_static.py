"""The chart without helm: its CRDs come from the generator, its default values satisfy its schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from acgs_operator.api import crdgen

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "acgs"


def test_chart_crds_match_the_models() -> None:
    assert crdgen.drift(CHART / "crds") == [], "run `acgs crds generate` and commit helm/acgs/crds/"


def test_root_crds_check_covers_the_chart_copy(tmp_path: Path) -> None:
    """`acgs crds check` (crds/) also fails when only the chart's copy drifted; generate rewrites both."""
    (tmp_path / "helm" / "acgs").mkdir(parents=True)
    shutil.copy(CHART / "Chart.yaml", tmp_path / "helm" / "acgs" / "Chart.yaml")
    written = crdgen.write(tmp_path / "crds")
    assert {p.parent for p in written} == {tmp_path / "crds", tmp_path / "helm" / "acgs" / "crds"}
    assert crdgen.drift(tmp_path / "crds") == []
    victim = tmp_path / "helm" / "acgs" / "crds" / "acgs.io_modeldeployments.yaml"
    victim.write_text(victim.read_text().replace("minimum: 0", "minimum: 1", 1))
    assert crdgen.drift(tmp_path / "crds") == [str(victim)]


def test_a_directory_elsewhere_has_no_mirror(tmp_path: Path) -> None:
    assert crdgen.mirrors(tmp_path / "crds") == []
    assert crdgen.mirrors(ROOT / "crds") == [ROOT / crdgen.CHART_CRDS]


def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_default_values_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("rbac", "scope"), "global"),
        (("operator", "replicas"), -1),
        (("operator", "image", "repository"), ""),
        (("operator", "image", "pullPolicy"), "Sometimes"),
        (("rayCluster", "gpuWorkers", "replicas"), -1),
        (("operator", "metricsPort"), "9090"),
        (("operator", "unknownKey"), True),
    ],
)
def test_schema_rejects(path: tuple[str, ...], value: object) -> None:
    data = values()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = list(jsonschema.Draft7Validator(schema()).iter_errors(data))
    assert errors, f"{'.'.join(path)}={value!r} was accepted"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["version"] == "0.1.0" and chart["appVersion"] == "0.1.0"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject


def test_dashboard_queries_name_the_metrics_the_code_exports() -> None:
    dashboard = json.loads((CHART / "dashboards" / "acgs.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    operator_metrics = (ROOT / "operator" / "acgs_operator" / "metrics.py").read_text()
    serve_metrics = (ROOT / "workloads" / "acgs_workloads" / "serving" / "metrics.py").read_text()
    for name in (
        "acgs_operator_reconciles_total",
        "acgs_operator_errors_total",
        "acgs_resources",
        "acgs_trainingjob_apply_to_running_seconds",
        "acgs_modeldeployment_apply_to_ready_seconds",
    ):
        assert name in exprs and f'"{name}"' in operator_metrics, name
    # counter families are exported with a _total suffix, histograms with _bucket
    for family, exported in (
        ("acgs_serve_requests", "acgs_serve_requests_total"),
        ("acgs_serve_request_latency_seconds", "acgs_serve_request_latency_seconds_bucket"),
        ("acgs_serve_refusals", "acgs_serve_refusals_total"),
        ("acgs_serve_guard_overrides", "acgs_serve_guard_overrides_total"),
        ("acgs_serve_decisions", "acgs_serve_decisions_total"),
        ("acgs_serve_replicas_reporting", "acgs_serve_replicas_reporting"),
    ):
        assert f'"{family}"' in serve_metrics and exported in exprs, family


FREE_FORM = {"resources", "rayStartParams", "labels", "annotations", "nodeSelector", "podAnnotations", "podLabels"}


def _leaf_keys(node: object, path: str = "") -> list[str]:
    """Dotted keys of values.yaml; free-form maps (resources, labels, ...) count as one value."""
    if isinstance(node, dict) and node and path.rpartition(".")[2] not in FREE_FORM:
        return [k for key, value in node.items() for k in _leaf_keys(value, f"{path}.{key}" if path else key)]
    return [path]


def test_every_value_is_in_the_chart_readme() -> None:
    """Each value is named in helm/acgs/README.md: as `a.b.c`, or as `a.b...` and `.c` in one row."""
    rows = [line for line in (CHART / "README.md").read_text().splitlines() if line.startswith("| `")]
    missing = []
    for key in _leaf_keys(values()):
        parent, _, leaf = key.rpartition(".")
        if not any(f"`{key}`" in row or (f"`{parent}." in row and f"`.{leaf}`" in row) for row in rows):
            missing.append(key)
    assert not missing, f"values not documented in helm/acgs/README.md: {missing}"
