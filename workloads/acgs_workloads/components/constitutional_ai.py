"""constitutional-ai: (scenario, context, user request, principles) -> governance decision with safeguards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from torch import nn

from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest, one_hot
from acgs_workloads.components.governance import (
    DECISIONS,
    constitutional_minimum,
    context_columns,
    flip_labels,
    governance_decisions,
    governance_features,
    house_minimum,
    reasoning,
    request_features,
    safeguards_for,
    sample_governance,
)
from acgs_workloads.components.models import MLPClassifier
from acgs_workloads.components.schemas import Decision, GovernanceContext
from acgs_workloads.contract import ModelSpec

SCENARIOS = ("general", "healthcare", "finance", "hiring", "content-moderation", "security")
Scenario = Literal["general", "healthcare", "finance", "hiring", "content-moderation", "security"]
# per scenario: P(contains_pii), P(protected_attribute_used), P(automated), risk distribution
_PII = np.array([0.3, 0.8, 0.6, 0.5, 0.2, 0.4])
_PROTECTED = np.array([0.05, 0.1, 0.12, 0.35, 0.1, 0.05])
_AUTOMATED = np.array([0.4, 0.4, 0.7, 0.6, 0.7, 0.5])
_RISK = np.array(
    [[0.5, 0.3, 0.15, 0.05], [0.2, 0.35, 0.3, 0.15], [0.3, 0.3, 0.3, 0.1],
     [0.3, 0.35, 0.25, 0.1], [0.45, 0.3, 0.2, 0.05], [0.15, 0.3, 0.35, 0.2]]
)


class ConstitutionalRequest(HashedRequest):
    scenario: Scenario = "general"
    context: GovernanceContext = Field(default_factory=GovernanceContext)
    user_request: str = Field(default="", max_length=8192)
    principles: list[str] = Field(default_factory=list, description="Principle ids to report on (all if empty).")


class ConstitutionalResponse(BaseModel):
    decision: Decision
    safeguards: list[str]
    reasoning: str
    compliance_score: float = Field(ge=0.0, le=1.0, description="Model probability of a compliant decision.")
    constitutional_hash: str


def generate_governance_labels(rng: np.random.Generator, cols: Columns) -> np.ndarray:
    harm = cols["harm_true"]
    level = np.maximum(constitutional_minimum(cols, harm), house_minimum(cols, harm))
    return flip_labels(rng, level)


class ConstitutionalAI(Component):
    name = "constitutional-ai"
    classes = DECISIONS
    request_model = ConstitutionalRequest
    response_model = ConstitutionalResponse

    def generate(self, examples: int, seed: int, spec: ModelSpec) -> Columns:
        rng = np.random.default_rng(seed)
        scenario = rng.integers(0, len(SCENARIOS), examples)
        cols = sample_governance(
            rng,
            examples,
            flag_p={"contains_pii": _PII[scenario], "protected_attribute_used": _PROTECTED[scenario],
                    "automated": _AUTOMATED[scenario]},
            risk_p=_RISK[scenario],
        )
        cols["scenario"] = scenario
        cols[LABEL] = generate_governance_labels(rng, cols)
        return cols

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        x = np.concatenate([governance_features(cols), one_hot(cols["scenario"], len(SCENARIOS))], axis=1)
        return {"x": x}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return MLPClassifier(4 + 7 + 1 + len(SCENARIOS), len(self.classes), spec)

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        return governance_decisions(self.name, cols, predicted)

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        cols = context_columns([r.context.as_row() for r in requests])
        cols["scenario"] = np.array([SCENARIOS.index(r.scenario) for r in requests], dtype=np.int64)
        return cols

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "scenario": SCENARIOS[int(cols["scenario"][index])],
            "context": request_features(cols, index),
            "user_request": "please review this request",
            "principles": [],
            "constitutional_hash": constitution_hash,
        }

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        row = request_features(cols, index)
        decision = DECISIONS[predicted]
        allowed = int(constitutional_minimum({k: v[index : index + 1] for k, v in cols.items()},
                                             cols["harm_score"][index : index + 1])[0])
        return ConstitutionalResponse(
            decision=decision,
            safeguards=safeguards_for(row, decision),
            reasoning=reasoning(row, decision),
            compliance_score=round(float(probabilities[allowed:].sum()), 6),
            constitutional_hash=constitution_hash,
        )
