"""The uniform component interface and the pieces every component shares (tensors, loss, inference)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec

Columns = dict[str, np.ndarray]
LABEL = "label"
MASK_FILL = -1e4


class HashedRequest(BaseModel):
    """Every request names the constitution it expects to be judged under."""

    model_config = ConfigDict(extra="forbid")

    constitutional_hash: str = Field(pattern=r"^[0-9a-f]{16}$", description="Hash of the expected constitution.")


class Component(ABC):
    """A governance model component: data, model, decisions (Rego inputs) and request/response schemas."""

    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    request_model: ClassVar[type[HashedRequest]]
    response_model: ClassVar[type[BaseModel]]
    input_dtype: ClassVar[torch.dtype] = torch.float32
    fact_width: ClassVar[int] = 0  # logits after the class logits: the facts the model read (text components)

    @abstractmethod
    def generate(self, examples: int, seed: int, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None) -> Columns:
        """``examples`` labelled examples as named numpy columns (``label`` holds the class index); components
        whose labels follow the Constitution take them from ``constitution`` (the default one when None)."""

    @abstractmethod
    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        """Model inputs: ``x`` (features or tokens) and optionally ``mask`` (allowed classes)."""

    @abstractmethod
    def build_model(self, spec: ModelSpec) -> nn.Module:
        """A freshly initialised model for ``spec``."""

    @abstractmethod
    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        """The constitution's ``input`` decision for every row with the predicted class."""

    def decisions_at(self, cols: Columns, rows: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
        """The ``input`` decision of request ``rows[i]`` answered with class ``classes[i]`` (default: the
        :meth:`decisions` of those rows' columns)."""
        subset = {name: values[rows] for name, values in cols.items()}
        return self.decisions(subset, np.asarray(classes, dtype=np.int64))

    @abstractmethod
    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        """Columns (without labels) for validated requests."""

    @abstractmethod
    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        """The response for request ``index`` of ``cols``."""

    @abstractmethod
    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        """A request (JSON body) equivalent to row ``index`` of ``cols``."""

    def targets(self, cols: Columns) -> dict[str, np.ndarray]:
        """Training targets besides ``label`` (e.g. the facts a text component learns to read)."""
        return {}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of a batch (default: cross-entropy of the class logits)."""
        return classification_loss(model, batch)

    def apply_facts(self, cols: Columns, fact_logits: np.ndarray) -> None:
        """Update request columns with the facts the model read (``fact_width`` logits per row)."""
        return None

    def explain(self, cols: Columns, evaluate: Callable[[Sequence[dict[str, Any]]], list[Any]]) -> None:
        """Add what the constitution says about each request to ``cols`` (the serving guard's evaluator, so a
        response can name the principles that decided); default: nothing."""
        return None

    def build_trainable(self, spec: ModelSpec) -> nn.Module:
        """The model a training run starts from (default: :meth:`build_model`; a component with pretrained parts
        copies them in here, and its artifact then carries them)."""
        return self.build_model(spec)

    def prepare_for_inference(self, model: nn.Module) -> None:
        """Put a trained model into its serving configuration (default: nothing to do)."""
        return None

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        """Component-specific figures computed on the test split."""
        return {}


def train_tensors(component: Component, cols: Columns, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The training tensors: ``x``, ``y`` and (if the component masks classes) ``mask``."""
    arrays = component.inputs(cols, spec)
    tensors = {"x": torch.as_tensor(arrays["x"], dtype=component.input_dtype)}
    if "mask" in arrays:
        tensors["mask"] = torch.as_tensor(arrays["mask"], dtype=torch.bool)
    tensors["y"] = torch.as_tensor(cols[LABEL], dtype=torch.int64)
    for name, values in component.targets(cols).items():
        tensors[name] = torch.as_tensor(values)
    return tensors


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return logits if mask is None else logits.masked_fill(~mask, MASK_FILL)


def classification_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the (masked) logits; computed in float32 under autocast."""
    logits = masked_logits(model(batch["x"]).float(), batch.get("mask"))
    return F.cross_entropy(logits, batch["y"])


@torch.no_grad()
def predict_arrays(model: nn.Module, arrays: dict[str, np.ndarray], dtype: torch.dtype,
                   batch_size: int = 1024, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class indices and class probabilities for model inputs (the first ``classes`` logits when the
    model also reads facts)."""
    model.eval()
    x = torch.as_tensor(arrays["x"], dtype=dtype)
    mask = torch.as_tensor(arrays["mask"], dtype=torch.bool) if "mask" in arrays else None
    probs: list[torch.Tensor] = []
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size]).float()[:, :classes]
        logits = masked_logits(logits, None if mask is None else mask[start : start + batch_size])
        probs.append(torch.softmax(logits, dim=-1))
    p = torch.cat(probs) if probs else torch.zeros((0, 1))
    return p.argmax(dim=-1).numpy(), p.numpy()


def dataset_digest(cols: Columns) -> str:
    """sha256 over the columns (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(cols):
        array = np.ascontiguousarray(cols[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        if array.dtype == object:  # text: the strings, not their addresses
            h.update("\x00".join(str(v) for v in array.reshape(-1)).encode())
        else:
            h.update(array.tobytes())
    return "sha256:" + h.hexdigest()


def split_columns(cols: Columns, test_fraction: float, seed: int) -> tuple[Columns, Columns]:
    """A seeded train/test split (at least one example on each side)."""
    n = len(cols[LABEL])
    order = np.random.default_rng(seed + 7919).permutation(n)
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    return {k: v[train_idx] for k, v in cols.items()}, {k: v[test_idx] for k, v in cols.items()}


def one_hot(index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((index.shape[0], size), dtype=np.float32)
    out[np.arange(index.shape[0]), index] = 1.0
    return out
