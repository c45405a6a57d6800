"""What a run has done so far: epochs, steps, losses, gradient norms and timings (checkpointed with the state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class History:
    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, rank-0 loss of that step)
    grad_norms: list[float] = field(default_factory=list)  # pre-clip total gradient norm per step
    epoch_losses: list[float] = field(default_factory=list)  # mean train loss per epoch over all workers
    epoch_seconds: list[float] = field(default_factory=list)  # compute seconds per epoch (no checkpointing)
    epoch_samples: list[int] = field(default_factory=list)  # samples per epoch over all workers
    resumed_from_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        history = cls(**data)
        history.loss_curve = [(int(s), float(v)) for s, v in history.loss_curve]
        return history

    @property
    def samples_per_second(self) -> float:
        seconds = sum(self.epoch_seconds)
        return sum(self.epoch_samples) / seconds if seconds > 0 else 0.0

    @property
    def epoch_samples_per_second(self) -> list[float]:
        return [n / s if s > 0 else 0.0 for n, s in zip(self.epoch_samples, self.epoch_seconds, strict=True)]
