"""multi-agent-coordination: (scenario, agents, task, priority) -> lead agent, strategy and assignments.

Classes are (lead role, strategy) pairs; roles absent from the request are masked out. The reference
choice follows the constitution (PII work led by the privacy officer, high-risk work led by an oversight
role, critical work by consensus) plus house preferences (task-type leads, strategy by size and urgency);
an unobserved "busy" factor sometimes hands a non-mandated lead to the next candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from torch import nn

from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest, one_hot
from acgs_workloads.components.governance import RISK_LEVELS
from acgs_workloads.components.models import MLPClassifier
from acgs_workloads.contract import ModelSpec

ROLES = ("planner", "researcher", "executor", "auditor", "privacy-officer", "safety-reviewer")
STRATEGIES = ("sequential", "parallel", "hierarchical", "consensus")
TASKS = ("research", "planning", "execution", "review")
PRIORITIES = ("low", "normal", "high", "urgent")
CLASSES = tuple(f"{role}/{strategy}" for role in ROLES for strategy in STRATEGIES)
Role = Literal["planner", "researcher", "executor", "auditor", "privacy-officer", "safety-reviewer"]
OVERSIGHT = np.array([r in ("auditor", "privacy-officer", "safety-reviewer") for r in ROLES])
TASK_LEAD = {"research": "researcher", "planning": "planner", "execution": "executor", "review": "auditor"}
SUBTASKS = {
    "planner": "break the task into steps and track them",
    "researcher": "gather evidence and sources",
    "executor": "carry out the approved steps",
    "auditor": "record decisions and check them against policy",
    "privacy-officer": "review personal-data handling",
    "safety-reviewer": "assess risks and sign off",
}
BUSY_SHARE = 0.08
STRATEGY_NOISE = 0.03


class Agent(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: Role


class CoordinationRequest(HashedRequest):
    scenario: str = Field(default="general", max_length=256)
    agents: list[Agent] = Field(min_length=1, max_length=64)
    task: Literal["research", "planning", "execution", "review"]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    contains_pii: bool = False
    risk_level: Literal["low", "medium", "high", "critical"] = "low"

    @field_validator("agents")
    @classmethod
    def _unique_names(cls, agents: list[Agent]) -> list[Agent]:
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError("agent names must be unique")
        return agents


class CoordinationResponse(BaseModel):
    lead_agent: str
    strategy: Literal["sequential", "parallel", "hierarchical", "consensus"]
    assignments: dict[str, str]
    constitutional_hash: str


def reference_choice(cols: Columns, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(lead role index, strategy index) per row; ``rng`` adds the busy factor and strategy noise."""
    present = cols["present"]
    n = present.shape[0]
    risk, task, priority = cols["risk"], cols["task"], cols["priority"]
    # preference score per role: mandated roles dominate, then the task's natural lead, then a fixed order
    score = np.tile(np.linspace(0.6, 0.1, len(ROLES)), (n, 1))
    for t, role in TASK_LEAD.items():
        score[task == TASKS.index(t), ROLES.index(role)] += 2.0
    high = risk >= 2
    score[high, ROLES.index("safety-reviewer")] += 4.0
    score[high, ROLES.index("auditor")] += 3.5
    score[high, ROLES.index("privacy-officer")] += 3.0
    score[cols["contains_pii"], ROLES.index("privacy-officer")] += 10.0
    score = np.where(present, score, -np.inf)
    order = np.argsort(-score, axis=1)
    lead = order[:, 0]
    if rng is not None:
        best = score[np.arange(n), lead]
        mandated = (cols["contains_pii"] & present[:, ROLES.index("privacy-officer")]) | (
            high & (present & OVERSIGHT).any(axis=1)
        )
        second_ok = present.sum(axis=1) > 1
        busy = (rng.random(n) < BUSY_SHARE) & ~mandated & second_ok & np.isfinite(best)
        lead = np.where(busy, order[:, 1], lead)
    size = present.sum(axis=1)
    strategy = np.zeros(n, dtype=np.int64)
    strategy = np.where((task == TASKS.index("research")) & (size >= 4), 1, strategy)
    strategy = np.where((priority == PRIORITIES.index("urgent")) & (size >= 3), 1, strategy)
    strategy = np.where((task == TASKS.index("planning")) & (size >= 3), 2, strategy)
    strategy = np.where(risk == 2, 2, strategy)
    if rng is not None:
        noisy = rng.random(n) < STRATEGY_NOISE
        strategy = np.where(noisy & (risk < 3), rng.integers(0, 3, n), strategy)
    strategy = np.where(risk == 3, 3, strategy)
    return lead.astype(np.int64), strategy.astype(np.int64)


