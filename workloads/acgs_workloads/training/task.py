"""The interface between a component and the training loop.

A component builds a :class:`TrainTask` from a :class:`~acgs_workloads.contract.TrainRunConfig`; the loop
(:func:`acgs_workloads.training.run_training`) trains it standalone or under Ray Train and returns a
:class:`TrainOutcome`. ``build_task`` must be a picklable top-level function: under Ray it is called
inside every worker, so each worker builds the same model and data from the same config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from acgs_workloads.contract import Progress, TrainRunConfig

Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass
class TrainTask:
    """What to train: a model factory, equal-length tensors and a loss.

    ``model_factory`` is called once per worker after seeding, so every worker starts from the same weights.
    ``train_data`` maps names to tensors of equal first dimension; a batch is a dict of slices of them.
    ``loss_fn(model, batch)`` returns the scalar mean loss of the batch.
    With ``supports_gradient_checkpointing`` the model exposes a boolean ``gradient_checkpointing``
    attribute that the loop sets from ``training.gradient_checkpointing``.
    """

    model_factory: Callable[[], torch.nn.Module]
    train_data: dict[str, torch.Tensor]
    loss_fn: LossFn
    supports_gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if not self.train_data:
            raise ValueError("train_data must hold at least one tensor")
        lengths = {name: int(t.shape[0]) for name, t in self.train_data.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"train_data tensors must have equal length, got {lengths}")

    @property
    def num_examples(self) -> int:
        return int(next(iter(self.train_data.values())).shape[0])


@dataclass
class TrainOutcome:
    """The result of a training run (computed on rank 0; weights on CPU, without DDP's ``module.`` prefix)."""

    state_dict: dict[str, torch.Tensor]
    final_loss: float
    samples_per_second: float
    restarts: int
    loss_curve: list[tuple[int, float]]
    wall_seconds: float
    epochs_completed: int = 0
    steps: int = 0
    grad_norms: list[float] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_samples_per_second: list[float] = field(default_factory=list)
    mixed_precision: str = "off"
    epoch_wall_seconds: list[float] = field(default_factory=list)  # last attempt: epoch + report + checkpoint
    extra: dict[str, Any] = field(default_factory=dict)


BuildTask = Callable[[TrainRunConfig], TrainTask]
ProgressCallback = Callable[[Progress], None]
