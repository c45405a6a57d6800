"""Loss curves from the ACGS_EVENT lines of a Ray job log (pure)."""

from __future__ import annotations

from acgs_operator.pipeline import curves
from acgs_workloads.contract import Progress, ProgressEvent, format_event


def line(epoch: int, step: int, loss: float | None) -> str:
    return format_event(ProgressEvent(progress=Progress(epoch=epoch, total_epochs=2, step=step,
                                                        percent=min(100.0, step), loss=loss)))


def test_loss_curve_orders_steps_and_keeps_the_restart() -> None:
    log = "\n".join([
        "(RayTrainWorker pid=1) " + line(0, 5, 1.5),
        "noise " + "ACGS_EVENT {not json",
        line(1, 10, 1.0),
        line(1, 12, None),  # no loss: not a point
        line(1, 10, 0.9),  # a restart printed step 10 again: the later one wins
        line(2, 20, 0.5),
        '{"kind": "result"} without the prefix',
    ])
    assert curves.loss_curve(log) == [
        {"step": 5, "epoch": 0, "loss": 1.5, "percent": 5.0},
        {"step": 10, "epoch": 1, "loss": 0.9, "percent": 10.0},
        {"step": 20, "epoch": 2, "loss": 0.5, "percent": 20.0},
    ]
    assert curves.loss_curve("") == []


def test_job_ref_and_missing_job() -> None:
    job = {"status": {"rayJob": {"submissionId": "acgs-x-1-g1", "dashboardUrl": "http://127.0.0.1:1"}}}
    assert curves.job_ref(job) == ("http://127.0.0.1:1", "acgs-x-1-g1")
    assert curves.job_ref({"status": {}}) is None
    assert curves.fetch_curve(None) == ([], "the TrainingJob has no Ray job in its status")
