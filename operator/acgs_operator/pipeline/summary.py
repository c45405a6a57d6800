"""The summary printed at the end: rich tables built from the report dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from acgs_operator.pipeline import report as report_module
from acgs_operator.pipeline.report import codes, num, short

STATE_STYLE = {"done": "green", "failed": "bold red", "running": "yellow", "pending": "dim"}


def stages_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="Stages", title_justify="left")
    for col in ("stage", "state", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left", overflow="fold")
    for s in report["stages"]:
        table.add_row(s["stage"], Text(s["state"], style=STATE_STYLE.get(s["state"], "")), num(s["seconds"], 1),
                      Text(s["detail"]))
    return table


def components_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="Components (held-out evaluation under the constitution)", title_justify="left")
    for col in ("component", "accuracy", "macro F1", "held-out acc / F1", "compliance", "unsafe-approve",
                "over-refusal", "gate", "sha256", "train s"):
        table.add_column(col, justify="left" if col in ("component", "gate", "sha256") else "right")
    for c in report["components"]:
        gate = Text(report_module.gate(c), style="green" if c["gatePassed"] else "bold red")
        table.add_row(c["component"], num(c["accuracy"]), num(c["f1"]),
                      report_module.pair(c["heldOutAccuracy"], c["heldOutF1"]), num(c["compliance"]),
                      num(c["unsafeApproveRate"]), num(c["overRefusalRate"]), gate,
                      short(c["sha256"]), num(c["trainSeconds"], 0))
    return table


def routes_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="Routes", title_justify="left")
    for col in ("route", "expected", "status codes", "p50 ms", "p99 ms", "ok"):
        table.add_column(col, justify="right" if col.endswith("ms") else "left")
    for r in report["routes"]:
        ok = Text("yes", style="green") if r["ok"] else Text("NO", style="bold red")
        table.add_row(r["route"], str(r["expect"]), codes(r), num(r["p50Ms"], 2), num(r["p99Ms"], 2), ok)
    return table


def render(report: Mapping[str, Any]) -> Group:
    parts: list[Any] = [stages_table(report), components_table(report)]
    if report["routes"]:
        parts.append(routes_table(report))
    meta = report["meta"]
    if report["ok"]:
        parts.append(Text(f"pipeline passed in {meta['wallSeconds']:.1f} s", style="bold green"))
    else:
        failed = ", ".join(f["stage"] for f in report["failures"]) or "unfinished stages"
        parts.append(Text(f"pipeline FAILED in {meta['wallSeconds']:.1f} s: {failed}", style="bold red"))
    return Group(*parts)
