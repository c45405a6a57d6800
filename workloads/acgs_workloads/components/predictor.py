"""The predictor of a trained component: ``load(artifact)`` -> ``predict(request)`` -> ``health()``."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pydantic import BaseModel

from acgs_workloads.artifacts import LoadedArtifact, load_artifact
from acgs_workloads.components import get
from acgs_workloads.components.base import Component, predict_arrays
from acgs_workloads.contract import ArtifactMetadata, ModelSpec


class PredictorError(RuntimeError):
    """The predictor cannot answer (not loaded, bad artifact)."""


class ConstitutionMismatch(PredictorError):
    """A request names another constitution than the one the model was evaluated under."""

    def __init__(self, served: str, requested: str) -> None:
        super().__init__(f"request expects constitution {requested}, this model serves {served}")
        self.served = served
        self.requested = requested


class Predictor:
    """Serves one component's model. Thread-safe for concurrent ``predict`` calls."""

    def __init__(self, component: str | Component) -> None:
        self.component = get(component) if isinstance(component, str) else component
        self.model: torch.nn.Module | None = None
        self.spec: ModelSpec | None = None
        self.constitution_hash: str | None = None
        self.artifact_sha256: str | None = None
        self.metadata: ArtifactMetadata | None = None
        self.requests = 0
        self.errors = 0
        self.loaded_at: float | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def load(self, artifact: str | LoadedArtifact, expected_sha256: str | None = None) -> None:
        """Load weights + metadata from an artifact URI (sha256 verified) or an already loaded artifact."""
        loaded = artifact if isinstance(artifact, LoadedArtifact) else load_artifact(artifact, expected_sha256)
        meta = loaded.metadata
        if meta.component != self.component.name:
            raise PredictorError(f"artifact holds {meta.component!r}, not {self.component.name!r}")
        self.metadata = meta
        self.load_state(loaded.state_dict, meta.model_spec(), meta.constitution_hash)
        self.artifact_sha256 = loaded.artifact.sha256

    def load_state(self, state_dict: Mapping[str, torch.Tensor], spec: ModelSpec, constitution_hash: str) -> None:
        """Load weights directly (training driver, tests)."""
        model = self.component.build_model(spec)
        model.load_state_dict(dict(state_dict))
        model.eval()
        self.component.prepare_for_inference(model)
        self.model, self.spec, self.constitution_hash = model, spec, constitution_hash
        self.loaded_at = time.time()

    def health(self) -> dict[str, Any]:
        """Liveness and what is served."""
        return {
            "status": "ok" if self.model is not None else "not-loaded",
            "component": self.component.name,
            "constitutionHash": self.constitution_hash,
            "sha256": self.artifact_sha256,
            "requests": self.requests,
            "errors": self.errors,
        }

    # ------------------------------------------------------------------ inference

    def validate(self, request: Mapping[str, Any] | BaseModel) -> Any:
        """The request as the component's pydantic model (raises pydantic.ValidationError)."""
        if isinstance(request, self.component.request_model):
            return request
        body = request.model_dump() if isinstance(request, BaseModel) else request
        return self.component.request_model.model_validate(body)

    def predict(self, request: Mapping[str, Any] | BaseModel) -> BaseModel:
        """Validate, check the constitution hash, run the model and build the response."""
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: Sequence[Mapping[str, Any] | BaseModel]) -> list[BaseModel]:
        """Like :meth:`predict` for many requests in one forward pass."""
        if self.model is None or self.spec is None or self.constitution_hash is None:
            raise PredictorError("predictor is not loaded")
        try:
            parsed = [self.validate(r) for r in requests]
            for request in parsed:
                if request.constitutional_hash != self.constitution_hash:
                    raise ConstitutionMismatch(self.constitution_hash, request.constitutional_hash)
            cols = self.component.columns_from_requests(parsed, self.spec)
            arrays = self.component.inputs(cols, self.spec)
            with self._lock:
                predicted, probabilities = predict_arrays(self.model, arrays, self.component.input_dtype)
            responses = [
                self.component.respond(r, cols, i, int(predicted[i]), probabilities[i], self.constitution_hash)
                for i, r in enumerate(parsed)
            ]
        except Exception:
            self.errors += 1
            raise
        self.requests += len(parsed)
        return responses