class MultiAgentCoordination(Component):
    name = "multi-agent-coordination"
    classes = CLASSES
    request_model = CoordinationRequest
    response_model = CoordinationResponse

    def generate(self, examples: int, seed: int, spec: ModelSpec) -> Columns:
        rng = np.random.default_rng(seed)
        size = rng.integers(2, len(ROLES) + 1, examples)
        ranks = np.argsort(rng.random((examples, len(ROLES))), axis=1).argsort(axis=1)
        cols: Columns = {
            "present": ranks < size[:, None],
            "task": rng.integers(0, len(TASKS), examples),
            "priority": rng.integers(0, len(PRIORITIES), examples),
            "contains_pii": rng.random(examples) < 0.35,
            "risk": (rng.random((examples, 1)) > np.array([0.35, 0.65, 0.9])).sum(axis=1).astype(np.int64),
        }
        lead, strategy = reference_choice(cols, rng)
        cols[LABEL] = lead * len(STRATEGIES) + strategy
        return cols

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        present = cols["present"].astype(np.float32)
        x = np.concatenate(
            [present, one_hot(cols["task"], len(TASKS)), one_hot(cols["priority"], len(PRIORITIES)),
             cols["contains_pii"][:, None].astype(np.float32), one_hot(cols["risk"], len(RISK_LEVELS)),
             present.sum(axis=1, keepdims=True) / len(ROLES)],
            axis=1,
        )
        mask = np.repeat(cols["present"], len(STRATEGIES), axis=1)
        return {"x": x, "mask": mask}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return MLPClassifier(len(ROLES) + len(TASKS) + len(PRIORITIES) + 1 + len(RISK_LEVELS) + 1, len(CLASSES), spec)

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, label in enumerate(predicted.tolist()):
            lead, strategy = divmod(int(label), len(STRATEGIES))
            out.append(
                {
                    "component": self.name,
                    "decision": STRATEGIES[strategy],
                    "safeguards": [],
                    "request": {
                        "contains_pii": bool(cols["contains_pii"][i]),
                        "risk_level": RISK_LEVELS[int(cols["risk"][i])],
                        "agent_roles": [r for j, r in enumerate(ROLES) if cols["present"][i, j]],
                        "priority": PRIORITIES[int(cols["priority"][i])],
                    },
                    "outcome": {"lead_role": ROLES[lead]},
                }
            )
        return out

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        present = np.array([[any(a.role == r for a in req.agents) for r in ROLES] for req in requests], dtype=bool)
        return {
            "present": present,
            "task": np.array([TASKS.index(r.task) for r in requests], dtype=np.int64),
            "priority": np.array([PRIORITIES.index(r.priority) for r in requests], dtype=np.int64),
            "contains_pii": np.array([r.contains_pii for r in requests], dtype=bool),
            "risk": np.array([RISK_LEVELS.index(r.risk_level) for r in requests], dtype=np.int64),
        }

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "scenario": "generated",
            "agents": [{"name": f"{r}-1", "role": r} for j, r in enumerate(ROLES) if cols["present"][index, j]],
            "task": TASKS[int(cols["task"][index])],
            "priority": PRIORITIES[int(cols["priority"][index])],
            "contains_pii": bool(cols["contains_pii"][index]),
            "risk_level": RISK_LEVELS[int(cols["risk"][index])],
            "constitutional_hash": constitution_hash,
        }

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        lead_role, strategy = divmod(predicted, len(STRATEGIES))
        lead = next(a for a in request.agents if a.role == ROLES[lead_role])
        assignments = {
            a.name: ("lead: coordinate the team and " if a.name == lead.name else "")
            + f"{SUBTASKS[a.role]} ({request.task})"
            for a in request.agents
        }
        return CoordinationResponse(
            lead_agent=lead.name,
            strategy=STRATEGIES[strategy],  # type: ignore[arg-type]
            assignments=assignments,
            constitutional_hash=constitution_hash,
        )
