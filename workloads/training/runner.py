"""Driver-side entry point: ``run_training`` (work in progress, implementation follows)."""

from __future__ import annotations

from acgs_workloads.config import TrainRunConfig
from acgs_workloads.training.task import BuildTask, ProgressCallback, TrainOutcome


def run_training(
    build_task: BuildTask, cfg: TrainRunConfig, *, on_progress: ProgressCallback | None = None
) -> TrainOutcome:
    """Train the task ``build_task(cfg)`` standalone (``cfg.use_ray=False``) or under Ray Train."""
    raise NotImplementedError("run_training: implementation in progress")
