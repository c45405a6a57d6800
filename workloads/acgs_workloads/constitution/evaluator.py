"""The one evaluator of decisions against a constitution in the real Rego engine.

Used by label generation, evaluation (compliance), the runtime guard of the model servers and the benchmarks.

- Compiled once: every principle is rewritten into a function of a decision (see
  :mod:`acgs_workloads.constitution.rewrite`) and a wrapper module maps all of them over ``input.decisions``;
  that query is built once into a regopy ``Bundle`` (:class:`~acgs_workloads.constitution.engine.CompiledQuery`),
  so each chunk of decisions costs one evaluation and no compilation. Principles the rewrite does not support
  are evaluated one decision at a time with their original module (also a precompiled query).
- Optional cache (``cache_size > 0``, the serving path): an LRU map from the canonical JSON of a decision (its
  facts) to its violations. Rego evaluation is a pure function of ``input`` under a fixed constitution, so a
  cached answer is exactly the engine's answer.
- Thread-safe: one lock serialises the engine (its interpreters hold the input between set and query) and
  the cache.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acgs_workloads.constitution.compiler import compile_errors, package_of
from acgs_workloads.constitution.engine import CompiledQuery, RegoEvalError, new_interpreter, query_json, set_input
from acgs_workloads.constitution.rewrite import batch_module
from acgs_workloads.contract import ConstitutionSnapshot, Principle

Decision = Mapping[str, Any]
Violations = dict[str, list[str]]  # principle id -> messages (only principles that fired)

_WRAPPER_PACKAGE = "acgs_batch_all"
DEFAULT_CHUNK_SIZE = 500
SERVING_CACHE_SIZE = 65_536  # decisions remembered by a model server's runtime guard


@dataclass(frozen=True)
class BatchPlan:
    """Which principles are evaluated in the batched module and which one decision at a time."""

    batched: tuple[str, ...]
    per_decision: tuple[str, ...]


@dataclass
class EvaluatorStats:
    queries: int = 0  # engine evaluations run
    evaluated: int = 0  # decisions sent to the engine
    hits: int = 0  # decisions answered from the cache


def decision_key(decision: Decision) -> str:
    """The cache key of a decision: its canonical JSON."""
    return json.dumps(decision, sort_keys=True, separators=(",", ":"), default=str)


def _batched_query(principles: Sequence[Principle]) -> tuple[dict[str, str], dict[str, str]]:
    """(principle id -> package of its rewritten module, file name -> source incl. the wrapper) of the
    principles the rewrite supports."""
    packages: dict[str, str] = {}
    modules: dict[str, str] = {}
    for index, principle in enumerate(principles):
        package = f"acgs_batch.p{index}"
        source = batch_module(principle.rego, package)
        if source is not None:
            packages[principle.id] = package
            modules[f"batch-{principle.id}.rego"] = source
    calls = ", ".join(f"data.{pkg}.violations(d)" for pkg in packages.values())
    modules["batch-wrapper.rego"] = (
        f"package {_WRAPPER_PACKAGE}\n\nimport rego.v1\n\nresults := [[{calls}] | some d in input.decisions]\n"
    )
    return packages, modules


class ConstitutionEvaluator:
    """Evaluates decisions against every principle of a constitution (compiled once, optionally cached)."""

    def __init__(self, constitution: ConstitutionSnapshot, chunk_size: int = DEFAULT_CHUNK_SIZE, *,
                 cache_size: int = 0) -> None:
        errors = compile_errors(constitution.principles)
        if errors:
            detail = "; ".join(f"{pid}: {msg}" for pid, msg in errors.items())
            raise RegoEvalError(f"constitution {constitution.name} does not compile: {detail}")
        self.constitution = constitution
        self.chunk_size = chunk_size
        self.cache_size = max(0, cache_size)
        self.principles: tuple[Principle, ...] = tuple(constitution.principles)
        self.severity: dict[str, str] = {p.id: p.severity for p in self.principles}
        self.stats = EvaluatorStats()
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, Violations] = OrderedDict()
        self._packages = {p.id: package_of(p.rego) for p in self.principles}
        originals = {f"{p.id}.rego": p.rego for p in self.principles}
        self._single = new_interpreter(originals)  # the reference path: any principles, one decision
        packages, modules = _batched_query(self.principles)
        self._batch: CompiledQuery | None = None
        if packages:
            try:
                self._batch = CompiledQuery(modules, f"data.{_WRAPPER_PACKAGE}.results")
            except RegoEvalError:
                packages = {}
        self.plan = BatchPlan(
            batched=tuple(packages),
            per_decision=tuple(p.id for p in self.principles if p.id not in packages),
        )
        self._per_decision: CompiledQuery | None = None
        if self.plan.per_decision:
            self._per_decision = CompiledQuery(originals, self._violation_query(self.plan.per_decision))

    def _violation_query(self, principle_ids: Sequence[str]) -> str:
        return "[" + ", ".join(f"data.{self._packages[pid]}.violation" for pid in principle_ids) + "]"

    @staticmethod
    def _found(principle_ids: Sequence[str], values: Any) -> Violations:
        found: Violations = {}
        for pid, value in zip(principle_ids, values or [], strict=False):
            if value:
                found[pid] = sorted(str(m) for m in value)
        return found

    # ------------------------------------------------------------------ single decisions (reference path)

    def evaluate_one(self, decision: Decision, principle_ids: Sequence[str] | None = None) -> Violations:
        """Violations of one decision: one query over ``input`` with the original modules (the reference
        semantics, no rewriting, no cache)."""
        ids = list(principle_ids) if principle_ids is not None else [p.id for p in self.principles]
        if not ids:
            return {}
        with self._lock:
            set_input(self._single, dict(decision))
            values = query_json(self._single, self._violation_query(ids))
            self.stats.queries += 1
        return self._found(ids, values)

    # ------------------------------------------------------------------ batches

    def _evaluate_chunk(self, chunk: Sequence[Decision]) -> list[Violations]:
        results: list[Violations] = [{} for _ in chunk]
        if self._batch is not None:
            rows = self._batch.run({"decisions": [dict(d) for d in chunk]})
            self.stats.queries += 1
            if not isinstance(rows, list) or len(rows) != len(chunk):
                raise RegoEvalError(f"batched query returned {type(rows).__name__} for {len(chunk)} decisions")
            for found, row in zip(results, rows, strict=True):
                found.update(self._found(self.plan.batched, row))
        if self._per_decision is not None:
            for found, decision in zip(results, chunk, strict=True):
                found.update(self._found(self.plan.per_decision, self._per_decision.run(dict(decision))))
                self.stats.queries += 1
        self.stats.evaluated += len(chunk)
        return results

    def evaluate(self, decisions: Sequence[Decision]) -> list[Violations]:
        """Violations of every decision, in order.

        Identical decisions are evaluated once; cached ones (when the cache is on) are not evaluated again;
        the rest go to the engine in chunks of ``chunk_size``, one evaluation per chunk.
        """
        keys = [decision_key(d) for d in decisions]
        with self._lock:
            known: dict[str, Violations] = {}
            missing: dict[str, Decision] = {}
            for key, decision in zip(keys, decisions, strict=True):
                if key in known or key in missing:
                    continue
                cached = self._cache.get(key) if self.cache_size else None
                if cached is not None:
                    self._cache.move_to_end(key)
                    known[key] = cached
                    self.stats.hits += 1
                else:
                    missing[key] = decision
            unique = list(missing.values())
            answers: list[Violations] = []
            for start in range(0, len(unique), self.chunk_size):
                answers.extend(self._evaluate_chunk(unique[start : start + self.chunk_size]))
            for key, found in zip(missing, answers, strict=True):
                known[key] = found
                if self.cache_size:
                    self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [{pid: list(msgs) for pid, msgs in known[key].items()} for key in keys]

    def critical(self, violations: Violations) -> list[str]:
        """The critical principles among ``violations``."""
        return [pid for pid in violations if self.severity.get(pid) == "critical"]


def violation_counts(results: Sequence[Violations], principle_ids: Sequence[str]) -> dict[str, int]:
    """Principle id -> number of decisions that violate it (every principle listed, zeros included)."""
    counts = {pid: 0 for pid in principle_ids}
    for found in results:
        for pid in found:
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def compliance_share(results: Sequence[Violations]) -> float:
    """Share of decisions with no violation at all (1.0 for no decisions)."""
    if not results:
        return 1.0
    return sum(1 for found in results if not found) / len(results)
