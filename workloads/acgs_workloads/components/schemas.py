"""Request/response pieces shared by the governance components."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from acgs_workloads.components.governance import DECISIONS, RISK_LEVELS
from acgs_workloads.components.governance import Decision as Decision  # re-exported: the schemas' decision type

RiskLevel = Literal["low", "medium", "high", "critical"]
assert DECISIONS == ("approve", "approve_with_safeguards", "escalate", "deny")
assert RISK_LEVELS == ("low", "medium", "high", "critical")


class GovernanceContext(BaseModel):
    """The governance facts of a request, as the constitution's rules read them (``input.request``)."""

    model_config = ConfigDict(extra="forbid")

    risk_level: RiskLevel = "low"
    contains_pii: bool = False
    consent: bool = False
    has_audit_trail: bool = False
    explanation_provided: bool = False
    protected_attribute_used: bool = False
    human_oversight_available: bool = True
    automated: bool = False
    harm_score: float = Field(default=0.0, ge=0.0, le=1.0, description="Estimated harm, 0..1.")

    def as_row(self) -> dict[str, Any]:
        return self.model_dump()
