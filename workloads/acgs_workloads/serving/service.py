"""The model service behind the HTTP routes: hash check, batched inference, runtime guard, metadata.

Ray-free: the Serve deployment (:mod:`acgs_workloads.serving.app`) only adds ``@serve.batch`` on top
(:attr:`ModelService.batcher`), so unit tests drive the same code through FastAPI's TestClient.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel, create_model

from acgs_workloads.contract import ModelAppArgs
from acgs_workloads.serving.guard import Evaluator, GuardReport, guard_batch
from acgs_workloads.serving.metrics import ReplicaMetrics
from acgs_workloads.serving.model import ModelLoadError, ServedModel

Row = dict[str, Any]
DEFAULT_GUARD_CACHE = 65_536
# Tuning knob (benchmarks): how the guard evaluates Rego -- "cached" (bundle + LRU cache, the default),
# "bundle" (precompiled bundle, no cache) or "reference" (the constitution package's evaluator).
GUARD_ENGINE_ENV = "ACGS_SERVING_GUARD_ENGINE"
GUARD_ENGINES = ("cached", "bundle", "reference")
Batcher = Callable[[Any], Awaitable["Row | Exception"]]


class ConstitutionHashMismatch(Exception):
    """The request expects another constitution than the one served (HTTP 409)."""

    def __init__(self, served: str, requested: str) -> None:
        super().__init__(f"request expects constitution {requested}, this deployment serves {served}")
        self.served = served
        self.requested = requested


class NoCompliantDecision(Exception):
    """Every possible decision for the request violates a critical principle (HTTP 422)."""

    def __init__(self, violations: Sequence[str]) -> None:
        super().__init__("no decision for this request satisfies the critical principles: " + ", ".join(violations))
        self.violations = list(violations)


def guard_evaluator(args: ModelAppArgs, cache_size: int) -> Evaluator:
    """The runtime guard's evaluator for the served constitution (engine from ``ACGS_SERVING_GUARD_ENGINE``)."""
    from acgs_workloads.constitution import ConstitutionEvaluator
    from acgs_workloads.serving.rego_fast import GuardEvaluator

    engine = os.environ.get(GUARD_ENGINE_ENV, "cached")
    if engine not in GUARD_ENGINES:
        raise ValueError(f"{GUARD_ENGINE_ENV}={engine!r}; expected one of {', '.join(GUARD_ENGINES)}")
    if engine == "reference":
        return ConstitutionEvaluator(args.constitution)
    return GuardEvaluator(args.constitution, cache_size=cache_size if engine == "cached" else 0)


@cache
def served_response_model(response_model: type[BaseModel]) -> type[BaseModel]:
    """The component's response plus the runtime guard's report (for the OpenAPI document)."""
    return create_model(
        f"Served{response_model.__name__}",
        __base__=response_model,
        guard=(GuardReport | None, None),
    )


