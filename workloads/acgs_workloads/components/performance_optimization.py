"""performance-optimization: load and SLO features -> serving configuration (batch size, replicas).

Classes are (batch size, replicas) pairs and ``infeasible``. The reference configuration is the cheapest one
(fewest replicas, then smallest batch) that meets the reliability rule of the constitution (10% capacity
headroom, estimated p99 within the SLO) under the *true* service times, which are slower than the profiled
figures in the request by an unobserved factor (so reference labels are conservative by a hidden margin).
When nothing fits, the reference answer is ``infeasible``: the model says that no configuration meets the
SLO rather than recommending one that breaks the rule, and the response shows the highest-capacity
configuration as the best effort, flagged ``feasible: false`` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from torch import nn

from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest
from acgs_workloads.components.models import MLPClassifier
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
REPLICAS = (1, 2, 4, 8, 16)
INFEASIBLE = "infeasible"
CONFIGS = tuple(f"{b}x{r}" for b in BATCH_SIZES for r in REPLICAS)
CLASSES = (*CONFIGS, INFEASIBLE)
INFEASIBLE_CLASS = len(CONFIGS)
MAX_BATCH_WAIT_MS = 20.0
JITTER_SIGMA = 0.1
_B = np.array([b for b in BATCH_SIZES for _ in REPLICAS], dtype=np.float64)
_R = np.array([r for _ in BATCH_SIZES for r in REPLICAS], dtype=np.float64)


class LoadRequest(HashedRequest):
    request_rate_rps: float = Field(gt=0.0, le=1e6, description="Offered load.")
    slo_p99_ms: float = Field(gt=0.0, le=600_000.0, description="Latency objective (p99).")
    tokens_per_request: int = Field(default=128, ge=1, le=1_000_000)
    gpu: bool = False
    base_ms: float = Field(gt=0.0, le=60_000.0, description="Profiled fixed cost of one model call.")
    per_item_ms: float = Field(gt=0.0, le=60_000.0, description="Profiled cost per request in a batch.")


class ServingConfig(BaseModel):
    feasible: bool = Field(description="A configuration meets the SLO with 10% headroom (false: best effort shown).")
    reason: str | None = Field(default=None, description="Why no configuration fits (when not feasible).")
    batch_size: int
    replicas: int
    max_batch_wait_ms: float
    estimated_capacity_rps: float
    estimated_p99_ms: float
    constitutional_hash: str


def estimates(base: np.ndarray, per_item: np.ndarray, rate: np.ndarray, batch: np.ndarray,
              replicas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(capacity rps, estimated p99 ms): the same formulas as the constitution's reliability principle."""
    service = base + per_item * batch
    capacity = replicas * batch * 1000.0 / service
    fill = np.minimum(MAX_BATCH_WAIT_MS, (batch - 1) * replicas * 1000.0 / rate)
    return capacity, 2.0 * service + fill


def reference_config(base: np.ndarray, per_item: np.ndarray, rate: np.ndarray, slo: np.ndarray) -> np.ndarray:
    """Class index of the cheapest configuration meeting headroom and SLO, or :data:`INFEASIBLE_CLASS` when none
    does (vectorised over rows x configs)."""
    capacity, p99 = estimates(base[:, None], per_item[:, None], rate[:, None], _B[None], _R[None])
    ok = (capacity >= 1.1 * rate[:, None]) & (p99 <= slo[:, None])
    cost = np.where(ok, _R[None] * 1000.0 + _B[None], np.inf)
    return np.where(ok.any(axis=1), cost.argmin(axis=1), INFEASIBLE_CLASS).astype(np.int64)


def best_effort(base: float, per_item: float, rate: float) -> int:
    """The highest-capacity configuration (the answer shown when none meets the SLO)."""
    capacity, _ = estimates(np.array(base), np.array(per_item), np.array(rate), _B, _R)
    return int(np.argmax(capacity))


