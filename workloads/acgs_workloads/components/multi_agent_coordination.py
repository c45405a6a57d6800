"""multi-agent-coordination: (scenario, involved agents, task in words, priority) -> lead, strategy, sub-tasks.

``POST /multi-agent/predict`` with ``{"scenario": "conflict_resolution", "involved_agents": ["ethics",
"legal", "operational"], "task_description": "Resolve data access conflict", "priority": "high",
"constitutional_hash": "..."}``. Agents are names (or ``{"name", "role"}`` objects); a name is mapped to a
role by its words (:data:`ROLE_WORDS`: e.g. ethics -> safety-reviewer, legal -> auditor, operational ->
executor); a name with no known word is refused (422). The model reads ``task_description`` (hashed n-grams,
:mod:`.language`) with the roles present and the priority, and returns the lead and strategy (classes are
(lead role, strategy) pairs; absent roles are masked out) plus the facts it read (task kind, personal data,
risk, who is busy). The reference choice follows the constitution (PII work led by the privacy officer,
high-risk work led by an oversight role, critical work by consensus) plus house preferences (task-type
leads, strategy by size and urgency). A task description may say that one of the agents is busy ("the
planner is on leave"): a busy first choice hands the lead to the next candidate unless the constitution
mandates it (PII work, high-risk work); a busy agent that is not the first choice changes nothing. A share
of strategies is noise (reviewer disagreement).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, field_validator
from torch import nn

from acgs_workloads.components import language as lang
from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest, masked_logits
from acgs_workloads.components.governance import RISK_LEVELS
from acgs_workloads.components.models import TextClassifier
from acgs_workloads.components.text_governance import LanguageReport
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec

ROLES = ("planner", "researcher", "executor", "auditor", "privacy-officer", "safety-reviewer")
STRATEGIES = ("sequential", "parallel", "hierarchical", "consensus")
TASKS = ("research", "planning", "execution", "review")
PRIORITIES = ("low", "normal", "high", "urgent")
CLASSES = tuple(f"{role}/{strategy}" for role in ROLES for strategy in STRATEGIES)
Role = Literal["planner", "researcher", "executor", "auditor", "privacy-officer", "safety-reviewer"]
OVERSIGHT = np.array([r in ("auditor", "privacy-officer", "safety-reviewer") for r in ROLES])
TASK_LEAD = {"research": "researcher", "planning": "planner", "execution": "executor", "review": "auditor"}
ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "privacy-officer": ("privacy", "dpo", "gdpr", "dataprotection"),
    "safety-reviewer": ("safety", "ethics", "ethical", "security", "trust", "reviewer", "harm"),
    "auditor": ("auditor", "audit", "legal", "compliance", "counsel", "risk", "finance"),
    "planner": ("planner", "planning", "coordinator", "manager", "product", "strategy", "pm"),
    "researcher": ("researcher", "research", "analyst", "analytics", "science", "scientist", "data"),
    "executor": ("executor", "operational", "operations", "ops", "engineering", "engineer", "developer",
                 "devops", "execution", "support", "it"),
}
SUBTASKS = {
    "planner": "break the task into steps and track them",
    "researcher": "gather evidence and sources",
    "executor": "carry out the approved steps",
    "auditor": "record decisions and check them against policy and law",
    "privacy-officer": "review personal-data handling",
    "safety-reviewer": "assess ethical and safety risks and sign off",
}
TASK_VERBS = {
    "research": ("investigate", "find out why we see", "gather evidence on", "analyse", "research", "look into"),
    "planning": ("plan", "draw up a roadmap for", "schedule", "prepare a plan for", "organise",
                 "design the approach to"),
    "execution": ("deploy", "carry out", "implement", "roll out", "migrate", "execute"),
    "review": ("review", "audit", "check", "resolve the conflict over", "assess", "sign off on"),
}
TASK_OBJECTS = {
    True: ("customer data access", "the patients' records", "employee personal data", "access to personal data",
           "users' contact details", "the HR files", "customer records retention"),
    False: ("the release schedule", "the server migration", "the quarterly roadmap", "the build pipeline",
            "the office move", "the documentation backlog", "the cache configuration"),
}
ROLE_PHRASES = {
    "planner": ("the planner", "our project manager", "the coordinator"),
    "researcher": ("the researcher", "our analyst", "the data scientist"),
    "executor": ("the executor", "the ops team", "our engineer"),
    "auditor": ("the auditor", "legal", "the compliance officer"),
    "privacy-officer": ("the privacy officer", "our DPO", "the data protection officer"),
    "safety-reviewer": ("the safety reviewer", "the ethics reviewer", "our trust and safety lead"),
}
BUSY_PHRASES = ("{} is busy this week", "{} is on leave", "{} is tied up with another project",
                "{} is away until Monday", "{} has no capacity right now")
BUSY_SHARE = 0.08  # the first choice is busy (stated in the task description)
DISTRACTOR_SHARE = 0.08  # another agent is busy (stated; changes nothing)
STRATEGY_NOISE = 0.03
FACT_WIDTH = 1 + 4 + 4 + 1 + len(ROLES)  # personal data, risk level, task kind, busy role (none or one)


def role_of(name: str) -> str | None:
    """The role an agent name maps to (its words against :data:`ROLE_WORDS`), or None."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if name.lower() in ROLES:
        return name.lower()
    for word in words:
        for role, known in ROLE_WORDS.items():
            if word in known or word == role:
                return role
    return None


