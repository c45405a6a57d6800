"""Per-rank sharding and batching of a dict of equal-length tensors; order from ``seed + epoch``."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from acgs_workloads.training.task import Batch


def shard_indices(num_examples: int, rank: int, world_size: int, seed: int, epoch: int) -> torch.Tensor:
    """This rank's example indices for ``epoch``: a permutation seeded by ``seed + epoch``, dealt round-robin.

    Every rank gets the same count (``num_examples // world_size``; the tail of the permutation is dropped)
    so that all data-parallel workers take the same number of steps.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    per_rank = num_examples // world_size
    if per_rank < 1:
        raise ValueError(f"{num_examples} examples cannot be sharded over {world_size} workers")
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(num_examples, generator=generator)
    return order[rank : per_rank * world_size : world_size]


def micro_batches(data: Batch, indices: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    """Batches of ``batch_size`` examples (the last may be smaller), each a dict of tensor slices."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, int(indices.shape[0]), batch_size):
        idx = indices[start : start + batch_size]
        yield {name: tensor[idx.to(tensor.device)] for name, tensor in data.items()}


def batch_len(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


def steps_per_epoch(examples_per_rank: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps per epoch: micro-batches grouped by ``accumulation`` (the last group may be short)."""
    micro = -(-examples_per_rank // batch_size)
    return -(-micro // accumulation)


def grouped(batches: Iterator[Batch], size: int) -> Iterator[list[Batch]]:
    """Consecutive groups of ``size`` micro-batches (the last group may be shorter)."""
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
