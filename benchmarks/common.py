"""Helpers shared by the benchmarks: report paths, JSON output, figures, peak-memory probes."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "benchmarks"


def report_dir() -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    return REPORTS


def write_json(name: str, data: Any) -> Path:
    path = report_dir() / name
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def steady(values: list[float], warmup: int = 1) -> float:
    """Median of ``values`` after dropping the first ``warmup`` (warm-up) entries."""
    kept = values[warmup:] or values
    return statistics.median(kept) if kept else float("nan")


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) through ``/proc/self/clear_refs``; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """Peak resident set size (``VmHWM``, or ``ru_maxrss`` off Linux) of this process in MiB."""
    try:
        return _status_kib("VmHWM") / 1024
    except (OSError, KeyError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
