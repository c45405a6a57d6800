"""Governance requests as token sequences (transformer-efficiency, wina-optimization).

Each governance fact is a two-token slot ``(modifier, keyword)``; the modifier ``NOT`` negates consent,
audit trail, explanation and human oversight, so the model must read order, not just a bag of words.
Slots sit at random pair positions after ``CLS``; the rest is filler, and half of the sequences carry a
distractor ``NOT`` in front of a filler word.
"""

from __future__ import annotations

import numpy as np

from acgs_workloads.components.governance import Columns

PAD, CLS, NOT = 0, 1, 2
RISK = 3  # 3..6
PII = 7  # 7..10
CONSENT, AUDIT, EXPLAIN = 11, 12, 13
PROTECTED = 14  # 14..17
HUMAN, AUTOMATED = 18, 19
HARM = 20  # 20..29 (deciles)
FILLER = 30
VOCAB = 128
SLOTS = 10
MIN_LENGTH = 1 + 2 * SLOTS


def harm_decile(harm: np.ndarray) -> np.ndarray:
    return np.minimum(9, np.floor(harm * 10 + 1e-9)).astype(np.int64)


def encode(cols: Columns, length: int, rng: np.random.Generator) -> np.ndarray:
    """Token sequences [n, length] for governance columns (vectorised)."""
    if length < MIN_LENGTH:
        raise ValueError(f"model.sequenceLength must be at least {MIN_LENGTH} for token components, got {length}")
    n = cols["risk"].shape[0]
    filler = rng.integers(FILLER, VOCAB, (n, length))
    modifier = rng.integers(FILLER, VOCAB, (n, SLOTS))
    keyword = np.zeros((n, SLOTS), dtype=np.int64)
    present = np.ones((n, SLOTS), dtype=bool)
    keyword[:, 0] = RISK + cols["risk"]
    keyword[:, 1], present[:, 1] = PII + rng.integers(0, 4, n), cols["contains_pii"]
    keyword[:, 2], modifier[:, 2] = CONSENT, np.where(cols["consent"], modifier[:, 2], NOT)
    keyword[:, 3], modifier[:, 3] = AUDIT, np.where(cols["has_audit_trail"], modifier[:, 3], NOT)
    keyword[:, 4], modifier[:, 4] = EXPLAIN, np.where(cols["explanation_provided"], modifier[:, 4], NOT)
    keyword[:, 5], present[:, 5] = PROTECTED + rng.integers(0, 4, n), cols["protected_attribute_used"]
    keyword[:, 6], modifier[:, 6] = HUMAN, np.where(cols["human_oversight_available"], modifier[:, 6], NOT)
    keyword[:, 7], present[:, 7] = AUTOMATED, cols["automated"]
    keyword[:, 8] = HARM + harm_decile(cols["harm_score"])
    keyword[:, 9], modifier[:, 9], present[:, 9] = rng.integers(FILLER, VOCAB, n), NOT, rng.random(n) < 0.5
    pairs = (length - 1) // 2
    position = np.argsort(rng.random((n, pairs)), axis=1)[:, :SLOTS]  # pair position of every slot
    tokens = filler.copy()
    tokens[:, 0] = CLS
    rows = np.repeat(np.arange(n), SLOTS)
    start = (1 + 2 * position).reshape(-1)
    keep = present.reshape(-1)
    tokens[rows[keep], start[keep]] = modifier.reshape(-1)[keep]
    tokens[rows[keep], start[keep] + 1] = keyword.reshape(-1)[keep]
    return tokens


def decode(tokens: np.ndarray) -> Columns:
    """Governance columns read back from token sequences (the inverse of :func:`encode`)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    prev = np.concatenate([np.full((tokens.shape[0], 1), PAD), tokens[:, :-1]], axis=1)

    def has(lo: int, hi: int | None = None) -> np.ndarray:
        hi = lo if hi is None else hi
        return np.asarray(((tokens >= lo) & (tokens <= hi)).any(axis=1))

    def affirmed(keyword: int) -> np.ndarray:
        at = tokens == keyword
        return np.asarray((at & (prev != NOT)).any(axis=1))

    risk_hits = (tokens >= RISK) & (tokens <= RISK + 3)
    harm_hits = (tokens >= HARM) & (tokens <= HARM + 9)
    risk = np.where(risk_hits.any(axis=1), np.where(risk_hits, tokens - RISK, -1).max(axis=1), 0)
    decile = np.where(harm_hits.any(axis=1), np.where(harm_hits, tokens - HARM, -1).max(axis=1), 0)
    return {
        "risk": risk.astype(np.int64),
        "contains_pii": has(PII, PII + 3),
        "consent": affirmed(CONSENT),
        "has_audit_trail": affirmed(AUDIT),
        "explanation_provided": affirmed(EXPLAIN),
        "protected_attribute_used": has(PROTECTED, PROTECTED + 3),
        "human_oversight_available": affirmed(HUMAN),
        "automated": has(AUTOMATED),
        "harm_score": np.round(decile * 0.1 + 0.05, 2),
    }