class Agent(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: Role


class CoordinationRequest(HashedRequest):
    scenario: str = Field(default="general", max_length=256)
    involved_agents: list[str | Agent] = Field(
        min_length=1, max_length=64,
        description="Agent names (mapped to roles by their words, e.g. ethics, legal, operational) or "
                    "{name, role} objects.")
    task_description: str = Field(min_length=1, max_length=4096, description="The task, in plain words.")
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    contains_pii: bool | None = Field(default=None, description="Stated by the client; else read from the text.")
    risk_level: Literal["low", "medium", "high", "critical"] | None = None

    @field_validator("involved_agents")
    @classmethod
    def _agents(cls, agents: list[str | Agent]) -> list[str | Agent]:
        resolved: list[Agent] = []
        for i, agent in enumerate(agents):
            if isinstance(agent, Agent):
                resolved.append(agent)
                continue
            role = role_of(agent)
            if role is None:
                raise ValueError(f"involved_agents[{i}] {agent!r} names no known role; use a word such as "
                                 + ", ".join(sorted({w for ws in ROLE_WORDS.values() for w in ws[:2]}))
                                 + " or an object {name, role}")
            resolved.append(Agent(name=agent, role=role))  # type: ignore[arg-type]
        names = [a.name for a in resolved]
        if len(set(names)) != len(names):
            raise ValueError("agent names must be unique")
        return list(resolved)

    @property
    def agents(self) -> list[Agent]:
        return [a for a in self.involved_agents if isinstance(a, Agent)]


class SubTask(BaseModel):
    agent: str
    role: str
    subtask: str


class CoordinationFacts(BaseModel):
    task_kind: str
    contains_pii: bool
    risk_level: str
    busy_role: str | None = Field(default=None, description="The role the task description says is busy.")


class CoordinationResponse(BaseModel):
    lead_agent: str
    strategy: Literal["sequential", "parallel", "hierarchical", "consensus"]
    assignments: dict[str, str]
    subtasks: list[SubTask]
    facts: CoordinationFacts
    constitutional_hash: str


def preference_order(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """(scores [n, roles], roles by preference [n, roles]): mandated roles dominate, then the task's natural
    lead, then a fixed order; absent roles score -inf."""
    present = cols["present"]
    n = present.shape[0]
    risk, task = cols["risk"], cols["task"]
    score = np.tile(np.linspace(0.6, 0.1, len(ROLES)), (n, 1))
    for t, role in TASK_LEAD.items():
        score[task == TASKS.index(t), ROLES.index(role)] += 2.0
    high = risk >= 2
    score[high, ROLES.index("safety-reviewer")] += 4.0
    score[high, ROLES.index("auditor")] += 3.5
    score[high, ROLES.index("privacy-officer")] += 3.0
    score[cols["contains_pii"], ROLES.index("privacy-officer")] += 10.0
    score = np.where(present, score, -np.inf)
    return score, np.argsort(-score, axis=1)


def reference_choice(cols: Columns, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(lead role index, strategy index) per row. A ``busy`` column (role index, -1 for none) hands a busy,
    non-mandated first choice's lead to the next candidate; ``rng`` adds strategy noise."""
    present = cols["present"]
    n = present.shape[0]
    risk, task, priority = cols["risk"], cols["task"], cols["priority"]
    score, order = preference_order(cols)
    lead = order[:, 0]
    if "busy" in cols:
        best = score[np.arange(n), lead]
        mandated = (cols["contains_pii"] & present[:, ROLES.index("privacy-officer")]) | (
            (risk >= 2) & (present & OVERSIGHT).any(axis=1)
        )
        second_ok = present.sum(axis=1) > 1
        skip = (cols["busy"] == lead) & ~mandated & second_ok & np.isfinite(best)
        lead = np.where(skip, order[:, 1], lead)
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


def busy_roles(cols: Columns, rng: np.random.Generator) -> np.ndarray:
    """The busy agent's role per row (-1: none): the first choice in :data:`BUSY_SHARE` of rows, another
    present agent in :data:`DISTRACTOR_SHARE`."""
    present = cols["present"]
    n = present.shape[0]
    first = preference_order(cols)[1][:, 0]
    others = present.copy()
    others[np.arange(n), first] = False
    other = np.where(others, rng.random(present.shape), -1.0).argmax(axis=1)
    u = rng.random(n)
    busy = np.where(u < BUSY_SHARE, first, -1)
    busy = np.where((u >= BUSY_SHARE) & (u < BUSY_SHARE + DISTRACTOR_SHARE) & others.any(axis=1), other, busy)
    return busy.astype(np.int64)


# Sentence frames of a task description ("{task}": verb and object, "{risk}" / "{Risk}": the risk phrase, which
# may be empty, as it is or capitalised). The last two frames are never used for training: evaluation measures
# generalisation on them.
TASK_FAMILIES: tuple[tuple[str, str], ...] = (  # (with a risk phrase, without one)
    ("{task}; {risk}", "{task}"),
    ("{risk}: {task}", "{task}"),
    ("We need to {task}. {Risk}", "We need to {task}"),
    ("Task for the team: {task} ({risk})", "Task for the team: {task}"),
    ("Could you {task}? {Risk}", "Could you {task}?"),
    ("The goal this sprint: {task} - {risk}", "The goal this sprint: {task}"),
    ("Requested by management: {task}. Context: {risk}", "Requested by management: {task}"),
)
HELD_OUT_TASK_FAMILIES = (5, 6)
TRAIN_TASK_FAMILIES = tuple(f for f in range(len(TASK_FAMILIES)) if f not in HELD_OUT_TASK_FAMILIES)
HELD_OUT_EXAMPLES = 1000
HELD_OUT_SEED = 90_002


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def compose_tasks(cols: Columns, rng: np.random.Generator,
                  families: Sequence[int] = TRAIN_TASK_FAMILIES) -> np.ndarray:
    """Task descriptions in words for latent (task, personal data, risk, busy agent) columns, each in one of
    ``families`` (:data:`TASK_FAMILIES`)."""
    n = cols["task"].shape[0]
    out = np.empty(n, dtype=object)
    family: list[int] = np.asarray(families)[rng.integers(0, len(families), n)].tolist()
    verbs: list[int] = np.asarray(rng.integers(0, 6, n)).tolist()
    objs: list[int] = np.asarray(rng.integers(0, 7, n)).tolist()
    risk_words: list[int] = np.asarray(rng.integers(0, 4, n)).tolist()
    who_words: list[int] = np.asarray(rng.integers(0, 3, n)).tolist()
    busy_words: list[int] = np.asarray(rng.integers(0, len(BUSY_PHRASES), n)).tolist()
    busy_first: list[float] = np.asarray(rng.random(n)).tolist()
    for i in range(n):
        verb = TASK_VERBS[TASKS[int(cols["task"][i])]][int(verbs[i])]
        obj = TASK_OBJECTS[bool(cols["contains_pii"][i])][int(objs[i])]
        risk = lang.RISK_WORDS[int(cols["risk"][i])][int(risk_words[i])]
        with_risk, without = TASK_FAMILIES[family[i]]
        task = f"{verb} {obj}"
        text = _capital(with_risk.format(task=task, risk=risk, Risk=_capital(risk)) if risk else without.format(
            task=task))
        if "busy" in cols and cols["busy"][i] >= 0:
            who = ROLE_PHRASES[ROLES[int(cols["busy"][i])]][int(who_words[i])]
            note = BUSY_PHRASES[int(busy_words[i])].format(who)
            note = _capital(note)
            text = f"{text}. {note}." if busy_first[i] >= 0.5 else f"{note}. {text}"
        out[i] = text
    return out


class MultiAgentCoordination(Component):
    name = "multi-agent-coordination"
    classes = CLASSES
    request_model = CoordinationRequest
    response_model = CoordinationResponse
    input_dtype = torch.int64
    fact_width = FACT_WIDTH

    def generate(self, examples: int, seed: int, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None, families: Sequence[int] | None = None) -> Columns:
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
        cols["busy"] = busy_roles(cols, rng)
        lead, strategy = reference_choice(cols, rng)
        cols["text"] = compose_tasks(cols, rng, TRAIN_TASK_FAMILIES if families is None else families)
        cols[LABEL] = lead * len(STRATEGIES) + strategy
        return cols

    @staticmethod
    def structured(cols: Columns, i: int) -> list[str]:
        tokens = [f"role:{r}" for j, r in enumerate(ROLES) if cols["present"][i, j]]
        tokens.append(f"prio:{PRIORITIES[int(cols['priority'][i])]}")
        tokens.append(f"size:{int(cols['present'][i].sum())}")
        if "pii_stated" in cols and cols["pii_stated"][i] >= 0:
            tokens.append(f"ctx:contains_pii={int(cols['pii_stated'][i])}")
        if "risk_stated" in cols and cols["risk_stated"][i] >= 0:
            tokens.append(f"ctx:risk={RISK_LEVELS[int(cols['risk_stated'][i])]}")
        return tokens

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        n = cols["present"].shape[0]
        x = lang.featurize(list(cols["text"]), [self.structured(cols, i) for i in range(n)])
        return {"x": x, "mask": np.repeat(cols["present"], len(STRATEGIES), axis=1)}

    def targets(self, cols: Columns) -> dict[str, np.ndarray]:
        n = cols["present"].shape[0]
        busy = cols["busy"] if "busy" in cols else np.full(n, -1, dtype=np.int64)  # a file without the column
        return {"facts": np.stack([cols["contains_pii"].astype(np.int64), cols["risk"], cols["task"], busy + 1],
                                  axis=1)}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return TextClassifier(lang.BUCKETS, len(CLASSES), FACT_WIDTH, spec)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = model(batch["x"]).float()
        c = len(CLASSES)
        facts, f = out[:, c:], batch["facts"]
        loss = F.cross_entropy(masked_logits(out[:, :c], batch.get("mask")), batch["y"])
        aux = F.binary_cross_entropy_with_logits(facts[:, 0], f[:, 0].float())
        aux = aux + F.cross_entropy(facts[:, 1:5], f[:, 1]) + F.cross_entropy(facts[:, 5:9], f[:, 2])
        aux = aux + F.cross_entropy(facts[:, 9:FACT_WIDTH], f[:, 3])  # who the description says is busy
        return loss + 0.5 * aux

    def language_report(self, model: nn.Module, spec: ModelSpec, constitution: ConstitutionSnapshot,
                        served: Any, guard: Any) -> LanguageReport:
        """Accuracy and macro-F1 on the held-out sentence frames (:data:`HELD_OUT_TASK_FAMILIES`), never used in
        training. (The red-team and benign sets are requests for a decision, not tasks to coordinate.)"""
        from acgs_workloads.components.base import predict_arrays
        from acgs_workloads.evaluation import classification_metrics

        held = self.generate(HELD_OUT_EXAMPLES, HELD_OUT_SEED, spec, constitution, families=HELD_OUT_TASK_FAMILIES)
        predicted, _ = predict_arrays(model, self.inputs(held, spec), self.input_dtype, classes=len(self.classes))
        scores = classification_metrics(held[LABEL], predicted)
        metrics = {"held_out_accuracy": round(scores["accuracy"], 6), "held_out_f1": round(scores["f1"], 6)}
        extra = {"heldOut": {"examples": HELD_OUT_EXAMPLES, "families": list(HELD_OUT_TASK_FAMILIES), **metrics}}
        return LanguageReport(metrics=metrics, extra=extra)

    def apply_facts(self, cols: Columns, fact_logits: np.ndarray) -> None:
        """Judge on the more restrictive of what the client stated and what the task description says."""
        read_pii = fact_logits[:, 0] > 0.0
        read_risk = fact_logits[:, 1:5].argmax(axis=1)
        cols["task"] = fact_logits[:, 5:9].argmax(axis=1).astype(np.int64)
        cols["busy"] = fact_logits[:, 9:FACT_WIDTH].argmax(axis=1).astype(np.int64) - 1
        cols["contains_pii"] = (cols["pii_stated"] == 1) | read_pii
        cols["risk"] = np.maximum(cols["risk_stated"], read_risk).astype(np.int64)

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
        pii = np.array([-1 if r.contains_pii is None else int(r.contains_pii) for r in requests], dtype=np.int64)
        risk = np.array([-1 if r.risk_level is None else RISK_LEVELS.index(r.risk_level) for r in requests],
                        dtype=np.int64)
        return {
            "present": present,
            "task": np.zeros(len(requests), dtype=np.int64),
            "priority": np.array([PRIORITIES.index(r.priority) for r in requests], dtype=np.int64),
            "pii_stated": pii,
            "risk_stated": risk,
            "contains_pii": pii == 1,
            "risk": np.maximum(risk, 0),
            "text": np.array([f"{r.task_description} {r.scenario.replace('_', ' ')}" for r in requests], dtype=object),
        }

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "scenario": "generated",
            "involved_agents": [{"name": f"{r}-1", "role": r} for j, r in enumerate(ROLES)
                                if cols["present"][index, j]],
            "task_description": str(cols["text"][index]),
            "priority": PRIORITIES[int(cols["priority"][index])],
            "constitutional_hash": constitution_hash,
        }

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        lead_role, strategy = divmod(predicted, len(STRATEGIES))
        agents = request.agents
        lead = next(a for a in agents if a.role == ROLES[lead_role])
        task = TASKS[int(cols["task"][index])]
        busy = int(cols["busy"][index]) if "busy" in cols else -1
        subtasks = [
            SubTask(agent=a.name, role=a.role,
                    subtask=("lead: coordinate the team and " if a.name == lead.name else "")
                    + f"{SUBTASKS[a.role]} for: {request.task_description[:200]}")
            for a in agents
        ]
        return CoordinationResponse(
            lead_agent=lead.name,
            strategy=STRATEGIES[strategy],  # type: ignore[arg-type]
            assignments={s.agent: s.subtask for s in subtasks},
            subtasks=subtasks,
            facts=CoordinationFacts(task_kind=task, contains_pii=bool(cols["contains_pii"][index]),
                                    risk_level=RISK_LEVELS[int(cols["risk"][index])],
                                    busy_role=ROLES[busy] if busy >= 0 else None),
            constitutional_hash=constitution_hash,
        )