class ModelService:
    """Everything a ModelServer replica does per request, without Ray."""

    def __init__(self, args: ModelAppArgs, model: ServedModel, evaluator: Evaluator | None,
                 metrics: ReplicaMetrics | None = None) -> None:
        if model.component.name != args.component:
            raise ModelLoadError(f"artifact {args.model_uri} holds a {model.component.name} model, "
                                 f"the deployment serves {args.component}")
        trained = model.trained_constitution_hash
        if trained != args.constitution.hash:
            raise ModelLoadError(
                f"artifact {args.model_uri} was evaluated under constitution {trained or '<none>'}, "
                f"the deployment serves {args.constitution.name}@{args.constitution.hash}; retrain or re-evaluate"
            )
        if args.runtime_guard and evaluator is None:
            raise ValueError("runtimeGuard is on but no constitution evaluator was given")
        self.args = args
        self.model = model
        self.evaluator = evaluator if args.runtime_guard else None
        self.metrics = metrics or ReplicaMetrics()
        self.request_model = model.component.request_model
        self.response_model = served_response_model(model.component.response_model)
        self.batcher: Batcher | None = None

    @classmethod
    def from_args(cls, args: ModelAppArgs, *, gpus_assigned: bool = False, metrics: ReplicaMetrics | None = None,
                  guard_cache_size: int = DEFAULT_GUARD_CACHE) -> ModelService:
        """Load (and sha256-verify) the artifact, compile the constitution; raises on any mismatch."""
        from acgs_workloads.serving.model import pick_device

        model = ServedModel.load(args.component, args.model_uri, args.model_sha256, device=pick_device(gpus_assigned))
        evaluator = guard_evaluator(args, guard_cache_size) if args.runtime_guard else None
        return cls(args, model, evaluator, metrics)

    @property
    def constitution_hash(self) -> str:
        return self.args.constitution.hash

    # ------------------------------------------------------------------ requests

    def check_hash(self, request: Any) -> None:
        if request.constitutional_hash != self.constitution_hash:
            raise ConstitutionHashMismatch(self.constitution_hash, request.constitutional_hash)

    async def predict(self, request: Any) -> Row:
        """The JSON response for one validated request (batched when a batcher is installed)."""
        self.check_hash(request)
        result = await self.batcher(request) if self.batcher is not None else self.predict_batch([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def predict_batch(self, requests: Sequence[Any]) -> list[Row | Exception]:
        """Responses (or a per-request refusal) for a batch: one forward pass, one guarded Rego query."""
        if not requests:
            return []
        inference = self.model.infer(requests)
        classes = self.model.classes
        hash_ = self.constitution_hash
        out: list[Row | Exception] = []
        if self.evaluator is None:
            for i, request in enumerate(requests):
                row = self.model.respond(request, inference, i, int(inference.predicted[i]), hash_).model_dump(
                    mode="json")
                row["guard"] = None
                self.metrics.decision(classes[int(inference.predicted[i])])
                out.append(row)
            return out
        guarded = guard_batch(
            self.evaluator, classes,
            lambda rows, cls: self.model.decisions_for(inference.cols, rows, cls),
            inference.predicted, inference.probabilities,
        )
        for i, (request, g) in enumerate(zip(requests, guarded, strict=True)):
            if g.critical:
                self.metrics.override(g.critical)
            if g.final < 0:
                out.append(NoCompliantDecision(g.critical))
                continue
            row = self.model.respond(request, inference, i, g.final, hash_).model_dump(mode="json")
            row["guard"] = g.report.model_dump(mode="json")
            self.metrics.decision(classes[g.final])
            out.append(row)
        return out

    # ------------------------------------------------------------------ introspection

    def health(self) -> Row:
        return {
            "status": "ok",
            "deployment": self.args.deployment,
            "component": self.args.component,
            "constitutionHash": self.constitution_hash,
            "sha256": self.model.sha256,
            "device": str(self.model.device),
            "guard": self.guard_stats(),
        }

    def guard_stats(self) -> Row | None:
        """Engine queries, decisions evaluated and cache hits of the runtime guard (None when it is off)."""
        if self.evaluator is None:
            return None
        stats = getattr(self.evaluator, "stats", None)
        engine = type(self.evaluator).__name__
        if stats is None:
            return {"engine": engine}
        return {"engine": engine, "queries": stats.queries, "evaluated": stats.evaluated, "cacheHits": stats.hits}

    def metadata(self) -> Row:
        meta = self.model.metadata
        batching = self.args.batching.wire() if self.args.batching is not None else None
        return {
            "deployment": self.args.deployment,
            "component": self.args.component,
            "constitution": {
                "name": self.args.constitution.name,
                "hash": self.constitution_hash,
                "principles": [{"id": p.id, "severity": p.severity} for p in self.args.constitution.principles],
            },
            "model": {
                "uri": self.args.model_uri,
                "sha256": self.model.sha256,
                "sizeBytes": meta.weights.size_bytes,
                "trainedConstitutionHash": self.model.trained_constitution_hash,
                "datasetDigest": meta.dataset_digest,
                "createdAt": meta.created_at,
                "metrics": meta.metrics.wire() if meta.metrics else None,
                "compliance": meta.compliance.wire() if meta.compliance else None,
            },
            "classes": list(self.model.classes),
            "runtimeGuard": self.args.runtime_guard,
            "batching": batching,
            "auth": self.args.api_key_sha256 is not None,
            "maxBodyBytes": self.args.max_body_bytes,
            "device": str(self.model.device),
        }
