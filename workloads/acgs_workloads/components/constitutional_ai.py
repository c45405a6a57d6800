"""constitutional-ai: a request in plain words (+ optional structured context) -> governance decision.

``POST /constitutional-ai/predict`` with ``{"scenario": "...", "context": {...} or "a sentence",
"user_request": "send the patients' records to a partner", "constitutional_principles": [...],
"constitutional_hash": "..."}`` answers the decision, the safeguards it needs, a ``reasoning`` that names
the facts read and the principles that decided, a ``compliance_score`` and the facts judged. Labels:
the Constitution's own Rego (:mod:`.labels`) plus the house rules of
:func:`~acgs_workloads.components.governance.house_minimum`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from acgs_workloads.components.base import Columns
from acgs_workloads.components.governance import DECISIONS, safeguards_for
from acgs_workloads.components.language import DOMAINS
from acgs_workloads.components.schemas import Decision
from acgs_workloads.components.text_governance import FactsRead, TextGovernance, TextRequest, facts_row

KNOWN_SCENARIOS = (*DOMAINS, "ethical_dilemma", "data_access", "compliance_review", "incident_response")


class ConstitutionalRequest(TextRequest):
    scenario: str = Field(default="general", max_length=256,
                          description=f"Free text; known values: {', '.join(KNOWN_SCENARIOS)}.")
    user_request: str = Field(default="", max_length=8192, description="The request, in plain words.")
    constitutional_principles: list[str] = Field(
        default_factory=list, max_length=64,
        description="Principle ids of the served Constitution to report on (all if empty); an id the "
                    "Constitution does not have is refused (422).")

    def request_text(self) -> str:
        return " ".join(t for t in (self.user_request, super().request_text()) if t)

    def scenario_words(self) -> str:
        return self.scenario

    def principle_ids(self) -> list[str]:
        return self.constitutional_principles


class PrincipleFinding(BaseModel):
    principle: str
    messages: list[str] = Field(description="Why this principle rules out plain approval of the request.")


class ConstitutionalResponse(BaseModel):
    decision: Decision
    safeguards: list[str]
    reasoning: str = Field(description="The facts read and the principles that decided.")
    compliance_score: float = Field(ge=0.0, le=1.0, description="Model probability of a decision at least as "
                                    "restrictive as the constitution requires for the facts judged.")
    facts: FactsRead
    principles: list[PrincipleFinding] = Field(
        description="Principles (of those requested) that rule out plain approval, with their messages.")
    constitutional_hash: str


def fact_phrases(row: dict[str, Any], harm_level: str) -> list[str]:
    """The facts of a request in words (what was read that matters)."""
    facts: list[str] = []
    if row["contains_pii"]:
        facts.append("personal data " + ("with consent" if row["consent"] else "without consent"))
    if row["protected_attribute_used"]:
        facts.append("a protected attribute is used")
    if row["automated"]:
        explained = row["explanation_provided"]
        facts.append("automated " + ("with an explanation" if explained else "without an explanation"))
    if row["risk_level"] != "low":
        facts.append(f"{row['risk_level']} risk" + ("" if row["has_audit_trail"] else " without an audit trail"))
    if harm_level != "negligible":
        facts.append(f"{harm_level} harm possible")
    if not row["human_oversight_available"]:
        facts.append("no human reviewer available")
    return facts or ["no personal data, low risk, negligible harm"]


def reasoning_text(decision: str, row: dict[str, Any], harm_level: str, findings: Sequence[PrincipleFinding],
                   judged: bool) -> str:
    """The decision, the facts it rests on, and the principles that rule out plain approval with their
    messages (a message says what plain approval would do wrong, so it is named as that, not as a fault of
    the decision served)."""
    text = f"{decision}: " + "; ".join(fact_phrases(row, harm_level)) + "."
    if findings:
        text += " Plain approval is ruled out by " + "; ".join(
            f"{f.principle} ({'; '.join(f.messages)})" for f in findings) + "."
    elif judged:
        text += " The constitution allows approval of these facts."
    return text


class ConstitutionalAI(TextGovernance):
    name = "constitutional-ai"
    request_model = ConstitutionalRequest
    response_model = ConstitutionalResponse

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "scenario": str(cols["scenario"][index]),
            "context": self.request_context(cols, index),
            "user_request": str(cols["text"][index]),
            "constitutional_hash": constitution_hash,
        }

    def probe_request(self, text: str, constitution_hash: str) -> dict[str, Any]:
        return {"scenario": "general", "user_request": text, "constitutional_hash": constitution_hash}

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        row = facts_row(cols, index)
        decision = DECISIONS[predicted]
        facts = self.facts_read(cols, index)
        judged = "allowed" in cols
        allowed = int(cols["allowed"][index]) if judged else predicted
        why: dict[str, Any] = cols["why"][index] if judged else {}
        wanted = set(request.constitutional_principles)
        findings = [PrincipleFinding(principle=pid, messages=sorted(msgs)) for pid, msgs in sorted(why.items())
                    if not wanted or pid in wanted]
        return ConstitutionalResponse(
            decision=decision,
            safeguards=safeguards_for(row, decision),
            reasoning=reasoning_text(decision, row, facts.harm_level, findings, judged),
            compliance_score=round(float(np.clip(probabilities[allowed:].sum(), 0.0, 1.0)), 6),
            facts=facts,
            principles=findings,
            constitutional_hash=constitution_hash,
        )
