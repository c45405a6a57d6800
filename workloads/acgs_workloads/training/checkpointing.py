"""Training state (model, optimizer, scheduler, scaler, history) to and from bytes or a directory."""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

from acgs_workloads.artifacts import join_uri, read_bytes, resolve
from acgs_workloads.training.history import History

STATE_FILE = "train_state.pt"
SCRATCH_PREFIX = "acgs-ckpt-"  # a worker's scratch directory for the checkpoint it reports: acgs-ckpt-<pid>-...
_SCRATCH = re.compile(rf"^{SCRATCH_PREFIX}(\d+)-")

log = logging.getLogger(__name__)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(model, torch.nn.parallel.DistributedDataParallel) and inner is not None else model


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


def snapshot(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    history: History,
) -> dict[str, Any]:
    return {
        "model": cpu_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "history": history.to_dict(),
    }


def restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> History:
    """Load ``state`` into the live objects; returns the history with ``resumed_from_epoch`` set."""
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    history = History.from_dict(state["history"])
    history.resumed_from_epoch = history.epoch
    return history


def state_to_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise ValueError("checkpoint does not hold a training state")
    return loaded


def save_to_directory(state: dict[str, Any], directory: str) -> None:
    with open(os.path.join(directory, STATE_FILE), "wb") as out:
        out.write(state_to_bytes(state))


def load_from_directory(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, STATE_FILE), "rb") as inp:
        return state_from_bytes(inp.read())


def newest_persisted_state(run_storage: str) -> dict[str, Any] | None:
    """The training state in the newest readable ``checkpoint_*`` directory under ``run_storage``."""
    fs, base = resolve(run_storage)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except OSError:
        return None
    names = sorted(
        (i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")),
        reverse=True,
    )
    for name in names:  # Ray names checkpoints by time: newest first
        try:
            return state_from_bytes(read_bytes(join_uri(run_storage, name, STATE_FILE)))
        except Exception as exc:  # a checkpoint cut off mid-write: try the one before
            log.warning("skipping unreadable checkpoint %s: %s", name, exc)
    return None


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def orphaned_scratch(names: Iterable[str], alive: Callable[[int], bool]) -> list[str]:
    """The scratch directories among ``names`` whose worker process is gone (pure; ``alive`` checks a pid).

    A worker killed by SIGKILL (a node's OOM killer, a fault test) cannot remove its own scratch directory.
    """
    orphans = []
    for name in names:
        match = _SCRATCH.match(name)
        if match is not None and not alive(int(match.group(1))):
            orphans.append(name)
    return sorted(orphans)


@functools.cache
def remove_orphaned_scratch(root: str) -> None:
    """Remove the scratch directories of dead workers under ``root``, once per process (a worker reports a
    checkpoint every few epochs; dead workers' leftovers only need sweeping when it starts)."""
    base = Path(root)
    for name in orphaned_scratch((p.name for p in base.iterdir() if p.is_dir()), process_alive):
        shutil.rmtree(base / name, ignore_errors=True)
        log.info("removed %s, the checkpoint scratch of a worker that is gone", base / name)


@contextmanager
def scratch_directory(root: str | None = None) -> Iterator[str]:
    """A temporary directory for one reported checkpoint, named for this process, under ``root`` (the system's
    temporary directory); the first one a process makes sweeps the scratch of dead workers first."""
    base = root or tempfile.gettempdir()
    remove_orphaned_scratch(base)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base) as directory:
        yield directory
