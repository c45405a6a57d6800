"""PNG figures of a report (matplotlib, Agg backend, imported only here and only when plotting)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def training_curves(report: Mapping[str, Any], path: Path) -> bool:
    components = [c for c in report["components"] if c["curve"]]
    if not components:
        return False
    plt = _pyplot()
    rows, cols = _grid(len(components))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, c in zip(axes.flat, components, strict=False):
        steps = [p["step"] for p in c["curve"]]
        ax.plot(steps, [p["loss"] for p in c["curve"]], marker="o", markersize=3)
        ax.set_title(c["component"], fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(components):]:
        ax.axis("off")
    fig.suptitle("Training loss (progress events of each Ray job)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def compliance_per_principle(report: Mapping[str, Any], path: Path) -> bool:
    components = [c for c in report["components"] if c["evaluatedExamples"]]
    principles = report["principles"]
    if not components or not principles:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(principles) + 3), 4.2))
    width = 0.8 / len(components)
    for i, c in enumerate(components):
        shares = [1.0 - c["violations"].get(p, 0) / c["evaluatedExamples"] for p in principles]
        xs = [j + (i - (len(components) - 1) / 2) * width for j in range(len(principles))]
        ax.bar(xs, shares, width=width, label=f"{c['component']} ({c['compliance']:.3f})")
    ax.set_xticks(range(len(principles)), principles)
    low = min(1.0 - c["violations"].get(p, 0) / c["evaluatedExamples"] for c in components for p in principles)
    ax.set_ylim(max(0.0, low - 0.05), 1.005)
    ax.set_ylabel("share of evaluated examples without a violation")
    ax.set_title("Compliance per principle (overall score in the legend)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def latency_histograms(report: Mapping[str, Any], path: Path) -> bool:
    routes = [r for r in report["routes"] if len(r["latenciesMs"]) > 3]
    if not routes:
        return False
    plt = _pyplot()
    rows, cols = _grid(len(routes))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, r in zip(axes.flat, routes, strict=False):
        ax.hist(r["latenciesMs"], bins=30)
        ax.set_title(f"{r['route']}\np50 {r['p50Ms']:.1f} ms, p99 {r['p99Ms']:.1f} ms", fontsize=9)
        ax.set_xlabel("latency ms")
        ax.set_ylabel("requests")
    for ax in list(axes.flat)[len(routes):]:
        ax.axis("off")
    fig.suptitle("Latency per route (sequential requests from the pipeline)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(report: Mapping[str, Any], directory: Path) -> list[str]:
    """Write every plot that has data; the file names written."""
    written = []
    for name, draw in (("training_curves.png", training_curves),
                       ("compliance_per_principle.png", compliance_per_principle),
                       ("latency_histograms.png", latency_histograms)):
        if draw(report, directory / name):
            written.append(name)
    return written
