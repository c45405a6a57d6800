"""The stage list of a run (pure) and the default report directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from acgs_operator.pipeline import profiles, run, samples


def test_plan_stages_lists_every_step_in_order() -> None:
    plan = samples.load()
    stages = run.plan_stages(plan, "control plane + Ray + operator")
    titles = [s.title for s in stages.items.values()]
    assert titles[:2] == ["control plane + Ray + operator", "constitution default"]
    assert titles[2:8] == [f"train {c}" for c in (
        "constitutional-ai", "policy-governance", "multi-agent-coordination", "performance-optimization",
        "transformer-efficiency", "wina-optimization")]
    assert sorted(titles[8:11]) == ["deploy /constitutional-ai", "deploy /multi-agent", "deploy /policy-governance"]
    assert titles[-1] == "route checks"
    only = run.plan_stages(profiles.select(plan, ["wina-optimization"]), "cluster")
    assert [s.title for s in only.items.values()] == ["cluster", "constitution default", "train wina-optimization"]


def test_default_report_dir_is_a_utc_timestamp() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert run.default_report_dir(when) == Path("reports/pipeline/20260102T030405Z")
