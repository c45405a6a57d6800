"""What differs between a standalone run and a Ray Train worker, behind one small interface."""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs
import torch
import torch.distributed as dist

from acgs_workloads.artifacts import exists, join_uri, read_bytes, resolve, write_bytes
from acgs_workloads.contract import Progress
from acgs_workloads.training.checkpointing import STATE_FILE, state_from_bytes, state_to_bytes
from acgs_workloads.training.progress import emit_progress_line

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2


class WorkerContext(ABC):
    """World size/rank, device, model preparation, checkpoint storage and progress publishing of one worker."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @abstractmethod
    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device and wrap it for data parallelism where needed."""

    @abstractmethod
    def latest_state(self) -> dict[str, Any] | None:
        """The training state of the latest checkpoint of this run, if any."""

    @abstractmethod
    def end_epoch(self, metrics: dict[str, float], state: Callable[[], dict[str, Any]] | None) -> None:
        """Called by every rank after each epoch; ``state`` (a thunk, evaluated on rank 0) is checkpointed."""

    @abstractmethod
    def publish(self, progress: Progress) -> None:
        """Publish progress (called on rank 0 only)."""

    def result(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """What rank 0 returns from the loop (the outcome dict as is, by default)."""
        return outcome

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce of DDP on a non-final micro-step of an accumulation group."""
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def mean(self, value: torch.Tensor) -> float:
        """Mean of a scalar tensor over all workers."""
        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            reduced = value.detach().to(device=self.device, dtype=torch.float64).clone()
            dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
            return float(reduced.item()) / self.world_size
        return float(value.item())


class LocalContext(WorkerContext):
    """Plain torch in this process: one worker, checkpoints under ``<checkpoint_root>/<epoch>/``."""

    def __init__(
        self,
        device: torch.device,
        checkpoint_root: str | None,
        on_progress: Callable[[Progress], None] | None = None,
        emit_events: bool = True,
    ) -> None:
        self.device = device
        self.checkpoint_root = checkpoint_root
        self.on_progress = on_progress
        self.emit_events = emit_events

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def latest_state(self) -> dict[str, Any] | None:
        if self.checkpoint_root is None:
            return None
        pointer = join_uri(self.checkpoint_root, "latest")
        if not exists(pointer):
            return None
        name = read_bytes(pointer).decode().strip()
        return state_from_bytes(read_bytes(join_uri(self.checkpoint_root, name, STATE_FILE)))

    def end_epoch(self, metrics: dict[str, float], state: Callable[[], dict[str, Any]] | None) -> None:
        if state is None or self.checkpoint_root is None:
            return
        name = f"epoch_{int(metrics['epoch']):05d}"
        write_bytes(join_uri(self.checkpoint_root, name, STATE_FILE), state_to_bytes(state()))
        write_bytes(join_uri(self.checkpoint_root, "latest"), name.encode())
        log.info("checkpoint %s written under %s", name, self.checkpoint_root)
        self._prune(keep=KEEP_CHECKPOINTS)

    def _prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` checkpoints (names sort by epoch)."""
        if self.checkpoint_root is None:
            return
        fs, base = resolve(self.checkpoint_root)
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        dirs = (i.base_name for i in infos if i.type == pafs.FileType.Directory)
        names = sorted(name for name in dirs if name.startswith("epoch_"))
        for name in names[:-keep]:
            fs.delete_dir(f"{base.rstrip('/')}/{name}")

    def publish(self, progress: Progress) -> None:
        if self.emit_events:
            emit_progress_line(progress)
        if self.on_progress is not None:
            try:
                self.on_progress(progress)
            except Exception as exc:  # an observer's bug must not fail (and restart) the training
                log.warning("on_progress failed: %s", exc)
