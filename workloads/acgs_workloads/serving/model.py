"""The served model: a component's trained weights loaded from a verified artifact, on CPU or CUDA.

Loading goes through the component predictor (``acgs_workloads.components.predictor``), which verifies the
artifact's sha256 and rebuilds the model from the recorded ``ModelSpec``. Inference is split so the runtime
guard can sit between the model's decision and the response: :meth:`ServedModel.infer` gives class
indices and probabilities for validated requests, :meth:`ServedModel.decisions_for` builds the Rego inputs of
any (row, class) pair, and :meth:`ServedModel.respond` renders the response of the class finally served.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from acgs_workloads.artifacts import load_artifact
from acgs_workloads.components.base import Columns, Component, masked_logits
from acgs_workloads.components.predictor import Predictor, PredictorError
from acgs_workloads.contract import ArtifactMetadata, ModelSpec


class ModelLoadError(RuntimeError):
    """The artifact cannot be served (wrong component, unreadable, trained under another constitution)."""


@dataclass
class Inference:
    cols: Columns
    predicted: np.ndarray  # class index per request
    probabilities: np.ndarray  # [n, classes]


def pick_device(gpus_assigned: bool) -> torch.device:
    """CUDA when a GPU is assigned to this replica and torch sees one; else CPU."""
    if gpus_assigned and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


class ServedModel:
    """One component's model, ready for batched inference (thread-safe)."""

    def __init__(self, component: Component, model: torch.nn.Module, spec: ModelSpec, *, metadata: ArtifactMetadata,
                 sha256: str, uri: str, device: torch.device | None = None) -> None:
        self.component = component
        self.spec = spec
        self.metadata = metadata
        self.sha256 = sha256
        self.uri = uri
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, component: str, uri: str, expected_sha256: str, *, device: torch.device | None = None
             ) -> ServedModel:
        """Load and verify (sha256) the artifact at ``uri``; raises ``ArtifactDigestMismatch`` on a bad digest."""
        loaded = load_artifact(uri, expected_sha256)
        meta = loaded.metadata
        if meta.component != component:
            raise ModelLoadError(f"artifact {uri} holds a {meta.component!r} model, not {component!r}")
        predictor = Predictor(component)
        try:
            spec = meta.model_spec()
            predictor.load_state(loaded.state_dict, spec, meta.constitution_hash)
        except (KeyError, ValueError, RuntimeError, PredictorError) as error:
            raise ModelLoadError(f"artifact {uri} cannot be loaded as {component}: {error}") from error
        if predictor.model is None:
            raise ModelLoadError(f"artifact {uri} did not load")
        return cls(predictor.component, predictor.model, spec, metadata=meta,
                   sha256=loaded.artifact.sha256, uri=uri, device=device)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.component.classes)

    @property
    def trained_constitution_hash(self) -> str:
        return self.metadata.constitution_hash

    def infer(self, requests: Sequence[Any]) -> Inference:
        """Class indices and probabilities for validated requests (one forward pass)."""
        cols = self.component.columns_from_requests(requests, self.spec)
        arrays = self.component.inputs(cols, self.spec)
        x = torch.as_tensor(arrays["x"], dtype=self.component.input_dtype).to(self.device, non_blocking=True)
        mask = torch.as_tensor(arrays["mask"], dtype=torch.bool).to(self.device) if "mask" in arrays else None
        with self._lock, torch.inference_mode():
            logits = masked_logits(self.model(x).float(), mask)
            probs = torch.softmax(logits, dim=-1).cpu()
        return Inference(cols=cols, predicted=probs.argmax(dim=-1).numpy(), probabilities=probs.numpy())

    def decisions_for(self, cols: Columns, rows: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
        """The Rego ``input`` decision of request ``rows[i]`` answered with class ``classes[i]``."""
        subset = {name: values[rows] for name, values in cols.items()}
        return self.component.decisions(subset, np.asarray(classes, dtype=np.int64))

    def respond(self, request: Any, inference: Inference, index: int, served_class: int,
                constitution_hash: str) -> BaseModel:
        return self.component.respond(request, inference.cols, index, served_class,
                                      inference.probabilities[index], constitution_hash)
