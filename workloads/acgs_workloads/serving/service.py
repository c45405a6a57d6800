"""The request pipeline of one model deployment: hash check, batching, runtime guard, metrics, metadata.

:class:`ModelService` is the per-request logic around the one served model
(:class:`~acgs_workloads.serving.model.ServedModel`): it checks that the artifact matches the deployment
(component, constitution), refuses a request naming another constitution (neither the served hash nor one
of its aliases, the Constitution's ``spec.hashAliases``) before it is queued, hands the request to the
batcher, turns each :class:`~acgs_workloads.serving.model.Prediction` into a JSON row (carrying the served
hash and the ``matched_hash``) or a refusal, and counts decisions and overrides (each override also written
as one audit line, :mod:`.audit`; refusals are audited by the HTTP layer). Ray-free: the Serve deployment
(:mod:`acgs_workloads.serving.app`) only adds ``@serve.batch`` on top (:attr:`ModelService.batcher`), so unit
tests drive the same code through FastAPI's TestClient.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel, Field, create_model

from acgs_workloads.contract import ModelAppArgs
from acgs_workloads.serving.audit import Auditor
from acgs_workloads.serving.errors import (
    ConstitutionHashMismatch,
    InvalidRequest,
    ModelLoadError,
    NoCompliantDecision,
)
from acgs_workloads.serving.guard import Evaluator, GuardReport
from acgs_workloads.serving.metrics import ReplicaMetrics
from acgs_workloads.serving.model import ServedModel, pick_device

Row = dict[str, Any]
PREDICT_ROUTE = "/predict"  # the one route that predicts (for the audit line of an override)
Batcher = Callable[[Any], Awaitable["Row | Exception"]]


def guard_evaluator(args: ModelAppArgs) -> Evaluator:
    """The runtime guard's evaluator for the served constitution: compiled once, with the decision cache."""
    from acgs_workloads.constitution import SERVING_CACHE_SIZE, ConstitutionEvaluator

    return ConstitutionEvaluator(args.constitution, cache_size=SERVING_CACHE_SIZE)


MATCHED_HASH = "matched_hash"
MODEL_SHA256 = "model_sha256"
"""The response field naming the hash the request was accepted under: the served hash or one of its aliases.
``constitutional_hash`` of every response is the served (current) hash."""


@cache
def served_response_model(response_model: type[BaseModel]) -> type[BaseModel]:
    """The component's response plus the runtime guard's report and the matched hash (for the OpenAPI document)."""
    return create_model(
        f"Served{response_model.__name__}",
        __base__=response_model,
        guard=(GuardReport | None, None),
        matched_hash=(
            str | None,
            Field(default=None, description="The hash the request named: the served constitutional_hash or one of "
                  "its aliases (spec.hashAliases of the Constitution)."),
        ),
        model_sha256=(
            str | None,
            Field(default=None, description="sha256 of the weights that answered (the ModelDeployment's "
                  "status.model.sha256)."),
        ),
    )


