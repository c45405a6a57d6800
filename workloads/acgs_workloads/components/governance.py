"""Shared governance vocabulary of the text components (:mod:`.text_governance`): decisions, facts, risk
levels, the safeguards of a decision, the "house rules" that tighten the Constitution's least restrictive
decision (so a model has something to learn beyond the rules) and the share of flipped labels (reviewer
disagreement).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Decision = Literal["approve", "approve_with_safeguards", "escalate", "deny"]
DECISIONS: tuple[Decision, ...] = ("approve", "approve_with_safeguards", "escalate", "deny")
RISK_LEVELS = ("low", "medium", "high", "critical")
FLAGS = (
    "contains_pii",
    "consent",
    "has_audit_trail",
    "explanation_provided",
    "protected_attribute_used",
    "human_oversight_available",
    "automated",
)
LABEL_NOISE = 0.03
Columns = dict[str, np.ndarray]


def house_minimum(cols: Columns, harm: np.ndarray) -> np.ndarray:
    """House rules beyond the constitution: medium risk with notable harm needs safeguards, high risk with
    notable harm goes to a human (or is denied without one)."""
    level = np.where((cols["risk"] == 1) & (harm >= 0.45), 1, 0)
    high = (cols["risk"] == 2) & (harm >= 0.55)
    level = np.where(high, np.where(cols["human_oversight_available"], 2, 3), level)
    return level.astype(np.int64)


def flip_labels(rng: np.random.Generator, labels: np.ndarray, share: float = LABEL_NOISE) -> np.ndarray:
    """Move ``share`` of the labels one step up or down (reviewer disagreement)."""
    flip = rng.random(labels.shape[0]) < share
    step = np.where(rng.random(labels.shape[0]) < 0.5, -1, 1)
    return np.where(flip, np.clip(labels + step, 0, len(DECISIONS) - 1), labels).astype(np.int64)


def safeguards_for(row: dict[str, Any], decision: str) -> list[str]:
    """Safeguards attached to an ``approve_with_safeguards`` decision (none for other decisions)."""
    if decision != "approve_with_safeguards":
        return []
    safeguards = ["monitoring"]
    if row["contains_pii"] and not row["consent"]:
        safeguards.append("pii-redaction")
    if row["automated"] and not row["explanation_provided"]:
        safeguards.append("explanation-notice")
    return safeguards
