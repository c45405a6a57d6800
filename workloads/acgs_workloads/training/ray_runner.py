"""Run the training loop under Ray Train ``TorchTrainer`` (imports ray; used when ``cfg.use_ray``)."""

from __future__ import annotations

import os
import time
from typing import Any

import ray
import ray.train
from ray.train.torch import TorchTrainer

from acgs_workloads.contract import TrainRunConfig
from acgs_workloads.training.checkpointing import load_from_directory
from acgs_workloads.training.loop import PROGRESS_INTERVAL_S, train_loop_per_worker
from acgs_workloads.training.ray_context import start_monitor
from acgs_workloads.training.runner import ProgressPump, outcome_from_result
from acgs_workloads.training.task import BuildTask, ProgressCallback, TrainOutcome


def storage_path(cfg: TrainRunConfig) -> str:
    """Ray Train's storage path: ``<artifactRoot>/ray`` (``file://`` stripped; other URIs passed through)."""
    root = cfg.artifact_root
    if root.startswith("file://"):
        root = root[len("file://") :]
    if "://" not in root:
        return os.path.join(os.path.abspath(root), "ray")
    return root.rstrip("/") + "/ray"


def make_trainer(
    build_task: BuildTask, cfg: TrainRunConfig, *, monitor: object, progress_interval_s: float
) -> TorchTrainer:
    res = cfg.resources
    per_worker = {"CPU": res.cpus_per_worker}
    if res.gpus_per_worker > 0:
        per_worker["GPU"] = res.gpus_per_worker
    return TorchTrainer(
        # Ray's annotation says the loop returns None; Ray Train V2 hands rank 0's return value back (run_with_ray)
        train_loop_per_worker,  # type: ignore[arg-type]
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"),
            "build_task": build_task,
            "monitor": monitor,
            "progress_interval_s": progress_interval_s,
            "run_storage": storage_path(cfg).rstrip("/") + "/" + cfg.run_id,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers, use_gpu=res.gpus_per_worker > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name=cfg.run_id,
            storage_path=storage_path(cfg),
            failure_config=ray.train.FailureConfig(max_failures=cfg.fault_tolerance.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )


def _final_state(checkpoint: ray.train.Checkpoint | None) -> dict[str, Any]:
    """The training state of the run's final checkpoint (the loop always checkpoints its last epoch)."""
    if checkpoint is None:
        raise RuntimeError("Ray Train finished without a checkpoint from rank 0")
    with checkpoint.as_directory() as directory:
        return load_from_directory(directory)


def run_with_ray(
    build_task: BuildTask,
    cfg: TrainRunConfig,
    *,
    on_progress: ProgressCallback | None = None,
    emit_events: bool = True,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> TrainOutcome:
    """Fit a ``TorchTrainer``; restarts = worker-group starts - 1 (counted by a monitor actor)."""
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True)
    monitor = start_monitor()
    try:
        trainer = make_trainer(build_task, cfg, monitor=monitor, progress_interval_s=progress_interval_s)
        with ProgressPump(monitor, on_progress, emit_events=emit_events) as pump:
            result = trainer.fit()
        if result.error is not None:
            raise result.error
        state = _final_state(result.checkpoint)
        # Ray Train V2 hands back rank 0's return value; V1 does not, and the checkpoint has the history too.
        value = dict(getattr(result, "return_value", None) or {"history": state["history"]})
        value["state_dict"] = state["model"]
        return outcome_from_result(value, max(0, pump.attempts - 1), time.perf_counter() - started)
    finally:
        ray.kill(monitor)
