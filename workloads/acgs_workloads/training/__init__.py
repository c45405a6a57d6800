"""The one training loop: standalone plain torch or under Ray Train ``TorchTrainer``.

``run_training(build_task, cfg)`` trains the :class:`TrainTask` that ``build_task(cfg)`` returns and gives back a
:class:`TrainOutcome`; ``train_loop_per_worker`` is the function every Ray Train worker (or the standalone
process) runs. Ray is imported only when ``cfg.use_ray`` is set.
"""

from acgs_workloads.training.loop import train_loop_per_worker
from acgs_workloads.training.runner import run_training
from acgs_workloads.training.schedules import lr_factor
from acgs_workloads.training.task import BuildTask, TrainOutcome, TrainTask

__all__ = ["BuildTask", "TrainOutcome", "TrainTask", "lr_factor", "run_training", "train_loop_per_worker"]
