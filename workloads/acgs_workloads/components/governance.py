"""Shared governance features, the constitution-derived decision rule and Rego decision inputs.

Used by transformer-efficiency and wina-optimization (which still train on structured tokens), and for the
safeguards, risk levels and house rules by the text components (:mod:`.text_governance`). The reference
label of a token request is the least restrictive decision (approve < approve_with_safeguards < escalate < deny)
that the default constitution accepts, tightened by two "house rules" that are not in the constitution
(so a model has something to learn beyond the rules), computed from the *true* harm while the request
only carries a noisy harm estimate, plus a share of flipped labels (reviewer disagreement).
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
HARM_NOISE = 0.06
LABEL_NOISE = 0.03
Columns = dict[str, np.ndarray]


def sample_governance(
    rng: np.random.Generator, n: int, flag_p: dict[str, np.ndarray] | None = None, risk_p: np.ndarray | None = None
) -> Columns:
    """Governance context columns; ``flag_p``/``risk_p`` may give per-example probabilities (shape [n] / [n, 4])."""
    base = {
        "contains_pii": 0.4,
        "consent": 0.5,
        "has_audit_trail": 0.6,
        "explanation_provided": 0.5,
        "protected_attribute_used": 0.12,
        "human_oversight_available": 0.75,
        "automated": 0.5,
    }
    cols: Columns = {}
    uniform = rng.random((n, len(FLAGS)))
    for j, flag in enumerate(FLAGS):
        p = flag_p[flag] if flag_p and flag in flag_p else base[flag]
        cols[flag] = uniform[:, j] < p
    if risk_p is None:
        risk_p = np.broadcast_to(np.array([0.35, 0.3, 0.25, 0.1]), (n, 4))
    cumulative = np.cumsum(risk_p, axis=1)
    cols["risk"] = (rng.random((n, 1)) > cumulative[:, :-1]).sum(axis=1).astype(np.int64)
    harm = rng.beta(2.0, 4.0, n) + 0.15 * cols["risk"] / 3.0
    harm = np.clip(harm, 0.0, 1.0)
    cols["harm_true"] = harm
    cols["harm_score"] = np.round(np.clip(harm + rng.normal(0.0, HARM_NOISE, n), 0.0, 1.0), 2)
    return cols


def constitutional_minimum(cols: Columns, harm: np.ndarray) -> np.ndarray:
    """The least restrictive decision index the default constitution accepts (vectorised)."""
    pii_gap = cols["contains_pii"] & ~cols["consent"]
    explain_gap = cols["automated"] & ~cols["explanation_provided"]
    level = np.where(pii_gap | explain_gap | (harm >= 0.7), 1, 0)
    not_permissive = cols["protected_attribute_used"] | ((cols["risk"] >= 2) & ~cols["has_audit_trail"])
    level = np.where(not_permissive, 2, level)
    level = np.where((level == 2) & ~cols["human_oversight_available"], 3, level)
    return np.where(cols["risk"] == 3, 3, level).astype(np.int64)


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


def request_features(cols: Columns, i: int) -> dict[str, Any]:
    """The ``input.request`` of decision ``i`` as the constitution sees it."""
    row: dict[str, Any] = {flag: bool(cols[flag][i]) for flag in FLAGS}
    row["risk_level"] = RISK_LEVELS[int(cols["risk"][i])]
    row["harm_score"] = float(cols["harm_score"][i])
    return row


def governance_decisions(component: str, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
    """Rego inputs for predicted decision indices."""
    out: list[dict[str, Any]] = []
    for i, label in enumerate(predicted.tolist()):
        request = request_features(cols, i)
        decision = DECISIONS[int(label)]
        out.append(
            {
                "component": component,
                "decision": decision,
                "safeguards": safeguards_for(request, decision),
                "request": request,
            }
        )
    return out


def reasoning(request: dict[str, Any], decision: str) -> str:
    """A short human explanation of the decision from the request's governance facts."""
    facts: list[str] = [f"risk {request['risk_level']}", f"harm estimate {request['harm_score']:.2f}"]
    if request["contains_pii"]:
        facts.append("personal data " + ("with consent" if request["consent"] else "without consent"))
    if request["protected_attribute_used"]:
        facts.append("a protected attribute is used")
    if request["automated"] and not request["explanation_provided"]:
        facts.append("automated without explanation")
    if request["risk_level"] in ("high", "critical") and not request["has_audit_trail"]:
        facts.append("no audit trail")
    if not request["human_oversight_available"]:
        facts.append("no human reviewer available")
    return f"{decision}: " + "; ".join(facts)


def context_columns(contexts: list[dict[str, Any]]) -> Columns:
    """Columns from request ``context`` dicts (missing flags are False, missing risk is low, harm 0)."""
    cols: Columns = {flag: np.array([bool(c.get(flag, False)) for c in contexts], dtype=bool) for flag in FLAGS}
    cols["risk"] = np.array([RISK_LEVELS.index(str(c.get("risk_level", "low"))) for c in contexts], dtype=np.int64)
    harm = np.array([float(c.get("harm_score", 0.0)) for c in contexts], dtype=np.float64)
    cols["harm_score"] = np.round(np.clip(harm, 0.0, 1.0), 2)
    cols["harm_true"] = cols["harm_score"].copy()
    return cols


def generate_governance_labels(rng: np.random.Generator, cols: Columns) -> np.ndarray:
    """Reference labels of the token components (default constitution's rules, house rules, flipped share)."""
    harm = cols["harm_true"]
    level = np.maximum(constitutional_minimum(cols, harm), house_minimum(cols, harm))
    return flip_labels(rng, level)
