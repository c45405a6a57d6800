"""transformer-efficiency: a small transformer (fused attention, mixed precision, gradient checkpointing)
deciding governance requests given as token sequences; reports tokens/s and memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from acgs_workloads.components import tokens as tok
from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest
from acgs_workloads.components.governance import (
    DECISIONS,
    generate_governance_labels,
    governance_decisions,
    reasoning,
    request_features,
    safeguards_for,
    sample_governance,
)
from acgs_workloads.components.models import TransformerClassifier
from acgs_workloads.components.schemas import Decision, GovernanceContext
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec


class TokenRequest(HashedRequest):
    """Either ``tokens`` (ids < 128, starting with CLS=1) or a ``context`` rendered into tokens."""

    tokens: list[int] | None = Field(default=None, min_length=2, max_length=8192)
    context: GovernanceContext | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the rendering of ``context``.")

    @model_validator(mode="after")
    def _one_source(self) -> TokenRequest:
        if (self.tokens is None) == (self.context is None):
            raise ValueError("give exactly one of tokens and context")
        if self.tokens is not None and any(t < 0 or t >= tok.VOCAB for t in self.tokens):
            raise ValueError(f"token ids must be in [0, {tok.VOCAB})")
        return self


class TokenResponse(BaseModel):
    decision: Decision
    safeguards: list[str]
    reasoning: str
    constitutional_hash: str


def memory_figures(model: nn.Module) -> dict[str, float]:
    """Parameter bytes, peak process RSS and (on a GPU) peak allocated CUDA memory, in MiB."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    figures = {
        "parameterMiB": params / 2**20,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if torch.cuda.is_available():
        figures["peakCudaMiB"] = torch.cuda.max_memory_allocated() / 2**20
    return figures


@torch.no_grad()
def inference_tokens_per_second(model: nn.Module, tokens: np.ndarray, batch_size: int = 256) -> float:
    """Measured forward-pass throughput in tokens per second over ``tokens`` (after one warm-up batch)."""
    model.eval()
    x = torch.as_tensor(tokens, dtype=torch.int64)
    model(x[:batch_size])
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        model(x[i : i + batch_size])
    elapsed = time.perf_counter() - start
    return float(x.numel() / elapsed) if elapsed > 0 else 0.0


class TransformerEfficiency(Component):
    name = "transformer-efficiency"
    classes = DECISIONS
    request_model = TokenRequest
    response_model = TokenResponse
    input_dtype = torch.int64

    def generate(self, examples: int, seed: int, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None) -> Columns:
        rng = np.random.default_rng(seed)
        cols = sample_governance(rng, examples)
        cols[LABEL] = generate_governance_labels(rng, cols)
        cols["tokens"] = tok.encode(cols, spec.sequence_length, rng)
        return cols

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        tokens = cols["tokens"]
        if tokens.shape[1] != spec.sequence_length:
            raise ValueError(f"token sequences have length {tokens.shape[1]}, model.sequenceLength is "
                             f"{spec.sequence_length}")
        return {"x": tokens}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return TransformerClassifier(tok.VOCAB, len(self.classes), spec)

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        return governance_decisions(self.name, cols, predicted)

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        rows: list[np.ndarray] = []
        for request in requests:
            if request.tokens is not None:
                ids = np.array(request.tokens[: spec.sequence_length], dtype=np.int64)
                rows.append(np.pad(ids, (0, spec.sequence_length - ids.shape[0]), constant_values=tok.PAD))
            else:
                from acgs_workloads.components.governance import context_columns

                ctx = context_columns([request.context.as_row()])
                rows.append(tok.encode(ctx, spec.sequence_length, np.random.default_rng(request.seed))[0])
        tokens = np.stack(rows)
        cols = tok.decode(tokens)
        cols["tokens"] = tokens
        return cols

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {"tokens": [int(t) for t in cols["tokens"][index]], "constitutional_hash": constitution_hash}

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        row = request_features(cols, index)
        decision = DECISIONS[predicted]
        return TokenResponse(
            decision=decision,
            safeguards=safeguards_for(row, decision),
            reasoning=reasoning(row, decision),
            constitutional_hash=constitution_hash,
        )

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        figures: dict[str, Any] = {"inferenceTokensPerSecond": inference_tokens_per_second(model, cols["tokens"])}
        figures.update(memory_figures(model))
        return figures
