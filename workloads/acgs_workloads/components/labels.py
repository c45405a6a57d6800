"""Reference decisions from the user's own Constitution: its Rego evaluated on every combination of facts.

The governance facts a request can have are discrete (seven flags, four risk levels, four harm levels:
2,048 combinations). :func:`decision_table` asks the Rego engine, in one batched evaluation, which
decisions each combination allows, and keeps the least restrictive clean one (approve <
approve_with_safeguards < escalate < deny; deny when nothing is clean). Labelling a dataset is then a table
lookup, so a changed Constitution changes what the models learn at no per-example cost. Tables are cached
per (constitution hash, component) in the process.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from acgs_workloads.components.governance import DECISIONS, FLAGS, RISK_LEVELS, safeguards_for
from acgs_workloads.components.language import HARM_SCORES
from acgs_workloads.contract import ConstitutionSnapshot

Columns = dict[str, np.ndarray]
COMBINATIONS = (1 << len(FLAGS)) * len(RISK_LEVELS) * len(HARM_SCORES)
_CACHE: dict[tuple[str, str], np.ndarray] = {}
_LOCK = threading.Lock()


def fact_rows() -> list[dict[str, Any]]:
    """Every combination of facts as the constitution's ``input.request``, in table order."""
    rows: list[dict[str, Any]] = []
    for bits in range(1 << len(FLAGS)):
        for risk in RISK_LEVELS:
            for harm in HARM_SCORES.tolist():
                row: dict[str, Any] = {flag: bool(bits >> j & 1) for j, flag in enumerate(FLAGS)}
                row["risk_level"] = risk
                row["harm_score"] = harm
                rows.append(row)
    return rows


def decision_table(constitution: ConstitutionSnapshot, component: str) -> np.ndarray:
    """The least restrictive clean decision index per fact combination, shape [128, 4 risk, 4 harm]."""
    key = (constitution.hash, component)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    from acgs_workloads.constitution import ConstitutionEvaluator

    rows = fact_rows()
    evaluator = ConstitutionEvaluator(constitution)
    # one batched pass per candidate, least restrictive first, over the rows still without a clean decision
    # (deny is the answer when nothing less restrictive is clean): about half the queries of asking all three
    first = np.full(len(rows), len(DECISIONS) - 1, dtype=np.int64)
    open_rows = np.arange(len(rows))
    for index, decision in enumerate(DECISIONS[:-1]):
        if open_rows.size == 0:
            break
        found = evaluator.evaluate([
            {"component": component, "decision": decision, "safeguards": safeguards_for(rows[i], decision),
             "request": rows[i]}
            for i in open_rows
        ])
        clean = np.array([not v for v in found], dtype=bool)
        first[open_rows[clean]] = index
        open_rows = open_rows[~clean]
    table = first.astype(np.int64).reshape(1 << len(FLAGS), len(RISK_LEVELS), len(HARM_SCORES))
    with _LOCK:
        _CACHE[key] = table
    return table


def fact_code(cols: Columns) -> np.ndarray:
    """The table row of each example's seven flags."""
    code = np.zeros(cols["risk"].shape[0], dtype=np.int64)
    for j, flag in enumerate(FLAGS):
        code |= cols[flag].astype(np.int64) << j
    return code


def constitution_minimum(table: np.ndarray, cols: Columns) -> np.ndarray:
    """The least restrictive decision the constitution allows for each row (``harm_level`` columns)."""
    return table[fact_code(cols), cols["risk"], cols["harm_level"]]
