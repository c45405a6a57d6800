"""Progress of a run: the one place that writes progress event lines to stdout."""

from __future__ import annotations

import sys

from acgs_workloads.contract import Progress, ProgressEvent, format_event


def make_progress(epoch: int, total_epochs: int, step: int, total_steps: int, loss: float | None) -> Progress:
    percent = 100.0 * min(step, total_steps) / total_steps if total_steps > 0 else 0.0
    finite = loss if loss is not None and loss == loss and abs(loss) != float("inf") else None
    return Progress(epoch=epoch, total_epochs=total_epochs, step=step, percent=round(percent, 2), loss=finite)


def emit_progress_line(progress: Progress) -> None:
    """Write ``ACGS_EVENT {"kind":"progress",...}`` to stdout (read by the operator from the Ray job logs).

    Writes to ``sys.stdout`` directly: Ray Train patches ``print`` on workers to go through logging.
    """
    sys.stdout.write(format_event(ProgressEvent(progress=progress)) + "\n")
    sys.stdout.flush()
