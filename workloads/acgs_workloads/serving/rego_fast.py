"""The runtime guard's evaluator: the constitution's batched Rego rules compiled once into a bundle, plus a cache.

:class:`~acgs_workloads.constitution.ConstitutionEvaluator` (the reference) compiles the modules and the
query on every ``query`` call (tens of milliseconds in rego-cpp, whatever the batch size). A replica
evaluates the same constitution for its whole life, so this evaluator

1. compiles the rewritten principle modules (:func:`acgs_workloads.constitution.rewrite.batch_module`) and the
   batch query once into a regopy ``Bundle`` and runs each batch with ``query_bundle`` (one query per batch);
2. keeps an LRU cache from the canonical JSON of a decision to its violations: Rego evaluation is a pure
   function of ``input`` under a fixed constitution, so a cached answer is exactly the engine's answer.

Principles the rewrite does not support are answered by the reference evaluator, one query per decision.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regopy import Interpreter
from regopy.rego_shared import rego_bundle_query, rego_free_output, rego_output_string

from acgs_workloads.constitution import ConstitutionEvaluator, RegoEvalError, Violations
from acgs_workloads.constitution.engine import new_interpreter, readable_error, set_input
from acgs_workloads.constitution.rewrite import batch_module
from acgs_workloads.contract import ConstitutionSnapshot

WRAPPER_PACKAGE = "acgs_guard_all"
DEFAULT_CACHE_SIZE = 65_536


@dataclass
class EvaluatorStats:
    queries: int = 0  # engine queries run
    evaluated: int = 0  # decisions sent to the engine
    hits: int = 0  # decisions answered from the cache


def decision_key(decision: Mapping[str, Any]) -> str:
    return json.dumps(decision, sort_keys=True, separators=(",", ":"), default=str)


def bundle_modules(constitution: ConstitutionSnapshot, principle_ids: Sequence[str]) -> dict[str, str]:
    """The rewritten modules of ``principle_ids`` and a wrapper mapping them over ``input.decisions``."""
    modules: dict[str, str] = {}
    calls = []
    for index, principle in enumerate(constitution.principles):
        if principle.id not in principle_ids:
            continue
        package = f"acgs_guard.p{index}"
        source = batch_module(principle.rego, package)
        if source is None:
            raise RegoEvalError(f"principle {principle.id} cannot be batched")
        modules[f"guard-{principle.id}.rego"] = source
        calls.append(f"data.{package}.violations(d)")
    joined = ", ".join(calls)
    modules["guard-wrapper.rego"] = (
        f"package {WRAPPER_PACKAGE}\n\nimport rego.v1\n\nresults := [[{joined}] | some d in input.decisions]\n"
    )
    return modules


class GuardEvaluator:
    """Evaluates decisions against a constitution with a precompiled bundle and an LRU cache (thread-safe)."""

    def __init__(self, constitution: ConstitutionSnapshot, *, cache_size: int = DEFAULT_CACHE_SIZE,
                 use_bundle: bool = True) -> None:
        self.reference = ConstitutionEvaluator(constitution)  # compile check, severities, fallback path
        self.constitution = constitution
        self.severity: dict[str, str] = dict(self.reference.severity)
        self.cache_size = cache_size
        self.stats = EvaluatorStats()
        self._cache: OrderedDict[str, Violations] = OrderedDict()
        self._lock = threading.Lock()
        self.batched: tuple[str, ...] = self.reference.plan.batched if use_bundle else ()
        self.per_decision: tuple[str, ...] = tuple(p.id for p in constitution.principles if p.id not in self.batched)
        self._runner: Interpreter | None = None
        self._bundle: Any = None
        if self.batched:
            builder = new_interpreter(bundle_modules(constitution, self.batched))
            self._bundle = builder.build(f"data.{WRAPPER_PACKAGE}.results")
            if not self._bundle.ok():
                raise RegoEvalError(f"constitution {constitution.name} does not build into a bundle")
            self._builder = builder  # the bundle refers to the builder's state; keep it alive
            self._runner = Interpreter()

    def _query_bundle(self, decisions: Sequence[Mapping[str, Any]]) -> list[Violations]:
        assert self._runner is not None
        set_input(self._runner, {"decisions": [dict(d) for d in decisions]})
        impl = rego_bundle_query(self._runner._impl, self._bundle._impl)
        try:
            text = rego_output_string(impl)
        finally:
            rego_free_output(impl)
        if text is None or text.strip().startswith("("):
            raise RegoEvalError(readable_error(text or "bundle query failed without output"))
        output = json.loads(text)
        first = output[0] if isinstance(output, list) else output
        rows = first.get("expressions", [None])[0] if isinstance(first, dict) else None
        if not isinstance(rows, list) or len(rows) != len(decisions):
            raise RegoEvalError(f"bundle query returned {type(rows).__name__} for {len(decisions)} decisions")
        results: list[Violations] = []
        for row in rows:
            found: Violations = {}
            for pid, messages in zip(self.batched, row, strict=True):
                if messages:
                    found[pid] = sorted(str(m) for m in messages)
            results.append(found)
        return results

    def _evaluate_uncached(self, decisions: Sequence[Mapping[str, Any]]) -> list[Violations]:
        results: list[Violations] = [{} for _ in decisions]
        if self.batched:
            results = self._query_bundle(decisions)
            self.stats.queries += 1
        if self.per_decision:
            for found, decision in zip(results, decisions, strict=True):
                found.update(self.reference.evaluate_one(decision, self.per_decision))
                self.stats.queries += 1
        self.stats.evaluated += len(decisions)
        return results

    def evaluate(self, decisions: Sequence[Mapping[str, Any]]) -> list[Violations]:
        """Violations of every decision, in order: cached answers, the rest in one bundle query."""
        keys = [decision_key(d) for d in decisions]
        with self._lock:
            known: dict[str, Violations] = {}
            missing: dict[str, Mapping[str, Any]] = {}
            for key, decision in zip(keys, decisions, strict=True):
                if key in known or key in missing:
                    continue
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    known[key] = cached
                    self.stats.hits += 1
                else:
                    missing[key] = decision
            if missing:
                for key, found in zip(missing, self._evaluate_uncached(list(missing.values())), strict=True):
                    known[key] = found
                    if self.cache_size > 0:
                        self._cache[key] = found
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [{pid: list(msgs) for pid, msgs in known[key].items()} for key in keys]
