"""The reliability tier: faults, bad input, fuzzing, RBAC and scale, each a test that asserts and a figure.

Every test records its figures through the ``reliability_report`` fixture; at the end of the session
the tier writes ``reports/reliability/report.md`` and ``report.json`` (``ACGS_REPORT_DIR`` moves it).
Only cases that ran appear, each with the outcome pytest gave it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    case: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    goal: str = ""
    outcome: str = "not finished"


@dataclass
class ReliabilityReport:
    cases: dict[str, Case] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def record(self, case: str, title: str, goal: str = "", **figures: Any) -> Case:
        """Add (or extend) the figures of one case; call it as figures become known."""
        entry = self.cases.setdefault(case, Case(case=case, title=title, goal=goal))
        entry.figures.update(figures)
        entry.goal = goal or entry.goal
        return entry

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_seconds": round(time.time() - self.started, 1),
            "cases": [vars(c) for c in sorted(self.cases.values(), key=lambda c: c.case)],
        }

    def to_markdown(self) -> str:
        lines = [
            "# ACGS reliability report",
            "",
            f"Generated {self.to_json()['generated']} by `pytest tests/reliability` "
            f"({self.to_json()['wall_seconds']} s). Every figure below was measured in that run.",
            "",
            "| case | what | outcome | goal | figures |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in sorted(self.cases.values(), key=lambda c: c.case):
            figures = "; ".join(f"{k}: {_fmt(v)}" for k, v in c.figures.items())
            lines.append(f"| {c.case} | {c.title} | {c.outcome} | {c.goal or '-'} | {figures} |")
        return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "/")


_REPORT = ReliabilityReport()


@pytest.fixture(scope="session")
def reliability_report() -> Iterator[ReliabilityReport]:
    yield _REPORT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    case = item.get_closest_marker("case")
    if case is None or (report.when != "call" and report.passed):
        return
    entry = _REPORT.cases.get(case.args[0])
    if entry is not None and entry.outcome != "failed":  # a case with several tests fails if any of them does
        entry.outcome = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _REPORT.cases:
        return
    directory = Path(os.environ.get("ACGS_REPORT_DIR", ROOT / "reports")) / "reliability"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(_REPORT.to_json(), indent=2, default=str) + "\n")
    (directory / "report.md").write_text(_REPORT.to_markdown())
    print(f"\nreliability report: {directory / 'report.md'}")
