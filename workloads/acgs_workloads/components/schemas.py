"""The decision type the governance components' responses share (their schemas import it from here)."""

from __future__ import annotations

from acgs_workloads.components.governance import DECISIONS, RISK_LEVELS
from acgs_workloads.components.governance import Decision as Decision  # re-exported: the schemas' decision type

assert DECISIONS == ("approve", "approve_with_safeguards", "escalate", "deny")
assert RISK_LEVELS == ("low", "medium", "high", "critical")
