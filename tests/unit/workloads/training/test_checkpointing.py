from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from acgs_workloads.contract import SchedulerSpec
from acgs_workloads.training.checkpointing import (
    STATE_FILE,
    load_from_directory,
    newest_persisted_state,
    orphaned_scratch,
    restore,
    save_to_directory,
    scratch_directory,
    snapshot,
)
from acgs_workloads.training.history import History
from acgs_workloads.training.progress import make_progress
from acgs_workloads.training.schedules import make_scheduler

pytestmark = pytest.mark.unit


def _objects(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, opt, make_scheduler(opt, SchedulerSpec(type="cosine", warmup_steps=1), total_steps=10)


def _state(epoch: int) -> dict[str, object]:
    model, opt, sched = _objects(epoch)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    return snapshot(model, opt, sched, None, History(epoch=epoch, step=epoch * 3, loss_curve=[(1, 0.5)]))


def test_snapshot_restore_round_trip(tmp_path: Path) -> None:
    state = _state(2)
    save_to_directory(state, str(tmp_path))
    model, opt, sched = _objects(99)
    history = restore(load_from_directory(str(tmp_path)), model, opt, sched, None)
    assert history.epoch == 2 and history.step == 6 and history.resumed_from_epoch == 2
    assert history.loss_curve == [(1, 0.5)]
    for key, value in state["model"].items():  # type: ignore[attr-defined]
        assert torch.equal(model.state_dict()[key], value)
    assert sched.last_epoch == 1 and opt.state_dict()["state"]


def test_newest_readable_checkpoint_in_storage_wins(tmp_path: Path) -> None:
    for name, epoch in (("checkpoint_2026-01-01_10-00-00.000001", 2), ("checkpoint_2026-01-01_10-00-05.000001", 4)):
        (tmp_path / name).mkdir()
        save_to_directory(_state(epoch), str(tmp_path / name))
    cut = tmp_path / "checkpoint_2026-01-01_10-00-09.000001"  # newest, but cut off mid-write
    cut.mkdir()
    (cut / STATE_FILE).write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "not-a-checkpoint").mkdir()
    state = newest_persisted_state(str(tmp_path))
    assert state is not None and state["history"]["epoch"] == 4  # type: ignore[index]
    assert newest_persisted_state(str(tmp_path / "missing")) is None


def test_progress_percent_and_non_finite_loss() -> None:
    p = make_progress(1, 4, 25, 100, float("nan"))
    assert (p.epoch, p.total_epochs, p.step, p.percent, p.loss) == (1, 4, 25, 25.0, None)
    assert make_progress(4, 4, 120, 100, math.inf).percent == 100.0
    assert make_progress(0, 1, 0, 10, 0.7).loss == 0.7


def test_orphaned_scratch_is_the_scratch_of_dead_workers_only() -> None:
    names = ["acgs-ckpt-12-abc", "acgs-ckpt-34-def", "acgs-ckpt-xyz", "ray", "acgs-ckpt-56-g"]
    assert orphaned_scratch(names, alive=lambda pid: pid == 34) == ["acgs-ckpt-12-abc", "acgs-ckpt-56-g"]
    assert orphaned_scratch(names, alive=lambda pid: True) == []


def test_scratch_directory_removes_dead_workers_scratch_and_cleans_up(tmp_path: Path) -> None:
    dead = tmp_path / "acgs-ckpt-999999999-old"  # above any pid_max: no such process
    mine = tmp_path / f"acgs-ckpt-{os.getpid()}-busy"
    other = tmp_path / "something-else"
    for d in (dead, mine, other):
        d.mkdir()
    with scratch_directory(str(tmp_path)) as directory:
        assert Path(directory).name.startswith(f"acgs-ckpt-{os.getpid()}-") and Path(directory).is_dir()
        assert not dead.exists() and mine.exists() and other.exists()
    assert not Path(directory).exists()
