"""A small seeded task (tests, benchmarks): classify Gaussian points by a random linear teacher.

Not shipped: Ray Train workers cannot import ``tests.*`` by name, so a caller that sends these functions to
workers registers this module with ``ray.cloudpickle.register_pickle_by_value`` (see :func:`pickle_by_value`)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from acgs_workloads.contract import ConstitutionSnapshot, TrainRunConfig
from acgs_workloads.training.task import Batch, TrainTask

FEATURES = 16
CLASSES = 4


class ToyMLP(torch.nn.Module):
    """An MLP of ``layers`` residual blocks; ``gradient_checkpointing`` recomputes the blocks in backward."""

    def __init__(self, features: int, hidden: int, classes: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.gradient_checkpointing = False
        self.inp = torch.nn.Linear(features, hidden)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
                                torch.nn.Dropout(dropout))
            for _ in range(layers)
        )
        self.out = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = h + checkpoint(block, h, use_reentrant=False)
            else:
                h = h + block(h)
        return self.out(h)


def toy_data(examples: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(examples, FEATURES, generator=generator)
    teacher = torch.randn(FEATURES, CLASSES, generator=generator)
    return {"x": x, "y": (x @ teacher).argmax(dim=1)}


def toy_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(model(batch["x"]).float(), batch["y"])


def build_toy_task(cfg: TrainRunConfig) -> TrainTask:
    """The toy task sized by ``cfg.model`` with ``cfg.dataset.generator`` examples (4000 when a URI is given)."""
    gen = cfg.dataset.generator
    data = toy_data(gen.examples if gen else 4000, gen.seed if gen else 0)
    m = cfg.model
    factory = partial(ToyMLP, FEATURES, m.hidden_size, CLASSES, m.layers, m.dropout)
    return TrainTask(model_factory=factory, train_data=data, loss_fn=toy_loss, supports_gradient_checkpointing=True)


def toy_accuracy(model: torch.nn.Module, data: dict[str, torch.Tensor]) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(data["x"]).argmax(dim=1) == data["y"]).float().mean())


def toy_config(root: str, run_id: str = "toy", *, use_ray: bool = False, **sections: Any) -> TrainRunConfig:
    """A small TrainRunConfig for the toy task; ``sections`` override wire sections (``training={...}``)."""
    base: dict[str, Any] = {
        "model": {"hidden_size": 32, "layers": 2, "dropout": 0.0},
        "dataset": {"generator": {"examples": 256, "seed": 3}},
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.01, "mixed_precision": "off"},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return TrainRunConfig(
        run_id=run_id,
        component="constitutional-ai",
        constitution=ConstitutionSnapshot(name="toy", hash="0123456789abcdef", principles=[]),
        artifact_root=root,
        use_ray=use_ray,
        **base,
    )


def pickle_by_value() -> None:
    """Let Ray pickle this module's functions by value (workers have no ``tests`` package on their path)."""
    import sys

    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
