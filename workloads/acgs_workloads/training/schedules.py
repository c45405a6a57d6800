"""Learning-rate schedules with linear warm-up, as pure functions of the optimizer step."""

from __future__ import annotations

import math
from functools import partial

import torch

from acgs_workloads.contract import SchedulerSpec, SchedulerType


def lr_factor(step: int, total: int, warmup: int, kind: SchedulerType, power: float = 1.0) -> float:
    """Multiplier of the peak learning rate for optimizer step ``step`` (0-based) of ``total`` steps.

    Warm-up: steps ``0 .. warmup-1`` ramp linearly from ``1/warmup`` to ``1``. Afterwards the schedule decays
    over the remaining ``total - warmup`` steps from 1 towards 0 (reached at ``step == total``):
    cosine ``(1 + cos(pi p)) / 2``, linear ``1 - p``, polynomial ``(1 - p) ** power``; constant stays at 1.
    """
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    if step < 0 or warmup < 0:
        raise ValueError(f"step and warmup must be >= 0, got step={step} warmup={warmup}")
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return 1.0 - progress
    if kind == "polynomial":
        return float((1.0 - progress) ** power)
    raise ValueError(f"unknown scheduler type {kind!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer, spec: SchedulerSpec, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` (picklable, so its state can be checkpointed)."""
    fn = partial(_factor, total=total_steps, warmup=spec.warmup_steps, kind=spec.type, power=spec.power)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def _factor(step: int, *, total: int, warmup: int, kind: SchedulerType, power: float) -> float:
    return lr_factor(step, total, warmup, kind, power)
