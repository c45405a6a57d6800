"""The training loop under Ray Train ``TorchTrainer`` on the session's real Ray head."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch
import torch.distributed as dist

from acgs_workloads.contract import Progress, ProgressEvent, TrainRunConfig, parse_events
from acgs_workloads.training import TrainTask, run_training
from tests.support import toy
from tests.support.toy import build_toy_task, toy_accuracy, toy_config, toy_loss

pytestmark = pytest.mark.integration

# The build functions below and the toy task run inside Ray workers, which cannot import `tests.*` by name.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
toy.pickle_by_value()

STEPS_PER_EPOCH = 4  # 256 examples over 2 workers, 32 per micro-batch


@pytest.fixture(scope="module")
def ray_session(ray_address: str) -> Iterator[str]:
    ray.init(address=ray_address, log_to_driver=True)
    try:
        yield ray_address
    finally:
        ray.shutdown()


class KillRank1Once:
    """Loss that ends the rank-1 worker process (``os._exit``) on its ``at``-th call, once (marker file)."""

    def __init__(self, marker: str, at: int) -> None:
        self.marker, self.at, self.calls = Path(marker), at, 0

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        if dist.get_rank() == 1 and self.calls == self.at and not self.marker.exists():
            self.marker.touch()
            import os

            os._exit(1)
        return toy_loss(model, batch)


def build_killing_task(cfg: TrainRunConfig) -> TrainTask:
    task = build_toy_task(cfg)
    marker = Path(cfg.artifact_root) / "killed-rank-1"
    task.loss_fn = KillRank1Once(str(marker), at=2 * STEPS_PER_EPOCH + 2)  # in the 3rd epoch
    return task


def _cfg(root: Path, run_id: str, **sections: object) -> TrainRunConfig:
    return toy_config(
        str(root),
        run_id,
        use_ray=True,
        resources={"workers": 2, "cpus_per_worker": 1},
        training={"epochs": 4, "learning_rate": 0.02},
        **sections,  # type: ignore[arg-type]
    )


def test_two_workers_train_the_toy_task(ray_session: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[Progress] = []
    cfg = _cfg(tmp_path, "ray-two-workers")
    out = run_training(build_toy_task, cfg, on_progress=seen.append, progress_interval_s=0.5)
    assert out.extra["world_size"] == 2 and out.restarts == 0
    assert out.epochs_completed == 4 and out.steps == 4 * STEPS_PER_EPOCH == len(out.loss_curve)
    assert out.final_loss < 0.6 * out.loss_curve[0][1]
    model = build_toy_task(cfg).model_factory()
    model.load_state_dict(out.state_dict)
    assert toy_accuracy(model, build_toy_task(cfg).train_data) > 0.8
    assert seen and seen[-1].epoch == 4 and seen[-1].percent == 100.0
    assert (tmp_path / "ray" / "ray-two-workers").is_dir()  # Ray Train storage under the artifact root
    events = [e for e in parse_events(capfd.readouterr().out) if isinstance(e, ProgressEvent)]
    assert [e.progress for e in events] == seen  # the driver printed every event it passed on


def test_killed_worker_resumes_from_the_last_checkpoint(ray_session: str, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "ray-kill-rank-1", fault_tolerance={"max_failures": 2, "checkpoint_every": 2})
    out = run_training(build_killing_task, cfg, emit_events=False)
    assert (tmp_path / "killed-rank-1").exists(), "the failure was not injected"
    assert out.restarts == 1
    assert out.resumed_from_epoch == 2  # killed in epoch 3: at most checkpointEvery (2) epochs lost
    assert out.epochs_completed == 4 and out.steps == 4 * STEPS_PER_EPOCH
    assert [s for s, _ in out.loss_curve] == list(range(1, 4 * STEPS_PER_EPOCH + 1))
    assert out.final_loss < 0.6 * out.loss_curve[0][1]


def test_failure_beyond_max_failures_fails_the_run(ray_session: str, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "ray-no-retries", fault_tolerance={"max_failures": 0, "checkpoint_every": 1})
    with pytest.raises(Exception, match=r"(?i)fail|died|exit"):
        run_training(build_killing_task, cfg, emit_events=False)
