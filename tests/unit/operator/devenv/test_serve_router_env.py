"""The Serve router settings: the development Ray head and the chart's Ray pods use the same ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from acgs_operator.devenv.ray_local import SERVE_ROUTER_ENV

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[4]


def test_the_chart_sets_what_the_development_head_sets() -> None:
    values = yaml.safe_load((ROOT / "helm" / "acgs" / "values.yaml").read_text())
    assert values["rayCluster"]["serveRouterEnv"] == SERVE_ROUTER_ENV


def test_the_settings_are_read_by_the_installed_ray_serve() -> None:
    """Ray Serve reads each variable (a renamed one would be silently ignored)."""
    from ray.serve._private import constants

    source = Path(constants.__file__).read_text()
    for name in SERVE_ROUTER_ENV:
        assert f'"{name}"' in source, f"{name} is not read by ray.serve"
