"""The training task of a run: the picklable ``build_task`` that B's loop calls inside every worker."""

from __future__ import annotations

from functools import partial

from acgs_workloads.components import get
from acgs_workloads.components.base import Columns, split_columns, train_tensors
from acgs_workloads.components.datasets import load_columns
from acgs_workloads.contract import TrainRunConfig
from acgs_workloads.training.task import TrainTask


def run_split(cfg: TrainRunConfig) -> tuple[Columns, Columns]:
    """The (train, test) columns of ``cfg`` (deterministic: every worker and the driver agree)."""
    component = get(cfg.component)
    cols = load_columns(component, cfg.dataset, cfg.model, cfg.constitution)
    return split_columns(cols, cfg.evaluation.test_fraction, cfg.training.seed)


def build_task(cfg: TrainRunConfig) -> TrainTask:
    """The component's model factory, training tensors and loss for ``cfg``."""
    component = get(cfg.component)
    train, _ = run_split(cfg)
    return TrainTask(
        model_factory=partial(component.build_trainable, cfg.model),
        train_data=train_tensors(component, train, cfg.model),
        loss_fn=component.loss,
        supports_gradient_checkpointing=True,
    )
