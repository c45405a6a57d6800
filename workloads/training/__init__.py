"""The one training loop: standalone plain torch or under Ray Train ``TorchTrainer``."""

from acgs_workloads.training.runner import run_training
from acgs_workloads.training.task import BuildTask, TrainOutcome, TrainTask

__all__ = ["BuildTask", "TrainOutcome", "TrainTask", "run_training"]
