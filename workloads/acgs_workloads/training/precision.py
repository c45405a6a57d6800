"""Mixed precision: resolve ``auto|bf16|fp16|off`` for a device; autocast and gradient scaler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from acgs_workloads.contract import MixedPrecision

Precision = Literal["bf16", "fp16", "off"]


def resolve_precision(requested: MixedPrecision, device: torch.device) -> Precision:
    """The precision actually used: ``auto`` is bf16 on a CUDA device that supports it, else off.

    fp16 needs a CUDA device (it trains with a GradScaler); bf16 works on CPU through autocast.
    """
    cuda = device.type == "cuda"
    if requested == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "off"
    if requested == "fp16" and not cuda:
        raise ValueError("mixedPrecision fp16 needs a CUDA device (gpusPerWorker > 0); use bf16 or off on CPU")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("mixedPrecision bf16 is not supported by this GPU; use fp16 or off")
    return requested


@contextlib.contextmanager
def autocast(precision: Precision, device: torch.device) -> Iterator[None]:
    """Autocast the forward pass to the precision's dtype (no-op when off)."""
    if precision == "off":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def make_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 on CUDA; bf16 and fp32 need none."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
