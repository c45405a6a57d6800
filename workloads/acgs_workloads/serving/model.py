"""The served model: one component's trained weights, KServe-style ``load()`` -> ``predict()`` -> ``health()``.

The one model class of the project: evaluation times :meth:`ServedModel.predict` for the latency gate, and
the Serve deployment's request pipeline (:class:`~acgs_workloads.serving.service.ModelService`) calls
:meth:`ServedModel.predict_batch`, so the gate measures what actually serves.

- :meth:`ServedModel.load` verifies an artifact (sha256) and rebuilds the model from the recorded ``ModelSpec``;
  :meth:`ServedModel.load_state` takes weights directly (the training driver's evaluation, tests).
- :meth:`ServedModel.predict_batch` answers many validated requests with one forward pass and, when a
  constitution evaluator is given as ``guard``, the runtime guard (one Rego evaluation for the batch, one
  more for replacement candidates): :func:`~acgs_workloads.serving.guard.guard_batch`.
- The pieces stay available for benchmarks: :meth:`infer` (class indices and probabilities),
  :meth:`decisions_for` (the Rego input of any (row, class) pair) and :meth:`respond`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from acgs_workloads.artifacts import LoadedArtifact, load_artifact
from acgs_workloads.components import get
from acgs_workloads.components.base import Columns, Component, masked_logits
from acgs_workloads.contract import ArtifactMetadata, EvaluationRecord, Lineage, ModelSpec
from acgs_workloads.serving.errors import ConstitutionHashMismatch, ModelLoadError, ModelNotLoaded
from acgs_workloads.serving.guard import Evaluator, GuardReport, guard_batch

__all__ = ["Inference", "ModelLoadError", "Prediction", "ServedModel", "pick_device"]


@dataclass
class Inference:
    cols: Columns
    predicted: np.ndarray  # class index per request
    probabilities: np.ndarray  # [n, classes]


@dataclass
class Prediction:
    """The answer to one request: the response of the class served, or a refusal (``response`` is None)."""

    response: BaseModel | None
    served_class: int  # -1: refused, no compliant decision
    guard: GuardReport | None = None  # None when the runtime guard is off
    critical: list[str] = field(default_factory=list)  # critical principles the model's own decision violated

    def row(self) -> dict[str, Any]:
        """The JSON response (with the guard's report)."""
        if self.response is None:
            raise ValueError("a refused prediction has no response")
        out = self.response.model_dump(mode="json")
        out["guard"] = self.guard.model_dump(mode="json") if self.guard is not None else None
        return out


def pick_device(gpus_assigned: bool) -> torch.device:
    """CUDA when a GPU is assigned to this replica and torch sees one; else CPU."""
    if gpus_assigned and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


class ServedModel:
    """One component's model, ready for batched inference (thread-safe)."""

    def __init__(self, component: str | Component, *, device: torch.device | None = None) -> None:
        self.component = get(component) if isinstance(component, str) else component
        self.device = device or torch.device("cpu")
        self.model: torch.nn.Module | None = None
        self.spec: ModelSpec | None = None
        self.constitution_hash: str | None = None  # the constitution the model was evaluated under
        self.metadata: ArtifactMetadata | None = None
        self.sha256: str | None = None
        self.uri: str | None = None
        self.lineage: Lineage | None = None  # traced at load; its signature verified when keys were given
        self.evaluation: EvaluationRecord | None = None  # the re-evaluation it serves under, if any
        self.loaded_at: float | None = None
        self.requests = 0
        self.errors = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def load(self, artifact: str | LoadedArtifact, expected_sha256: str | None = None, *,
             constitution_hash: str | None = None, verification_keys: Sequence[str] = ()) -> ServedModel:
        """Load weights + metadata from an artifact URI (sha256 verified: ``ArtifactDigestMismatch``) or an
        already loaded artifact; raises :class:`ModelLoadError` when it cannot be served. Returns ``self``.

        With ``verification_keys`` the model directory's signature is verified first (a missing, foreign or
        broken signature: :class:`ModelLoadError` naming the signature). With ``constitution_hash`` other than
        the one the model was trained under, a re-evaluation record for that hash (same weights) makes the
        model serve under it.
        """
        from acgs_workloads import signing, storage

        uri = artifact if isinstance(artifact, str) else artifact.artifact.uri
        signature = None
        if verification_keys:
            try:
                signature = signing.verify_model(uri, list(verification_keys))
            except (signing.SignatureError, signing.SigningKeyError) as error:
                raise ModelLoadError(f"refusing to serve: {error}") from error
        loaded = artifact if isinstance(artifact, LoadedArtifact) else load_artifact(artifact, expected_sha256)
        meta = loaded.metadata
        name = self.component.name
        if meta.component != name:
            raise ModelLoadError(f"artifact {uri} holds a {meta.component!r} model, not {name!r}")
        judged_under = meta.constitution_hash
        if constitution_hash and constitution_hash != meta.constitution_hash:
            record = storage.read_evaluation(uri, constitution_hash)
            if record is not None and record.model_sha256 == loaded.artifact.sha256:
                judged_under, self.evaluation = constitution_hash, record
        try:
            self.load_state(loaded.state_dict, meta.model_spec(), judged_under)
        except (KeyError, ValueError, RuntimeError) as error:
            raise ModelLoadError(f"artifact {uri} cannot be loaded as {name}: {error}") from error
        if isinstance(artifact, str):
            self.lineage = signing.trace(uri, signature)
        self.metadata = meta
        self.sha256 = loaded.artifact.sha256
        self.uri = uri
        return self

    def load_state(self, state_dict: Mapping[str, torch.Tensor], spec: ModelSpec, constitution_hash: str
                   ) -> ServedModel:
        """Load weights directly (the training driver's evaluation, tests). Returns ``self``."""
        model = self.component.build_model(spec)
        model.load_state_dict(dict(state_dict))
        model.eval()
        self.component.prepare_for_inference(model)
        self.model, self.spec, self.constitution_hash = model.to(self.device), spec, constitution_hash
        self.loaded_at = time.time()
        return self

    @property
    def ready(self) -> bool:
        return self.model is not None

    def verify(self, verification_keys: Sequence[str]) -> None:
        """Verify the signature of the loaded model's directory again (a replica's health check): the bytes on
        storage are still the bytes that were signed. :class:`ModelLoadError` when they are not."""
        from acgs_workloads import signing

        if self.uri is None:
            raise ModelNotLoaded()
        try:
            signing.verify_model(self.uri, list(verification_keys))
        except (signing.SignatureError, signing.SigningKeyError) as error:
            raise ModelLoadError(f"refusing to serve: {error}") from error

    def health(self) -> dict[str, Any]:
        """Liveness and what is served."""
        return {
            "status": "ok" if self.ready else "not-loaded",
            "component": self.component.name,
            "constitutionHash": self.constitution_hash,
            "sha256": self.sha256,
            "device": str(self.device),
            "requests": self.requests,
            "errors": self.errors,
        }

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.component.classes)

    @property
    def trained_constitution_hash(self) -> str:
        return self.constitution_hash or ""

    # ------------------------------------------------------------------ inference

    def validate(self, request: Mapping[str, Any] | BaseModel) -> Any:
        """The request as the component's pydantic model (raises pydantic.ValidationError)."""
        if isinstance(request, self.component.request_model):
            return request
        body = request.model_dump() if isinstance(request, BaseModel) else request
        return self.component.request_model.model_validate(body)

    def check_hash(self, request: Any, aliases: Collection[str] = ()) -> None:
        """:class:`ConstitutionHashMismatch` unless the request names the constitution the model serves or one
        of its ``aliases`` (the Constitution's ``spec.hashAliases``)."""
        if self.constitution_hash is None:
            raise ModelNotLoaded()
        requested = request.constitutional_hash
        if requested != self.constitution_hash and requested not in aliases:
            raise ConstitutionHashMismatch(self.constitution_hash, requested, list(aliases))

    def infer(self, requests: Sequence[Any]) -> Inference:
        """Class indices and probabilities for validated requests (one forward pass)."""
        if self.model is None or self.spec is None:
            raise ModelNotLoaded()
        cols = self.component.columns_from_requests(requests, self.spec)
        arrays = self.component.inputs(cols, self.spec)
        x = torch.as_tensor(arrays["x"], dtype=self.component.input_dtype).to(self.device, non_blocking=True)
        mask = torch.as_tensor(arrays["mask"], dtype=torch.bool).to(self.device) if "mask" in arrays else None
        classes = len(self.component.classes)
        with self._lock, torch.inference_mode():
            raw = self.model(x).float()
            logits = masked_logits(raw[:, :classes], mask)
            probs = torch.softmax(logits, dim=-1).cpu()
            facts = raw[:, classes:].cpu().numpy() if self.component.fact_width else None
        if facts is not None:  # judge on the more restrictive of the client's facts and the facts read
            self.component.apply_facts(cols, facts)
        return Inference(cols=cols, predicted=probs.argmax(dim=-1).numpy(), probabilities=probs.numpy())

    def decisions_for(self, cols: Columns, rows: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
        """The Rego ``input`` decision of request ``rows[i]`` answered with class ``classes[i]``."""
        return self.component.decisions_at(cols, np.asarray(rows, dtype=np.int64), np.asarray(classes, dtype=np.int64))

    def respond(self, request: Any, inference: Inference, index: int, served_class: int) -> BaseModel:
        """The component's response to request ``index`` answered with ``served_class``."""
        return self.component.respond(request, inference.cols, index, served_class,
                                      inference.probabilities[index], self.trained_constitution_hash)

    def predict_batch(self, requests: Sequence[Mapping[str, Any] | BaseModel], guard: Evaluator | None = None,
                      aliases: Collection[str] = ()) -> list[Prediction]:
        """Validate (pydantic ``ValidationError``), check each request's constitution hash (the model's own or
        one of ``aliases``), run the model once and, with ``guard``, the runtime guard: a decision that
        violates a critical principle is replaced by the best compliant one, or refused when there is none.
        Every response carries the model's own hash."""
        try:
            parsed = [self.validate(r) for r in requests]
            for request in parsed:
                self.check_hash(request, aliases)
            if not parsed:
                return []
            inference = self.infer(parsed)
            if guard is not None:
                self.component.explain(inference.cols, guard.evaluate)
            if guard is None:
                classes = [int(c) for c in inference.predicted]
                out = [Prediction(self.respond(r, inference, i, classes[i]), classes[i]) for i, r in enumerate(parsed)]
            else:
                guarded = guard_batch(guard, self.classes,
                                      lambda rows, cls: self.decisions_for(inference.cols, rows, cls),
                                      inference.predicted, inference.probabilities)
                out = [
                    Prediction(self.respond(r, inference, i, g.final) if g.final >= 0 else None, g.final,
                               g.report, g.critical)
                    for i, (r, g) in enumerate(zip(parsed, guarded, strict=True))
                ]
        except Exception:
            self.errors += 1
            raise
        self.requests += len(parsed)
        return out

    def predict(self, request: Mapping[str, Any] | BaseModel, guard: Evaluator | None = None) -> Prediction:
        """:meth:`predict_batch` for one request."""
        return self.predict_batch([request], guard)[0]
