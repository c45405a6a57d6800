from __future__ import annotations

import itertools
import math

import pytest
import torch

from acgs_workloads.contract import SchedulerSpec
from acgs_workloads.training.schedules import lr_factor, make_scheduler

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("step", "total", "warmup", "kind", "power", "expected"),
    [
        # warm-up ramps linearly to 1 over `warmup` steps, whatever the schedule
        (0, 100, 10, "cosine", 1.0, 0.1),
        (4, 100, 10, "linear", 1.0, 0.5),
        (9, 100, 10, "constant", 1.0, 1.0),
        (0, 100, 4, "polynomial", 2.0, 0.25),
        # first step after warm-up is the peak
        (10, 100, 10, "cosine", 1.0, 1.0),
        (10, 100, 10, "linear", 1.0, 1.0),
        (10, 100, 10, "polynomial", 3.0, 1.0),
        # middle of the decay
        (55, 100, 10, "cosine", 1.0, 0.5),
        (55, 100, 10, "linear", 1.0, 0.5),
        (55, 100, 10, "polynomial", 2.0, 0.25),
        (50, 100, 0, "polynomial", 0.5, math.sqrt(0.5)),
        # end values
        (100, 100, 10, "cosine", 1.0, 0.0),
        (100, 100, 10, "linear", 1.0, 0.0),
        (100, 100, 10, "polynomial", 2.0, 0.0),
        (100, 100, 10, "constant", 1.0, 1.0),
        (250, 100, 0, "linear", 1.0, 0.0),  # past the end stays at the end value
        # no warm-up starts at the peak
        (0, 100, 0, "cosine", 1.0, 1.0),
        (0, 1, 0, "linear", 1.0, 1.0),
    ],
)
def test_lr_factor_table(step: int, total: int, warmup: int, kind: str, power: float, expected: float) -> None:
    assert lr_factor(step, total, warmup, kind, power) == pytest.approx(expected, abs=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["cosine", "linear", "polynomial"])
def test_decay_is_monotonic_after_warmup(kind: str) -> None:
    values = [lr_factor(s, 50, 5, kind, 2.0) for s in range(5, 51)]  # type: ignore[arg-type]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] == 1.0 and values[-1] == 0.0


def test_warmup_is_increasing_and_reaches_peak() -> None:
    values = [lr_factor(s, 100, 8, "cosine") for s in range(8)]
    assert values == sorted(values) and values[-1] == 1.0 and values[0] > 0


@pytest.mark.parametrize(
    ("step", "total", "warmup", "power"), [(-1, 10, 0, 1.0), (0, 0, 0, 1.0), (0, 10, -1, 1.0), (0, 10, 0, 0.0)]
)
def test_lr_factor_rejects_bad_arguments(step: int, total: int, warmup: int, power: float) -> None:
    with pytest.raises(ValueError):
        lr_factor(step, total, warmup, "linear", power)


def test_scheduler_applies_factor_and_round_trips_state() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=2.0)
    sched = make_scheduler(opt, SchedulerSpec(type="linear", warmup_steps=2), total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([1.0, 2.0, 2.0])
    assert lrs[-1] == pytest.approx(2.0 * (1 - 7 / 8))
    opt2 = torch.optim.SGD([param], lr=2.0)
    sched2 = make_scheduler(opt2, SchedulerSpec(type="linear", warmup_steps=2), total_steps=10)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == sched.last_epoch
