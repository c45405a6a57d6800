"""Batched evaluation of decisions against a constitution in the real Rego engine.

One engine query answers a whole chunk of decisions: every principle is rewritten into a function of a
decision (see :mod:`acgs_workloads.constitution.rewrite`) and a wrapper module maps all of them over
``input.decisions``. Principles the rewrite does not support are answered one query per decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acgs_workloads.constitution.compiler import compile_errors, package_of
from acgs_workloads.constitution.engine import RegoEvalError, new_interpreter, query_json, set_input
from acgs_workloads.constitution.rewrite import batch_module
from acgs_workloads.contract import ConstitutionSnapshot, Principle

Decision = Mapping[str, Any]
Violations = dict[str, list[str]]  # principle id -> messages (only principles that fired)

_WRAPPER_PACKAGE = "acgs_batch_all"


@dataclass(frozen=True)
class BatchPlan:
    """Which principles are evaluated in the batched module and which one decision at a time."""

    batched: tuple[str, ...]
    per_decision: tuple[str, ...]


class ConstitutionEvaluator:
    """Evaluates decisions against every principle of a constitution (compiled once, reused)."""

    def __init__(self, constitution: ConstitutionSnapshot, chunk_size: int = 500) -> None:
        errors = compile_errors(constitution.principles)
        if errors:
            detail = "; ".join(f"{pid}: {msg}" for pid, msg in errors.items())
            raise RegoEvalError(f"constitution {constitution.name} does not compile: {detail}")
        self.constitution = constitution
        self.chunk_size = chunk_size
        self.principles: tuple[Principle, ...] = tuple(constitution.principles)
        self.severity = {p.id: p.severity for p in self.principles}
        self._single = new_interpreter({f"{p.id}.rego": p.rego for p in self.principles})
        batched: dict[str, str] = {}
        modules: dict[str, str] = {}
        for index, principle in enumerate(self.principles):
            package = f"acgs_batch.p{index}"
            source = batch_module(principle.rego, package)
            if source is not None:
                batched[principle.id] = package
                modules[f"batch-{principle.id}.rego"] = source
        calls = ", ".join(f"data.{pkg}.violations(d)" for pkg in batched.values())
        modules["batch-wrapper.rego"] = (
            f"package {_WRAPPER_PACKAGE}\n\nimport rego.v1\n\nresults := [[{calls}] | some d in input.decisions]\n"
        )
        try:
            self._batch = new_interpreter(modules) if batched else None
        except RegoEvalError:
            batched, self._batch = {}, None
        self._batched_packages = batched
        self.plan = BatchPlan(
            batched=tuple(batched),
            per_decision=tuple(p.id for p in self.principles if p.id not in batched),
        )

    # ------------------------------------------------------------------ single decisions (reference path)

    def evaluate_one(self, decision: Decision, principle_ids: Sequence[str] | None = None) -> Violations:
        """Violations of one decision: one query over ``input`` (the reference semantics, no rewriting)."""
        ids = list(principle_ids) if principle_ids is not None else [p.id for p in self.principles]
        if not ids:
            return {}
        packages = {p.id: package_of(p.rego) for p in self.principles}
        set_input(self._single, dict(decision))
        query = "[" + ", ".join(f"data.{packages[pid]}.violation" for pid in ids) + "]"
        values = query_json(self._single, query)
        found: Violations = {}
        for pid, value in zip(ids, values or [], strict=False):
            if value:
                found[pid] = sorted(str(m) for m in value)
        return found

    # ------------------------------------------------------------------ batches

    def _evaluate_chunk(self, chunk: Sequence[Decision]) -> list[Violations]:
        results: list[Violations] = [{} for _ in chunk]
        if self._batch is not None and self._batched_packages:
            set_input(self._batch, {"decisions": [dict(d) for d in chunk]})
            rows = query_json(self._batch, f"data.{_WRAPPER_PACKAGE}.results")
            if not isinstance(rows, list) or len(rows) != len(chunk):
                raise RegoEvalError(f"batched query returned {type(rows).__name__} for {len(chunk)} decisions")
            ids = list(self._batched_packages)
            for found, row in zip(results, rows, strict=True):
                for pid, messages in zip(ids, row, strict=True):
                    if messages:
                        found[pid] = sorted(str(m) for m in messages)
        if self.plan.per_decision:
            for found, decision in zip(results, chunk, strict=True):
                found.update(self.evaluate_one(decision, self.plan.per_decision))
        return results

    def evaluate(self, decisions: Sequence[Decision]) -> list[Violations]:
        """Violations of every decision, in order.

        Identical decisions are evaluated once; the distinct ones go to the engine in chunks of
        ``chunk_size``, one query per chunk.
        """
        keys = [json.dumps(d, sort_keys=True, separators=(",", ":"), default=str) for d in decisions]
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        unique = [decisions[i] for i in first.values()]
        answers: list[Violations] = []
        for start in range(0, len(unique), self.chunk_size):
            answers.extend(self._evaluate_chunk(unique[start : start + self.chunk_size]))
        by_key = dict(zip(first, answers, strict=True))
        return [{pid: list(msgs) for pid, msgs in by_key[key].items()} for key in keys]

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
