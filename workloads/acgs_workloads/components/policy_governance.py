"""policy-governance: (policy type, framework, scope, context) -> a generated Rego policy + governance decision.

Every generated policy is compiled in the real Rego engine; the evaluation reports the compiled share.
"""

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
    request_features,
    safeguards_for,
    sample_governance,
)
from acgs_workloads.components.models import MLPClassifier
from acgs_workloads.components.schemas import Decision, GovernanceContext
from acgs_workloads.constitution.engine import RegoEvalError, new_interpreter, query_json, set_input
from acgs_workloads.contract import ModelSpec

POLICY_TYPES = ("access_control", "data_retention", "model_deployment", "content_moderation")
FRAMEWORKS = ("gdpr", "hipaa", "eu_ai_act", "soc2", "nist_ai_rmf")
SCOPES = ("individual", "team", "organization", "public")
PolicyType = Literal["access_control", "data_retention", "model_deployment", "content_moderation"]
Framework = Literal["gdpr", "hipaa", "eu_ai_act", "soc2", "nist_ai_rmf"]
Scope = Literal["individual", "team", "organization", "public"]


class PolicyRequest(HashedRequest):
    policy_type: PolicyType
    framework: Framework
    scope: Scope = "team"
    context: GovernanceContext = Field(default_factory=GovernanceContext)


class PolicyResponse(BaseModel):
    policy: str = Field(description="A Rego v1 module implementing the decision.")
    decision: Decision
    compiled: bool = Field(description="The policy compiled in the Rego engine.")
    constitutional_hash: str


def house_policy_minimum(cols: Columns) -> np.ndarray:
    """Framework rules beyond the constitution: public EU-AI-Act deployments and HIPAA personal data need
    safeguards at least."""
    eu_public = (cols["framework"] == FRAMEWORKS.index("eu_ai_act")) & (cols["scope"] == SCOPES.index("public"))
    hipaa_pii = (cols["framework"] == FRAMEWORKS.index("hipaa")) & cols["contains_pii"]
    return np.where(eu_public | hipaa_pii, 1, 0).astype(np.int64)


def generate_policy(policy_type: str, framework: str, scope: str, decision: str, safeguards: list[str]) -> str:
    """A Rego v1 module that enforces ``decision`` for requests of ``scope`` (safeguards become required controls)."""
    lines = [
        f"package acgs.generated.{policy_type}.{framework}",
        "",
        "import rego.v1",
        "",
        "default allow := false",
        "",
        f'decision := "{decision}"',
        "",
        f"required_controls := {{{', '.join(repr(s).replace(chr(39), chr(34)) for s in safeguards)}}}"
        if safeguards else "required_controls := set()",
        "",
        "missing_controls contains control if {",
        "\tsome control in required_controls",
        "\tnot control in {c | some c in input.controls}",
        "}",
        "",
    ]
    if decision in ("approve", "approve_with_safeguards"):
        lines += ["allow if {", f'\tinput.scope == "{scope}"', "\tcount(missing_controls) == 0", "}", ""]
    if decision == "escalate":
        lines += ["requires_review if {", f'\tinput.scope == "{scope}"', "}", ""]
    return "\n".join(lines)


def policy_compiles(policy: str) -> bool:
    """Whether ``policy`` loads in the real Rego engine and its decision evaluates."""
    try:
        interpreter = new_interpreter({"generated.rego": policy})
        set_input(interpreter, {"scope": "team", "controls": []})
        package = policy.splitlines()[0].removeprefix("package ").strip()
        return query_json(interpreter, f"data.{package}.decision") is not None
    except RegoEvalError:
        return False


class PolicyGovernance(Component):
    name = "policy-governance"
    classes = DECISIONS
    request_model = PolicyRequest
    response_model = PolicyResponse

    def generate(self, examples: int, seed: int, spec: ModelSpec) -> Columns:
        rng = np.random.default_rng(seed)
        cols = sample_governance(rng, examples)
        cols["policy_type"] = rng.integers(0, len(POLICY_TYPES), examples)
        cols["framework"] = rng.integers(0, len(FRAMEWORKS), examples)
        cols["scope"] = rng.integers(0, len(SCOPES), examples)
        harm = cols["harm_true"]
        level = np.maximum(constitutional_minimum(cols, harm), house_minimum(cols, harm))
        level = np.where(level < 2, np.maximum(level, house_policy_minimum(cols)), level)
        cols[LABEL] = flip_labels(rng, level)
        return cols

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        parts = [
            governance_features(cols),
            one_hot(cols["policy_type"], len(POLICY_TYPES)),
            one_hot(cols["framework"], len(FRAMEWORKS)),
            one_hot(cols["scope"], len(SCOPES)),
        ]
        return {"x": np.concatenate(parts, axis=1)}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return MLPClassifier(12 + len(POLICY_TYPES) + len(FRAMEWORKS) + len(SCOPES), len(self.classes), spec)

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        return governance_decisions(self.name, cols, predicted)

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        cols = context_columns([r.context.as_row() for r in requests])
        cols["policy_type"] = np.array([POLICY_TYPES.index(r.policy_type) for r in requests], dtype=np.int64)
        cols["framework"] = np.array([FRAMEWORKS.index(r.framework) for r in requests], dtype=np.int64)
        cols["scope"] = np.array([SCOPES.index(r.scope) for r in requests], dtype=np.int64)
        return cols

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "policy_type": POLICY_TYPES[int(cols["policy_type"][index])],
            "framework": FRAMEWORKS[int(cols["framework"][index])],
            "scope": SCOPES[int(cols["scope"][index])],
            "context": request_features(cols, index),
            "constitutional_hash": constitution_hash,
        }

    def policy_for(self, cols: Columns, index: int, predicted: int) -> str:
        decision = DECISIONS[predicted]
        return generate_policy(
            POLICY_TYPES[int(cols["policy_type"][index])],
            FRAMEWORKS[int(cols["framework"][index])],
            SCOPES[int(cols["scope"][index])],
            decision,
            safeguards_for(request_features(cols, index), decision),
        )

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        policy = self.policy_for(cols, index, predicted)
        return PolicyResponse(
            policy=policy,
            decision=DECISIONS[predicted],
            compiled=policy_compiles(policy),
            constitutional_hash=constitution_hash,
        )

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        limit = min(len(predicted), 300)
        compiled = sum(policy_compiles(self.policy_for(cols, i, int(predicted[i]))) for i in range(limit))
        return {"policiesGenerated": limit, "policiesCompiled": compiled,
                "policyCompileRate": compiled / limit if limit else 1.0}
