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

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
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
PRIMARY, CANARY = "primary", "canary"  # which model answered (the acgs_serve_predictions counter)
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


def canary_picks(answered: int, n: int, percent: int) -> list[bool]:
    """Which of the next ``n`` requests (after ``answered``) the canary answers: request ``k`` does when
    ``floor((k + 1) * percent / 100)`` passes an integer, so any 100 consecutive requests send exactly
    ``percent`` to the canary, spread evenly (a stride, not a coin: the share holds on every replica)."""
    return [((k + 1) * percent) // 100 > (k * percent) // 100 for k in range(answered, answered + n)]


def check_model(args: ModelAppArgs, model: ServedModel, uri: str) -> None:
    """:class:`ModelLoadError` unless ``model`` is loaded, of the deployment's component and judged under its
    constitution."""
    if not model.ready or model.metadata is None:
        raise ModelLoadError(f"artifact {uri} is not loaded")
    if model.component.name != args.component:
        raise ModelLoadError(f"artifact {uri} holds a {model.component.name} model, "
                             f"the deployment serves {args.component}")
    trained = model.trained_constitution_hash
    if trained != args.constitution.hash:
        raise ModelLoadError(
            f"artifact {uri} was evaluated under constitution {trained or '<none>'}, "
            f"the deployment serves {args.constitution.name}@{args.constitution.hash}; retrain or re-evaluate"
        )


class ModelService:
    """Everything a ModelServer replica does per request, without Ray.

    With a canary (``args.canary``), both models are loaded and checked alike; :func:`canary_picks` sends its
    share of the requests to the canary, and each response names the digest of the model that answered it.
    """

    def __init__(self, args: ModelAppArgs, model: ServedModel, evaluator: Evaluator | None,
                 metrics: ReplicaMetrics | None = None, canary: ServedModel | None = None) -> None:
        check_model(args, model, args.model_uri)
        if (canary is None) != (args.canary is None):
            raise ValueError("a canary model is given exactly when args.canary is set")
        if canary is not None and args.canary is not None:
            check_model(args, canary, args.canary.model_uri)
        if args.runtime_guard and evaluator is None:
            raise ValueError("runtimeGuard is on but no constitution evaluator was given")
        self.args = args
        self.model = model
        self.evaluator = evaluator if args.runtime_guard else None
        self.metrics = metrics or ReplicaMetrics()
        self.auditor = Auditor(deployment=args.deployment, component=args.component,
                               constitution_hash=args.constitution.hash, model_sha256=model.sha256,
                               metrics=self.metrics)
        self.canary = canary
        self.canary_percent = args.canary.traffic_percent if args.canary is not None else 0
        self.canary_auditor = replace(self.auditor, model_sha256=canary.sha256) if canary is not None else None
        self._answered = 0  # predictions split so far (the canary's stride)
        self._split_lock = threading.Lock()
        self.request_model = model.component.request_model
        self.response_model = served_response_model(model.component.response_model)
        self.batcher: Batcher | None = None

    @classmethod
    def from_args(cls, args: ModelAppArgs, *, gpus_assigned: bool = False, metrics: ReplicaMetrics | None = None
                  ) -> ModelService:
        """Load (and sha256-verify) the artifact, compile the constitution; raises on any mismatch."""
        keys = args.verification.public_keys if args.verification is not None else ()

        def load(uri: str, sha256: str) -> ServedModel:
            return ServedModel(args.component, device=pick_device(gpus_assigned)).load(
                uri, sha256, constitution_hash=args.constitution.hash, verification_keys=keys)

        model = load(args.model_uri, args.model_sha256)
        canary = load(args.canary.model_uri, args.canary.model_sha256) if args.canary is not None else None
        evaluator = guard_evaluator(args) if args.runtime_guard else None
        return cls(args, model, evaluator, metrics, canary)

    @property
    def models(self) -> list[ServedModel]:
        """The served models: the primary, then the canary if there is one."""
        return [self.model] if self.canary is None else [self.model, self.canary]

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
        """Responses (or a per-request refusal) for a batch: one forward pass, one guarded Rego evaluation per
        model that answers part of it (the canary's share goes to the canary)."""
        if self.canary is None or self.canary_percent == 0 or not requests:
            return self._answer(self.model, PRIMARY, requests)
        with self._split_lock:
            picks = canary_picks(self._answered, len(requests), self.canary_percent)
            self._answered += len(requests)
        out: list[Row | Exception | None] = [None] * len(requests)
        for model, label, chosen in ((self.model, PRIMARY, False), (self.canary, CANARY, True)):
            where = [i for i, pick in enumerate(picks) if pick == chosen]
            if where:
                for i, row in zip(where, self._answer(model, label, [requests[i] for i in where]), strict=True):
                    out[i] = row
        return [row for row in out if row is not None]

    def _answer(self, model: ServedModel, label: str, requests: Sequence[Any]) -> list[Row | Exception]:
        """``model`` answers ``requests``; the responses name its digest."""
        out: list[Row | Exception] = []
        classes = model.classes
        auditor = self.canary_auditor if label == CANARY and self.canary_auditor is not None else self.auditor
        self.metrics.answered_by(label, len(requests))
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
                auditor.override(request, decision=served, model_decision=model_decision,
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
            "canary": self.canary_summary(),
        }

    def canary_summary(self) -> Row | None:
        """The canary's digest and share (None without a canary)."""
        if self.canary is None or self.args.canary is None:
            return None
        return {"uri": self.args.canary.model_uri, "sha256": self.canary.sha256,
                "trafficPercent": self.canary_percent,
                "lineage": self.canary.lineage.wire() if self.canary.lineage else None}

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
            "canary": self.canary_summary(),
            "classes": list(self.model.classes),
            "runtimeGuard": self.args.runtime_guard,
            "batching": batching,
            "auth": self.args.api_key_sha256 is not None,
            "maxBodyBytes": self.args.max_body_bytes,
            "device": str(self.model.device),
        }
