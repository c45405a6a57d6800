from __future__ import annotations

from pathlib import Path

import pytest
import torch

from acgs_workloads.contract import Progress, TrainRunConfig
from acgs_workloads.training import TrainTask, run_training
from acgs_workloads.training.data import shard_indices
from acgs_workloads.training.seeding import seed_everything
from tests.support.toy import build_toy_task, toy_accuracy, toy_data, toy_loss
from tests.support.toy import toy_config as make_cfg

pytestmark = pytest.mark.unit


def _train(cfg: TrainRunConfig, build=build_toy_task, **kw):  # type: ignore[no-untyped-def]
    return run_training(build, cfg, emit_events=False, **kw)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0.0 if atol == 0 else 1e-4, atol=atol, msg=key)


def test_standalone_training_reduces_loss_and_learns(tmp_path: Path) -> None:
    data = {"generator": {"examples": 512, "seed": 5}}
    cfg = make_cfg(str(tmp_path), training={"epochs": 4, "learning_rate": 0.02}, dataset=data)
    seen: list[Progress] = []
    out = _train(cfg, on_progress=seen.append, progress_interval_s=0.0)
    first = sum(v for _, v in out.loss_curve[:4]) / 4
    assert out.final_loss < 0.6 * first
    assert out.epochs_completed == 4 and out.steps == 4 * (512 // 32) == len(out.loss_curve) == len(out.grad_norms)
    assert out.restarts == 0 and out.samples_per_second > 0 and out.wall_seconds > 0
    model = build_toy_task(cfg).model_factory()
    model.load_state_dict(out.state_dict)
    assert toy_accuracy(model, toy_data(512, 5)) > 0.8
    assert seen[-1].percent == 100.0 and seen[-1].epoch == 4
    assert [p.step for p in seen] == sorted(p.step for p in seen)


def test_progress_events_go_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from acgs_workloads.contract import ProgressEvent, parse_events

    run_training(build_toy_task, make_cfg(str(tmp_path), training={"epochs": 2}))
    events = [e for e in parse_events(capsys.readouterr().out) if isinstance(e, ProgressEvent)]
    assert [e.progress.epoch for e in events][-2:] == [1, 2]
    assert events[-1].progress.percent == 100.0


def test_accumulating_micro_batches_equals_one_big_batch(tmp_path: Path) -> None:
    common = {"epochs": 2, "learning_rate": 0.01, "max_grad_norm": 0.5}
    big = _train(make_cfg(str(tmp_path), "big", training={**common, "batch_size": 64}))
    acc = _train(
        make_cfg(str(tmp_path), "acc", training={**common, "batch_size": 16, "gradient_accumulation_steps": 4})
    )
    assert big.steps == acc.steps == 2 * 256 // 64
    _assert_same_weights(big.state_dict, acc.state_dict, atol=1e-5)
    assert acc.grad_norms == pytest.approx(big.grad_norms, rel=1e-4)
    # and without accumulation the small batches take 4x the steps and end elsewhere
    small = _train(make_cfg(str(tmp_path), "small", training={**common, "batch_size": 16}))
    assert small.steps == 4 * big.steps
    assert not torch.allclose(small.state_dict["out.weight"], big.state_dict["out.weight"], atol=1e-3)


def test_uneven_last_micro_batch_is_weighted_by_its_size(tmp_path: Path) -> None:
    common = {"epochs": 1, "learning_rate": 0.01}
    data = {"generator": {"examples": 96}}
    big = _train(make_cfg(str(tmp_path), "b", dataset=data, training={**common, "batch_size": 96}))
    acc = _train(
        make_cfg(
            str(tmp_path), "a", dataset=data, training={**common, "batch_size": 40, "gradient_accumulation_steps": 3}
        )
    )
    assert big.steps == acc.steps == 1
    _assert_same_weights(big.state_dict, acc.state_dict, atol=1e-6)


def test_gradient_norm_is_recorded_before_clipping(tmp_path: Path) -> None:
    cfg = make_cfg(str(tmp_path), training={"epochs": 1, "max_grad_norm": 1e-3})
    out = _train(cfg)
    # recompute the first step's gradient norm by hand: same init, same first batch
    seed_everything(cfg.training.seed)
    task = build_toy_task(cfg)
    model = task.model_factory()
    idx = shard_indices(task.num_examples, 0, 1, cfg.training.seed, 0)[:32]
    toy_loss(model, {k: v[idx] for k, v in task.train_data.items()}).backward()
    expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()  # type: ignore[union-attr]
    assert out.grad_norms[0] == pytest.approx(expected, rel=1e-4)
    assert min(out.grad_norms) > 1e-3  # pre-clip norms, not the clipped 1e-3
    unclipped = _train(make_cfg(str(tmp_path), "noclip", training={"epochs": 1, "max_grad_norm": 0.0}))
    assert unclipped.grad_norms[0] == pytest.approx(expected, rel=1e-4)


def test_clipping_changes_training(tmp_path: Path) -> None:
    sgd_like = {"epochs": 1, "learning_rate": 0.05}
    clipped = _train(make_cfg(str(tmp_path), "c", training={**sgd_like, "max_grad_norm": 1e-4}))
    free = _train(make_cfg(str(tmp_path), "f", training={**sgd_like, "max_grad_norm": 0.0}))
    assert not torch.allclose(clipped.state_dict["out.weight"], free.state_dict["out.weight"])


class _FailOnce:
    """A loss that raises once, on its ``at``-th call, if ``marker`` does not exist yet."""

    def __init__(self, marker: Path, at: int) -> None:
        self.marker, self.at, self.calls = marker, at, 0

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("injected worker failure")
        return toy_loss(model, batch)


def test_resume_after_failure_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    training = {"epochs": 4, "learning_rate": 0.01}
    model = {"dropout": 0.2}  # random ops must replay identically after the resume
    ft = {"checkpoint_every": 2, "max_failures": 1}
    straight = _train(make_cfg(str(tmp_path), "straight", training=training, model=model, fault_tolerance=ft))

    loss = _FailOnce(tmp_path / "failed", at=8 * 2 + 3)  # 8 steps per epoch: fail in the 3rd epoch

    def build(cfg: TrainRunConfig) -> TrainTask:
        task = build_toy_task(cfg)
        task.loss_fn = loss
        return task

    resumed = _train(make_cfg(str(tmp_path), "resumed", training=training, model=model, fault_tolerance=ft), build)
    assert (tmp_path / "failed").exists()
    assert resumed.restarts == 1
    assert resumed.resumed_from_epoch == 2
    assert resumed.epochs_completed == 4 and resumed.steps == straight.steps
    _assert_same_weights(straight.state_dict, resumed.state_dict)
    assert resumed.loss_curve == straight.loss_curve
    assert resumed.final_loss == pytest.approx(straight.final_loss)


def test_failure_beyond_max_failures_is_raised(tmp_path: Path) -> None:
    def build(cfg: TrainRunConfig) -> TrainTask:
        task = build_toy_task(cfg)
        task.loss_fn = _FailOnce(tmp_path / f"m{len(list(tmp_path.iterdir()))}", at=1)
        return task

    with pytest.raises(RuntimeError, match="injected"):
        _train(make_cfg(str(tmp_path), "nofail", fault_tolerance={"max_failures": 0}), build)


def test_a_new_run_with_the_same_id_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    first = _train(make_cfg(str(tmp_path), "same", training={"epochs": 2}))
    again = _train(make_cfg(str(tmp_path), "same", training={"epochs": 3}))
    assert again.resumed_from_epoch == 2 and again.epochs_completed == 3
    assert again.loss_curve[: len(first.loss_curve)] == first.loss_curve


@pytest.mark.parametrize("precision", ["bf16", "auto", "off"])
def test_mixed_precision_on_cpu_trains(tmp_path: Path, precision: str) -> None:
    out = _train(make_cfg(str(tmp_path), training={"epochs": 2, "mixed_precision": precision}))
    assert out.mixed_precision == ("bf16" if precision == "bf16" else "off")
    assert out.final_loss < out.loss_curve[0][1]


def test_fp16_on_cpu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fp16"):
        _train(make_cfg(str(tmp_path), training={"mixed_precision": "fp16"}, fault_tolerance={"max_failures": 0}))


def test_gradient_checkpointing_gives_the_same_training(tmp_path: Path) -> None:
    plain = _train(make_cfg(str(tmp_path), "p", training={"epochs": 1}))
    recomputed = _train(make_cfg(str(tmp_path), "g", training={"epochs": 1, "gradient_checkpointing": True}))
    _assert_same_weights(plain.state_dict, recomputed.state_dict, atol=1e-6)


def test_gradient_checkpointing_flag_reaches_the_model(tmp_path: Path) -> None:
    seen: list[bool] = []

    def build(cfg: TrainRunConfig) -> TrainTask:
        task = build_toy_task(cfg)
        factory = task.model_factory

        def spy() -> torch.nn.Module:
            model = factory()
            original = model.forward

            def forward(x: torch.Tensor) -> torch.Tensor:
                seen.append(bool(model.gradient_checkpointing))
                return original(x)

            model.forward = forward  # type: ignore[method-assign]
            return model

        task.model_factory = spy
        return task

    _train(make_cfg(str(tmp_path), training={"epochs": 1, "gradient_checkpointing": True}), build)
    assert seen and all(seen)


def test_standalone_keeps_the_two_newest_checkpoints(tmp_path: Path) -> None:
    _train(make_cfg(str(tmp_path), "prune", training={"epochs": 4}))
    root = tmp_path / "checkpoints" / "prune"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["epoch_00003", "epoch_00004"]
    assert (root / "latest").read_text() == "epoch_00004"


def test_a_failing_progress_observer_does_not_fail_the_run(tmp_path: Path) -> None:
    def broken(progress: Progress) -> None:
        raise ValueError("observer bug")

    out = _train(make_cfg(str(tmp_path), "observer", fault_tolerance={"max_failures": 0}), on_progress=broken)
    assert out.restarts == 0 and out.epochs_completed == 2
