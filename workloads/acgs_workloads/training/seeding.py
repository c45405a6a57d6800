"""Deterministic seeding of python, numpy and torch."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the random ops (dropout) of ``epoch`` on ``rank``: a resumed epoch replays identically."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % 2**31
