"""The one training loop, run by every worker: standalone (``LocalContext``) or under Ray Train (``RayContext``)."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from acgs_workloads.contract import TrainingSpec, TrainRunConfig
from acgs_workloads.training.checkpointing import cpu_state_dict, restore, snapshot
from acgs_workloads.training.context import WorkerContext
from acgs_workloads.training.data import batch_len, grouped, micro_batches, shard_indices, steps_per_epoch
from acgs_workloads.training.history import History
from acgs_workloads.training.precision import Precision, autocast, make_scaler, resolve_precision
from acgs_workloads.training.progress import make_progress
from acgs_workloads.training.schedules import make_scheduler
from acgs_workloads.training.seeding import epoch_seed, seed_everything
from acgs_workloads.training.task import Batch, BuildTask, LossFn, TrainTask

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 5.0


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any] | None:
    """Ray Train entry point (and the standalone one): ``config`` holds ``build_task``, ``cfg`` and a context.

    Keys: ``build_task`` (picklable ``TrainRunConfig -> TrainTask``), ``cfg`` (a ``TrainRunConfig`` or its dict),
    ``context`` (a ``WorkerContext``; absent under Ray, where a ``RayContext`` is built from ``monitor`` and
    ``run_storage``), optional ``progress_interval_s``. Rank 0 returns the outcome as a dict.
    """
    cfg = config["cfg"]
    if not isinstance(cfg, TrainRunConfig):
        cfg = TrainRunConfig.model_validate(cfg)
    ctx: WorkerContext | None = config.get("context")
    if ctx is None:
        from acgs_workloads.training.ray_context import RayContext

        ctx = RayContext(config.get("monitor"), run_storage=config.get("run_storage"))
    build_task: BuildTask = config["build_task"]
    interval = float(config.get("progress_interval_s", PROGRESS_INTERVAL_S))
    return train(ctx, build_task, cfg, progress_interval_s=interval)


@dataclass
class _Plan:
    examples_per_rank: int
    steps_per_epoch: int
    total_steps: int


def _plan(task: TrainTask, spec: TrainingSpec, world_size: int) -> _Plan:
    per_rank = task.num_examples // world_size
    if per_rank < 1:
        raise ValueError(f"{task.num_examples} training examples cannot be split over {world_size} workers")
    per_epoch = steps_per_epoch(per_rank, spec.batch_size, spec.gradient_accumulation_steps)
    return _Plan(per_rank, per_epoch, per_epoch * spec.epochs)


def _configure_checkpointing(model: torch.nn.Module, task: TrainTask, enabled: bool) -> None:
    if task.supports_gradient_checkpointing:
        setattr(model, "gradient_checkpointing", enabled)  # noqa: B010 (typed as a Module attribute)
    elif enabled:
        log.warning("gradient checkpointing requested but %s does not support it", type(model).__name__)


def train(
    ctx: WorkerContext, build_task: BuildTask, cfg: TrainRunConfig, *, progress_interval_s: float = 5.0
) -> dict[str, Any] | None:
    """Train ``build_task(cfg)`` in this worker; rank 0 returns the outcome dict (see ``TrainOutcome``)."""
    spec = cfg.training
    seed_everything(spec.seed)
    task = build_task(cfg)
    model = task.model_factory()
    _configure_checkpointing(model, task, spec.gradient_checkpointing)
    model = ctx.prepare_model(model)
    device = ctx.device
    precision = resolve_precision(spec.mixed_precision, device)
    data = {name: tensor.to(device) for name, tensor in task.train_data.items()}
    plan = _plan(task, spec, ctx.world_size)

    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate)
    scheduler = make_scheduler(optimizer, spec.scheduler, plan.total_steps)
    scaler = make_scaler(precision, device)
    history = History()
    epoch_wall: list[float] = []  # this attempt's epochs, including the end-of-epoch report and checkpoint
    state = ctx.latest_state()
    if state is not None:
        history = restore(state, model, optimizer, scheduler, scaler)
        log.info("rank %d resumed from epoch %d (step %d)", ctx.rank, history.epoch, history.step)

    stepper = _Stepper(model, task.loss_fn, optimizer, scheduler, scaler, precision, device, spec.max_grad_norm, ctx)
    last_publish = time.monotonic()
    for epoch in range(history.epoch, spec.epochs):
        seed_everything(epoch_seed(spec.seed, epoch, ctx.rank))
        indices = shard_indices(task.num_examples, ctx.rank, ctx.world_size, spec.seed, epoch)
        model.train()
        step_losses: list[torch.Tensor] = []
        step_norms: list[torch.Tensor] = []
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        started = time.perf_counter()
        for group in grouped(micro_batches(data, indices, spec.batch_size), spec.gradient_accumulation_steps):
            loss, norm, weighted = stepper.step(group)
            loss_sum += weighted
            step_losses.append(loss)
            step_norms.append(norm)
            history.step += 1
            if ctx.is_chief and time.monotonic() - last_publish >= progress_interval_s:
                last_publish = time.monotonic()
                ctx.publish(make_progress(epoch, spec.epochs, history.step, plan.total_steps, float(loss.item())))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        first_step = history.step - len(step_losses)
        losses = torch.stack(step_losses).float().cpu().tolist() if step_losses else []
        history.loss_curve.extend((first_step + i + 1, v) for i, v in enumerate(losses))
        history.grad_norms.extend(torch.stack(step_norms).float().cpu().tolist() if step_norms else [])
        epoch_loss = ctx.mean(loss_sum / plan.examples_per_rank)
        history.epoch = epoch + 1
        history.epoch_losses.append(epoch_loss)
        history.epoch_seconds.append(ctx.mean(torch.tensor(seconds, dtype=torch.float64)))
        history.epoch_samples.append(plan.examples_per_rank * ctx.world_size)
        due = history.epoch % cfg.fault_tolerance.checkpoint_every == 0 or history.epoch == spec.epochs
        metrics = {"epoch": float(history.epoch), "step": float(history.step), "loss": epoch_loss}
        ctx.end_epoch(metrics, (lambda: snapshot(model, optimizer, scheduler, scaler, history)) if due else None)
        epoch_wall.append(time.perf_counter() - started)
        if ctx.is_chief:
            last_publish = time.monotonic()
            ctx.publish(make_progress(history.epoch, spec.epochs, history.step, plan.total_steps, epoch_loss))
    if not ctx.is_chief:
        return None
    return ctx.result(
        {
            "state_dict": cpu_state_dict(model),
            "history": history.to_dict(),
            "mixed_precision": precision,
            "world_size": ctx.world_size,
            "device": str(device),
            "epoch_wall_seconds": epoch_wall,
        }
    )


class _Stepper:
    """One optimizer step over a group of micro-batches: autocast, accumulation, scaling, clipping, schedule."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler | None,
        precision: Precision,
        device: torch.device,
        max_grad_norm: float,
        ctx: WorkerContext,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.precision = precision
        self.device = device
        self.max_grad_norm = max_grad_norm
        self.ctx = ctx
        self.params = [p for p in model.parameters() if p.requires_grad]

    def step(self, group: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (mean loss of the group, pre-clip gradient norm, loss summed over the group's examples)."""
        sizes = [batch_len(b) for b in group]
        total = sum(sizes)
        weighted = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, (batch, size) in enumerate(zip(group, sizes, strict=True)):
            sync = self.ctx.no_sync(self.model) if i < len(group) - 1 else contextlib.nullcontext()
            with sync:
                with autocast(self.precision, self.device):
                    loss = self.loss_fn(self.model, batch)
                scaled = loss.float() * (size / total)
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            weighted += loss.detach().double() * size
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return (weighted / total).detach(), norm.detach(), weighted
