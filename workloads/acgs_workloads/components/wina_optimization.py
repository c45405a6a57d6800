"""wina-optimization: WINA (weight-informed neuron activation) applied, training-free, to the
transformer-efficiency transformer; reports accuracy vs sparsity and the measured MLP speed-up.

Training trains the dense transformer on the text governance task (exactly transformer-efficiency's
training); inference, evaluation and serving run with WINA at the spec's ``model.winaSparsity`` (the share of
each layer's input features zeroed per token, chosen by ``|x_i| * ||W[:, i]||``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from acgs_workloads.components.base import LABEL, Columns
from acgs_workloads.components.models import TransformerClassifier, set_wina
from acgs_workloads.components.transformer_efficiency import TransformerEfficiency
from acgs_workloads.components.wina import SPARSITIES, accuracy_vs_sparsity, block_inputs, first_block, mlp_speedup
from acgs_workloads.contract import ModelSpec


class WinaOptimization(TransformerEfficiency):
    name = "wina-optimization"

    def build_model(self, spec: ModelSpec) -> nn.Module:
        model = super().build_model(spec)
        assert isinstance(model, TransformerClassifier)
        model.wina_sparsity = spec.wina_sparsity
        return model

    def prepare_for_inference(self, model: nn.Module) -> None:
        """Switch WINA on at the model's sparsity (per-token selection, masked product: the reference
        semantics)."""
        set_wina(model, float(getattr(model, "wina_sparsity", 0.0)), "mask")

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        figures = super().extra_metrics(model, cols, predicted, spec)  # tokens/s and memory with WINA on
        tokens = self.inputs(cols, spec)["x"]
        labels = cols[LABEL]
        classes = len(self.classes)
        sparsities = sorted({0.0, *SPARSITIES, spec.wina_sparsity})
        per_token = accuracy_vs_sparsity(model, tokens, labels, sparsities, mode="mask", classes=classes)
        shared = accuracy_vs_sparsity(model, tokens, labels, sparsities, mode="shared", classes=classes)
        hidden = block_inputs(model, tokens)
        block = first_block(model)
        speed_sparsities = sorted({*SPARSITIES, spec.wina_sparsity} - {0.0})
        speed_batch = mlp_speedup(block, hidden, speed_sparsities, mode="shared") if speed_sparsities else {}
        speed_token = mlp_speedup(block, hidden[:1], speed_sparsities, mode="gather") if speed_sparsities else {}
        self.prepare_for_inference(model)
        figures.update({
            "winaSparsity": spec.wina_sparsity,
            "winaAccuracyPerToken": per_token,
            "winaAccuracyShared": shared,
            "winaMlpSpeedupBatch": speed_batch,
            "winaMlpSpeedupSingleToken": speed_token,
            "winaSparsities": sparsities,
            "torchThreads": torch.get_num_threads(),
        })
        return figures
