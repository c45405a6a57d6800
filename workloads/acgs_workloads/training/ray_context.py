"""The Ray Train side of :class:`~acgs_workloads.training.context.WorkerContext` and the driver's run monitor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from acgs_workloads.contract import Progress
from acgs_workloads.training.checkpointing import (
    load_from_directory,
    newest_persisted_state,
    save_to_directory,
    scratch_directory,
)
from acgs_workloads.training.context import WorkerContext

log = logging.getLogger(__name__)


class RunMonitor:
    """A tiny actor (0 CPUs) the workers tell about attempts and progress; the driver drains it."""

    def __init__(self) -> None:
        self.attempts = 0
        self.events: list[dict[str, Any]] = []

    def started(self) -> int:
        self.attempts += 1
        return self.attempts

    def push(self, progress: dict[str, Any]) -> None:
        self.events.append(progress)

    def drain(self) -> tuple[list[dict[str, Any]], int]:
        events, self.events = self.events, []
        return events, self.attempts


def start_monitor() -> Any:
    """A new :class:`RunMonitor` actor handle (passed to the workers in the loop config)."""
    return ray.remote(num_cpus=0)(RunMonitor).remote()


class RayContext(WorkerContext):
    """A Ray Train worker: ranks from the train context, DDP through ``prepare_model``, ``report`` checkpoints."""

    def __init__(self, monitor: Any | None, run_storage: str | None = None) -> None:
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.monitor = monitor
        self.run_storage = run_storage
        self.attempt = 1
        if self.is_chief and monitor is not None:
            self.attempt = int(ray.get(monitor.started.remote()))

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        # buffers are constant tables (pretrained word vectors), the same on every rank: not re-sent each step
        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False})

    def latest_state(self) -> dict[str, Any] | None:
        """The newest of Ray's latest registered checkpoint and the newest complete one in the run's storage.

        Ray Train registers a reported checkpoint only when its controller next polls the workers (every 2 s):
        a worker group that fails right after ``report`` loses that registration although the checkpoint was
        persisted. Scanning the run's storage recovers it, so at most ``checkpointEvery`` epochs are lost.
        """
        states: list[dict[str, Any]] = []
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                states.append(load_from_directory(directory))
        if self.run_storage is not None:
            persisted = newest_persisted_state(self.run_storage)
            if persisted is not None:
                states.append(persisted)
        return max(states, key=lambda s: int(s["history"]["epoch"]), default=None)

    def end_epoch(self, metrics: dict[str, float], state: Callable[[], dict[str, Any]] | None) -> None:
        if state is None or not self.is_chief:
            ray.train.report(metrics)
            return
        with scratch_directory() as directory:
            save_to_directory(state(), directory)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))

    def result(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """Without the weights: Ray Train refuses tensors in return values; they are in the final checkpoint."""
        return {k: v for k, v in outcome.items() if k != "state_dict"}

    def publish(self, progress: Progress) -> None:
        """Hand progress to the driver, which prints the event line and calls ``on_progress``.

        The driver's stdout is the Ray job log. A worker's stdout reaches it only through log forwarding, whose
        de-duplication drops lines that differ in numbers only once they come from a second process (as after a
        worker restart), so rank 0 does not print the events itself.
        """
        if self.monitor is not None:
            self.monitor.push.remote(progress.model_dump(mode="json"))
