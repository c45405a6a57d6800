from __future__ import annotations

import pytest
import torch

from acgs_workloads.training.data import grouped, micro_batches, shard_indices, steps_per_epoch

pytestmark = pytest.mark.unit


def test_shards_are_disjoint_equal_and_cover_all_but_the_tail() -> None:
    shards = [shard_indices(103, r, 4, seed=7, epoch=1) for r in range(4)]
    assert {len(s) for s in shards} == {25}
    joined = torch.cat(shards)
    assert len(set(joined.tolist())) == 100


def test_order_depends_on_seed_and_epoch_only() -> None:
    a = shard_indices(50, 0, 1, seed=1, epoch=0)
    assert torch.equal(a, shard_indices(50, 0, 1, seed=1, epoch=0))
    assert not torch.equal(a, shard_indices(50, 0, 1, seed=1, epoch=1))
    assert not torch.equal(a, shard_indices(50, 0, 1, seed=2, epoch=0))


def test_too_few_examples_for_the_world_is_refused() -> None:
    with pytest.raises(ValueError):
        shard_indices(3, 0, 4, seed=0, epoch=0)


def test_micro_batches_slice_every_tensor_and_group() -> None:
    data = {"x": torch.arange(10).float().unsqueeze(1), "y": torch.arange(10)}
    batches = list(micro_batches(data, torch.arange(10), 4))
    assert [len(b["y"]) for b in batches] == [4, 4, 2]
    assert torch.equal(batches[2]["x"].squeeze(1).long(), batches[2]["y"])
    assert [len(g) for g in grouped(iter(batches), 2)] == [2, 1]
    assert steps_per_epoch(10, 4, 2) == 2
    assert steps_per_epoch(64, 8, 4) == 2
