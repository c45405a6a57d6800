"""Driver side: ``run_training`` runs the loop standalone (with in-process retries) or under Ray Train."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import torch

from acgs_workloads.artifacts import join_uri
from acgs_workloads.contract import Progress, TrainRunConfig
from acgs_workloads.training.context import LocalContext
from acgs_workloads.training.history import History
from acgs_workloads.training.loop import PROGRESS_INTERVAL_S, train_loop_per_worker
from acgs_workloads.training.progress import emit_progress_line
from acgs_workloads.training.task import BuildTask, ProgressCallback, TrainOutcome

log = logging.getLogger(__name__)


def checkpoint_root(cfg: TrainRunConfig) -> str:
    """Where the checkpoints of run ``cfg.run_id`` live: ``<artifactRoot>/checkpoints/<runId>``."""
    return join_uri(cfg.artifact_root, "checkpoints", cfg.run_id)


def run_training(
    build_task: BuildTask,
    cfg: TrainRunConfig,
    *,
    on_progress: ProgressCallback | None = None,
    emit_events: bool = True,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> TrainOutcome:
    """Train the task ``build_task(cfg)`` standalone (``cfg.use_ray=False``) or under Ray Train ``TorchTrainer``.

    Progress reaches ``on_progress`` on the caller's side (every ``progress_interval_s`` and after each epoch);
    with ``emit_events`` this process also writes each as an ``ACGS_EVENT`` progress line to stdout (the Ray
    job log; callers must not print them again from ``on_progress``). A run with the same ``run_id`` resumes
    from its latest checkpoint; worker failures restart the worker(s) from the latest checkpoint up to
    ``faultTolerance.maxFailures`` times.
    Under Ray, connects to ``RAY_ADDRESS`` (or starts a local Ray) unless Ray is already initialised.
    """
    if cfg.use_ray:
        from acgs_workloads.training.ray_runner import run_with_ray

        return run_with_ray(
            build_task, cfg, on_progress=on_progress, emit_events=emit_events, progress_interval_s=progress_interval_s
        )
    return run_standalone(
        build_task, cfg, on_progress=on_progress, emit_events=emit_events, progress_interval_s=progress_interval_s
    )


def standalone_device(cfg: TrainRunConfig) -> torch.device:
    if cfg.resources.gpus_per_worker > 0:
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        log.warning("gpusPerWorker > 0 but no CUDA device is available; training on CPU")
    return torch.device("cpu")


def run_standalone(
    build_task: BuildTask,
    cfg: TrainRunConfig,
    *,
    on_progress: ProgressCallback | None = None,
    emit_events: bool = True,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> TrainOutcome:
    """Plain torch in this process (one worker); an exception restarts the loop from the latest checkpoint."""
    started = time.perf_counter()
    ctx = LocalContext(standalone_device(cfg), checkpoint_root(cfg), on_progress, emit_events)
    restarts = 0
    previous_threads = torch.get_num_threads()
    # Like a Ray worker (OMP_NUM_THREADS = its CPUs), use as many intra-op threads as cpusPerWorker.
    torch.set_num_threads(max(1, int(cfg.resources.cpus_per_worker)))
    try:
        while True:
            try:
                result = train_loop_per_worker(
                    {"cfg": cfg, "build_task": build_task, "context": ctx, "progress_interval_s": progress_interval_s}
                )
                break
            except Exception as exc:
                if restarts >= cfg.fault_tolerance.max_failures:
                    raise
                restarts += 1
                log.warning("training failed (%s); restart %d of %d", exc, restarts, cfg.fault_tolerance.max_failures)
    finally:
        torch.set_num_threads(previous_threads)
    if result is None:
        raise RuntimeError("the standalone worker returned no result")
    return outcome_from_result(result, restarts, time.perf_counter() - started)


def outcome_from_result(result: dict[str, Any], restarts: int, wall_seconds: float) -> TrainOutcome:
    """The :class:`TrainOutcome` of rank 0's result dict."""
    history = History.from_dict(result["history"])
    final_loss = history.epoch_losses[-1] if history.epoch_losses else float("nan")
    return TrainOutcome(
        state_dict=result["state_dict"],
        final_loss=final_loss,
        samples_per_second=history.samples_per_second,
        restarts=restarts,
        loss_curve=history.loss_curve,
        wall_seconds=wall_seconds,
        epochs_completed=history.epoch,
        steps=history.step,
        grad_norms=history.grad_norms,
        resumed_from_epoch=history.resumed_from_epoch,
        epoch_seconds=history.epoch_seconds,
        epoch_samples_per_second=history.epoch_samples_per_second,
        mixed_precision=str(result.get("mixed_precision", "off")),
        epoch_wall_seconds=[float(v) for v in result.get("epoch_wall_seconds", [])],
        extra={
            "epoch_losses": history.epoch_losses,
            "world_size": result.get("world_size", 1),
            "device": result.get("device", "cpu"),
        },
    )


class ProgressPump:
    """Drains a Ray run monitor on a driver thread while ``fit()`` blocks: prints each progress event line
    (the driver's stdout is the Ray job log) and calls ``on_progress``."""

    def __init__(
        self, monitor: Any, on_progress: ProgressCallback | None, *, emit_events: bool = True, interval_s: float = 1.0
    ) -> None:
        self.monitor = monitor
        self.on_progress = on_progress
        self.emit_events = emit_events
        self.interval_s = interval_s
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acgs-progress", daemon=True)

    def __enter__(self) -> ProgressPump:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.drain()
        except Exception as exc:
            log.warning("final progress drain failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.drain()
            except Exception as exc:  # a monitor hiccup must not end the run
                log.debug("progress drain failed: %s", exc)

    def drain(self) -> None:
        import ray

        events, self.attempts = ray.get(self.monitor.drain.remote())
        for event in events:
            progress = Progress.model_validate(event)
            if self.emit_events:
                emit_progress_line(progress)
            if self.on_progress is not None:
                try:
                    self.on_progress(progress)
                except Exception as exc:  # an observer's bug must not end the run
                    log.warning("on_progress failed: %s", exc)
