"""wina-optimization: WINA (weight-informed neuron activation) applied, training-free, to a trained
transformer-efficiency-style model; reports accuracy vs sparsity and the measured MLP speed-up.

Training trains the dense transformer; inference and evaluation run with WINA at ``DEFAULT_SPARSITY``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from acgs_workloads.components.base import Columns
from acgs_workloads.components.models import set_wina
from acgs_workloads.components.transformer_efficiency import TransformerEfficiency
from acgs_workloads.components.wina import SPARSITIES, accuracy_vs_sparsity, block_inputs, first_block, mlp_speedup
from acgs_workloads.contract import ModelSpec

DEFAULT_SPARSITY = 0.5


class WinaOptimization(TransformerEfficiency):
    name = "wina-optimization"
    sparsity = DEFAULT_SPARSITY

    def prepare_for_inference(self, model: nn.Module) -> None:
        """Switch WINA on (per-token selection, masked product: the reference semantics)."""
        set_wina(model, self.sparsity, "mask")

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        labels = cols["label"]
        per_token = accuracy_vs_sparsity(model, cols["tokens"], labels, mode="mask")
        shared = accuracy_vs_sparsity(model, cols["tokens"], labels, mode="shared")
        hidden = block_inputs(model, cols["tokens"])
        block = first_block(model)
        speed_batch = mlp_speedup(block, hidden, mode="shared")
        speed_token = mlp_speedup(block, hidden[:1], mode="gather")
        self.prepare_for_inference(model)
        return {
            "winaSparsity": self.sparsity,
            "winaAccuracyPerToken": per_token,
            "winaAccuracyShared": shared,
            "winaMlpSpeedupBatch": speed_batch,
            "winaMlpSpeedupSingleToken": speed_token,
            "winaSparsities": list(SPARSITIES),
            "torchThreads": torch.get_num_threads(),
        }