def config_of(index: int) -> tuple[int, int]:
    """(batch size, replicas) of a configuration class."""
    return BATCH_SIZES[index // len(REPLICAS)], REPLICAS[index % len(REPLICAS)]


class PerformanceOptimization(Component):
    name = "performance-optimization"
    classes = CLASSES
    request_model = LoadRequest
    response_model = ServingConfig

    def generate(self, examples: int, seed: int, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None) -> Columns:
        rng = np.random.default_rng(seed)
        tokens = np.exp(rng.uniform(np.log(16), np.log(1024), examples)).round()
        gpu = rng.random(examples) < 0.5
        speed = np.where(gpu, 0.15, 1.0)
        base = np.round((2.0 + tokens * 0.01) * speed, 3)
        per_item = np.round((0.2 + tokens * 0.004) * speed, 3)
        rate = np.round(np.exp(rng.uniform(np.log(20), np.log(20000), examples)), 2)
        slo = np.round(np.exp(rng.uniform(np.log(25), np.log(1000), examples)), 1)
        jitter = np.exp(np.abs(rng.normal(0.0, JITTER_SIGMA, examples)))  # true service is never faster
        cols: Columns = {"tokens": tokens, "gpu": gpu, "base_ms": base, "per_item_ms": per_item,
                         "request_rate_rps": rate, "slo_p99_ms": slo}
        cols[LABEL] = reference_config(base * jitter, per_item * jitter, rate, slo)
        return cols

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        """Load features plus, per batch size, the replicas needed for the load and the latency headroom."""
        rate, slo = cols["request_rate_rps"], cols["slo_p99_ms"]
        base, per_item = cols["base_ms"], cols["per_item_ms"]
        batches = np.array(BATCH_SIZES, dtype=np.float64)[None]
        service = base[:, None] + per_item[:, None] * batches
        replicas_needed = 1.1 * rate[:, None] * service / (1000.0 * batches)
        headroom = slo[:, None] / (2.0 * service)
        x = np.concatenate(
            [np.stack([np.log(rate) / 4.0, np.log(slo) / 4.0, np.log(cols["tokens"]) / 4.0,
                       cols["gpu"].astype(np.float64), np.log(base), np.log(per_item)], axis=1),
             np.log(replicas_needed) / 2.0, np.log(headroom) / 2.0],
            axis=1,
        ).astype(np.float32)
        return {"x": x}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return MLPClassifier(6 + 2 * len(BATCH_SIZES), len(CLASSES), spec)

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        """One decision per row; ``infeasible`` recommends no configuration, so its outcome has none to judge."""
        out: list[dict[str, Any]] = []
        for i, label in enumerate(predicted.tolist()):
            outcome: dict[str, Any] = {"feasible": False}
            if label != INFEASIBLE_CLASS:
                batch, replicas = config_of(label)
                outcome = {"feasible": True, "batch_size": batch, "replicas": replicas}
            out.append(
                {
                    "component": self.name,
                    "decision": CLASSES[label],
                    "safeguards": [],
                    "request": {k: float(cols[k][i]) for k in ("request_rate_rps", "slo_p99_ms", "base_ms",
                                                               "per_item_ms")},
                    "outcome": outcome,
                }
            )
        return out

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        return {
            "tokens": np.array([r.tokens_per_request for r in requests], dtype=np.float64),
            "gpu": np.array([r.gpu for r in requests], dtype=bool),
            "base_ms": np.array([r.base_ms for r in requests], dtype=np.float64),
            "per_item_ms": np.array([r.per_item_ms for r in requests], dtype=np.float64),
            "request_rate_rps": np.array([r.request_rate_rps for r in requests], dtype=np.float64),
            "slo_p99_ms": np.array([r.slo_p99_ms for r in requests], dtype=np.float64),
        }

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "request_rate_rps": float(cols["request_rate_rps"][index]),
            "slo_p99_ms": float(cols["slo_p99_ms"][index]),
            "tokens_per_request": int(cols["tokens"][index]),
            "gpu": bool(cols["gpu"][index]),
            "base_ms": float(cols["base_ms"][index]),
            "per_item_ms": float(cols["per_item_ms"][index]),
            "constitutional_hash": constitution_hash,
        }

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        base, per_item = float(cols["base_ms"][index]), float(cols["per_item_ms"][index])
        rate, slo = float(cols["request_rate_rps"][index]), float(cols["slo_p99_ms"][index])
        feasible = predicted != INFEASIBLE_CLASS
        batch, replicas = config_of(predicted if feasible else best_effort(base, per_item, rate))
        capacity, p99 = estimates(np.array(base), np.array(per_item), np.array(rate), np.array(float(batch)),
                                  np.array(float(replicas)))
        reason = None if feasible else (
            f"the model finds no configuration up to batch {BATCH_SIZES[-1]} x {REPLICAS[-1]} replicas that carries "
            f"1.1 x {rate:g} rps "
            f"within a p99 of {slo:g} ms; the highest-capacity one is shown "
            f"({float(capacity):.0f} rps, p99 {float(p99):.1f} ms)"
        )
        return ServingConfig(
            feasible=feasible,
            reason=reason,
            batch_size=batch,
            replicas=replicas,
            max_batch_wait_ms=MAX_BATCH_WAIT_MS,
            estimated_capacity_rps=round(float(capacity), 3),
            estimated_p99_ms=round(float(p99), 3),
            constitutional_hash=constitution_hash,
        )