class ModelService:
    """Everything a ModelServer replica does per request, without Ray."""

    def __init__(self, args: ModelAppArgs, model: ServedModel, evaluator: Evaluator | None,
                 metrics: ReplicaMetrics | None = None) -> None:
        if not model.ready or model.metadata is None:
            raise ModelLoadError(f"artifact {args.model_uri} is not loaded")
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
        self.auditor = Auditor(deployment=args.deployment, component=args.component,
                               constitution_hash=args.constitution.hash, model_sha256=model.sha256,
                               metrics=self.metrics)
        self.request_model = model.component.request_model
        self.response_model = served_response_model(model.component.response_model)
        self.batcher: Batcher | None = None

    @classmethod
    def from_args(cls, args: ModelAppArgs, *, gpus_assigned: bool = False, metrics: ReplicaMetrics | None = None
                  ) -> ModelService:
        """Load (and sha256-verify) the artifact, compile the constitution; raises on any mismatch."""
        keys = args.verification.public_keys if args.verification is not None else ()
        model = ServedModel(args.component, device=pick_device(gpus_assigned)).load(
            args.model_uri, args.model_sha256, constitution_hash=args.constitution.hash, verification_keys=keys)
        evaluator = guard_evaluator(args) if args.runtime_guard else None
        return cls(args, model, evaluator, metrics)

    @property
    def constitution_hash(self) -> str:
        return self.args.constitution.hash

    @property
    def hash_aliases(self) -> list[str]:
        """Hashes accepted in a request besides the served one (the Constitution's ``spec.hashAliases``)."""
        return list(self.args.constitution.hash_aliases)

    # ------------------------------------------------------------------ requests

    def check_hash(self, request: Any) -> str:
        """The hash ``request`` matched (the served one or an alias); :class:`ConstitutionHashMismatch` otherwise."""
        requested: str = request.constitutional_hash
        if requested != self.constitution_hash and requested not in self.args.constitution.hash_aliases:
            raise ConstitutionHashMismatch(self.constitution_hash, requested, self.hash_aliases)
        return requested

    def check_principles(self, request: Any) -> None:
        """:class:`InvalidRequest` naming the ``constitutional_principles`` the served Constitution does not have."""
        asked = getattr(request, "constitutional_principles", None) or []
        known = [p.id for p in self.args.constitution.principles]
        unknown = [pid for pid in asked if pid not in known]
        if unknown:
            raise InvalidRequest([{
                "type": "value_error", "loc": ("body", "constitutional_principles"),
                "msg": f"unknown principle(s) {', '.join(map(repr, unknown))}; the constitution "
                       f"{self.args.constitution.name} has {', '.join(known)}",
            }])

    async def predict(self, request: Any) -> Row:
        """The JSON response for one validated request (batched when a batcher is installed). It carries the
        served hash as ``constitutional_hash`` and the hash the request named as ``matched_hash``."""
        matched = self.check_hash(request)
        self.check_principles(request)
        result = await self.batcher(request) if self.batcher is not None else self.predict_batch([request])[0]
        if isinstance(result, Exception):
            raise result
        return {**result, MATCHED_HASH: matched}

    def predict_batch(self, requests: Sequence[Any]) -> list[Row | Exception]:
        """Responses (or a per-request refusal) for a batch: one forward pass, one guarded Rego evaluation."""
        out: list[Row | Exception] = []
        model = self.model  # one model answers the whole batch, and the responses name its digest
        classes = model.classes
        predictions = model.predict_batch(requests, self.evaluator, self.args.constitution.hash_aliases)
        for request, prediction in zip(requests, predictions, strict=True):
            model_decision = prediction.guard.original_decision if prediction.guard is not None else None
            if prediction.critical:
                self.metrics.override(prediction.critical)
            if prediction.response is None:  # audited as a refusal where it is answered
                out.append(NoCompliantDecision(prediction.critical, model_decision=model_decision))
                continue
            served = classes[prediction.served_class]
            self.metrics.decision(served)
            if prediction.critical:
                self.auditor.override(request, decision=served, model_decision=model_decision,
                                      violated=prediction.critical, route=PREDICT_ROUTE)
            out.append({**prediction.row(), MODEL_SHA256: model.sha256})
        return out

    # ------------------------------------------------------------------ introspection

    def health(self) -> Row:
        return {
            "status": "ok",
            "deployment": self.args.deployment,
            "component": self.args.component,
            "constitutionHash": self.constitution_hash,
            "hashAliases": self.hash_aliases,
            "sha256": self.model.sha256,
            "device": str(self.model.device),
            "guard": self.guard_stats(),
        }

    def guard_stats(self) -> Row | None:
        """Engine queries, decisions evaluated and cache hits of the runtime guard (None when it is off)."""
        if self.evaluator is None:
            return None
        stats = getattr(self.evaluator, "stats", None)  # a test's fake evaluator has none
        engine = type(self.evaluator).__name__
        if stats is None:
            return {"engine": engine}
        return {"engine": engine, "queries": stats.queries, "evaluated": stats.evaluated, "cacheHits": stats.hits}

    def metadata(self) -> Row:
        meta = self.model.metadata
        assert meta is not None  # the constructor refuses a model without artifact metadata
        batching = self.args.batching.wire() if self.args.batching is not None else None
        return {
            "deployment": self.args.deployment,
            "component": self.args.component,
            "constitution": {
                "name": self.args.constitution.name,
                "hash": self.constitution_hash,
                "hashAliases": self.hash_aliases,
                "principles": [{"id": p.id, "severity": p.severity} for p in self.args.constitution.principles],
            },
            "model": {
                "uri": self.args.model_uri,
                "sha256": self.model.sha256,
                "sizeBytes": meta.weights.size_bytes,
                "trainedConstitutionHash": self.model.trained_constitution_hash,
                "datasetDigest": meta.dataset_digest,
                "lineage": self.model.lineage.wire() if self.model.lineage else None,
                "reevaluation": self.model.evaluation.wire() if self.model.evaluation else None,
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
