"""transformer-efficiency: constitutional-ai's task (a request in plain words -> governance decision) read by a
small transformer over the request's token ids; reports tokens/s and memory.

The data, labels, request and response are constitutional-ai's (:class:`ConstitutionalAI`: English requests
composed from latent facts, labels from the given Constitution's Rego plus the house rules, the runtime guard
on the more restrictive of the client's flags and the facts read). Only the model differs: the request's
context tokens and words as a sequence of hashed ids (:mod:`.tokens`, word order kept) into a
:class:`~acgs_workloads.components.models.TransformerClassifier` (fused ``scaled_dot_product_attention``,
gradient checkpointing and mixed precision from the training spec) whose first token reads the facts; the
decision is read from the facts, as in the text classifier.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from acgs_workloads.components import tokens as tok
from acgs_workloads.components import vectors as vec
from acgs_workloads.components.base import Columns
from acgs_workloads.components.constitutional_ai import ConstitutionalAI
from acgs_workloads.components.models import TransformerClassifier
from acgs_workloads.contract import ModelSpec


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
def inference_tokens_per_second(model: nn.Module, inputs: np.ndarray, tokens: np.ndarray, batch_size: int = 256
                                ) -> float:
    """Measured forward-pass throughput over ``inputs`` (after one warm-up batch), counting the tokens of the
    requests (``tokens``: their token ids, not the padding)."""
    model.eval()
    x = torch.as_tensor(inputs, dtype=torch.int64)
    model(x[:batch_size])
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        model(x[i : i + batch_size])
    elapsed = time.perf_counter() - start
    return float(tok.lengths(tokens).sum() / elapsed) if elapsed > 0 else 0.0


class TransformerEfficiency(ConstitutionalAI):
    name = "transformer-efficiency"

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        """Token ids, then the words' pretrained-vector keys at the same positions: [n, 2 * sequenceLength]."""
        texts, extras = list(cols["text"]), self.extras(cols)
        return {"x": np.concatenate([tok.encode(texts, extras, spec.sequence_length),
                                     tok.encode_words(texts, extras, spec.sequence_length)], axis=1)}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return TransformerClassifier(tok.VOCAB, len(self.classes), spec, tok.PAD, self.fact_groups,
                                     word_dimensions=vec.DIMENSIONS)

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        x = self.inputs(cols, spec)["x"]
        tokens = x[:, : spec.sequence_length]
        full = tok.full_lengths(list(cols["text"]), self.extras(cols))
        figures: dict[str, Any] = {
            "inferenceTokensPerSecond": inference_tokens_per_second(model, x, tokens),
            "tokensPerRequest": float(tok.lengths(tokens).mean()),
            "truncatedShare": float((full > spec.sequence_length).mean()),  # requests cut at sequenceLength
        }
        figures.update(memory_figures(model))
        return figures
