"""WINA measurements: accuracy vs sparsity and the measured speed-up of a transformer MLP."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from acgs_workloads.components import tokens as tok
from acgs_workloads.components.base import predict_arrays
from acgs_workloads.components.models import TransformerBlock, TransformerClassifier, set_wina

SPARSITIES = (0.25, 0.5, 0.75)


def accuracy_vs_sparsity(model: torch.nn.Module, tokens: np.ndarray, labels: np.ndarray,
                         sparsities: Sequence[float] = (0.0, *SPARSITIES), mode: str = "mask",
                         classes: int | None = None) -> dict[str, float]:
    """Test accuracy with WINA at each sparsity (the model is left dense afterwards); ``classes``: the number of
    class logits when the model returns facts after them.

    Per token (``mask``, ``gather``) a row's answer does not depend on the rows batched with it, so the rows go
    shortest first: a batch is cut at its longest row, and WINA's selection runs on every position it keeps
    (a sweep of four sparsities over the 4,000 test requests of a 20,000-example run: 28.7 s sorted,
    49.9 s in the given order, the same figures, two trainings running beside it). ``shared`` selects one
    column set per batch, so its batches keep the given order."""
    out: dict[str, float] = {}
    if mode != "shared":
        order = np.argsort(tok.lengths(tokens), kind="stable")  # PAD (0) pads both the ids and the word keys
        tokens, labels = tokens[order], np.asarray(labels)[order]
    try:
        for sparsity in sparsities:
            set_wina(model, sparsity, mode)
            predicted, _ = predict_arrays(model, {"x": tokens}, torch.int64, classes=classes)
            out[f"{sparsity:g}"] = float((predicted == labels).mean())
    finally:
        set_wina(model, 0.0)
    return out


def _time(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def mlp_speedup(block: TransformerBlock, hidden: torch.Tensor, sparsities: Sequence[float] = SPARSITIES,
                mode: str = "shared", repeats: int = 200) -> dict[str, dict[str, float]]:
    """Seconds per MLP call (fc1, GELU, fc2) dense vs WINA with gathered columns, and the speed-up.

    ``mode="shared"`` selects one column set per call (a smaller dense GEMM; ``hidden`` is a batch of tokens);
    ``mode="gather"`` selects per token and reads only the kept weight columns via ``embedding_bag``.
    """
    def dense() -> torch.Tensor:
        return F.linear(F.gelu(F.linear(hidden, block.fc1.weight, block.fc1.bias)), block.fc2.weight, block.fc2.bias)

    results: dict[str, dict[str, float]] = {}
    try:
        dense_s = _time(dense, repeats)
        for sparsity in sparsities:
            set_wina(block, sparsity, mode)
            sparse_s = _time(lambda: block.mlp(hidden), repeats)
            results[f"{sparsity:g}"] = {"denseMs": dense_s * 1e3, "sparseMs": sparse_s * 1e3,
                                        "speedup": dense_s / sparse_s if sparse_s > 0 else 0.0}
    finally:
        set_wina(block, 0.0)
    return results


def first_block(model: torch.nn.Module) -> TransformerBlock:
    """The first transformer block of a component's transformer (``model.blocks[0]``)."""
    blocks = model.get_submodule("blocks")
    block = blocks[0] if isinstance(blocks, torch.nn.ModuleList) else None
    if not isinstance(block, TransformerBlock):
        raise TypeError(f"{type(model).__name__} has no transformer block at blocks[0]")
    return block


@torch.no_grad()
def block_inputs(model: torch.nn.Module, tokens: np.ndarray, limit: int = 64) -> torch.Tensor:
    """The normalised inputs of the first block's MLP at the real (not padding) tokens of ``limit`` test
    sequences ([tokens, hidden])."""
    if not isinstance(model, TransformerClassifier):
        raise TypeError(f"{type(model).__name__} is not a TransformerClassifier")
    h, pad = model.embedded(torch.as_tensor(tokens[:limit], dtype=torch.int64))
    block = first_block(model)
    h = block.norm2(h + block.attention(block.norm1(h), pad))
    return h.reshape(-1, h.shape[-1]) if pad is None else h[~pad]
