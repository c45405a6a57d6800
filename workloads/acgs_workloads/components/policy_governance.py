"""policy-governance: (policy type, framework, scope, context in words) -> governance decision + its Rego module.

``POST /policy-governance/predict`` with ``{"policy_type": "data_protection", "framework": "GDPR", "scope":
"organization", "context": "Employee data access policy", "constitutional_hash": "..."}`` answers
``governance_decision`` and ``opa_rule``: a Rego v1 module written for this request and framework. The
module holds the framework's controls that apply to the facts read (each a ``required`` level with the
control it comes from) and the proposed decision; it is compiled in the real Rego engine and evaluated on
the request's own facts. Its verdict is the most restrictive required level, so it equals the decision
exactly when the decision meets every control; ``module_agrees`` says so, and evaluation reports the
agreement rate. Labels: the Constitution's Rego, the house rules, and the framework's controls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from torch import nn

from acgs_workloads.components import language as lang
from acgs_workloads.components.base import Columns
from acgs_workloads.components.governance import DECISIONS, RISK_LEVELS, safeguards_for
from acgs_workloads.components.schemas import Decision
from acgs_workloads.components.text_governance import FactsRead, TextGovernance, TextRequest, facts_row
from acgs_workloads.constitution.engine import RegoEvalError, new_interpreter, query_json, set_input
from acgs_workloads.contract import ModelSpec

POLICY_TYPES = ("data_protection", "access_control", "data_retention", "model_deployment", "content_moderation")
FRAMEWORKS = ("GDPR", "HIPAA", "CCPA", "SOC2", "EU-AI-Act", "ISO-27001", "NIST-AI-RMF")
SCOPES = ("individual", "team", "organization", "public")
# what the red-team and benign sets are asked with besides their text (a request's framework decides its controls)
PROBE = {"policy_type": "data_protection", "framework": "GDPR", "scope": "organization"}
Scope = Literal["individual", "team", "organization", "public"]
_FRAMEWORK_KEYS = {re.sub(r"[^a-z0-9]", "", f.lower()): f for f in FRAMEWORKS}
POLICY_PHRASES = {
    "data_protection": ("data protection policy", "privacy policy", "data handling rule"),
    "access_control": ("access policy", "who-can-see-what rule", "access control policy"),
    "data_retention": ("retention policy", "data retention rule", "deletion schedule policy"),
    "model_deployment": ("model deployment policy", "AI release rule", "model rollout policy"),
    "content_moderation": ("moderation policy", "content rule", "community content policy"),
}

_PHRASE_TABLE = np.array([POLICY_PHRASES[p] for p in POLICY_TYPES], dtype=object)  # [policy type, phrase]


@dataclass(frozen=True)
class Control:
    """A framework control: when ``condition`` (Rego over ``input``) holds, at least ``level`` is required."""

    ref: str
    condition: str
    level: int
    mask: str  # numpy condition over the facts (a key of _CONDITIONS)


_CONDITIONS = {
    "pii_no_consent": "input.contains_pii; not input.consent",
    "pii": "input.contains_pii",
    "pii_no_audit": "input.contains_pii; not input.has_audit_trail",
    "automated_no_explanation": "input.automated; not input.explanation_provided",
    "protected": "input.protected_attribute_used",
    "high_risk": 'input.risk_level in {"high", "critical"}',
    "public_automated": 'input.scope == "public"; input.automated',
    "no_audit": "not input.has_audit_trail",
}

CONTROLS: dict[str, tuple[Control, ...]] = {
    "GDPR": (Control("GDPR Art. 6 lawful basis", _CONDITIONS["pii_no_consent"], 1, "pii_no_consent"),
             Control("GDPR Art. 22 automated decisions", _CONDITIONS["automated_no_explanation"], 1,
                     "automated_no_explanation"),
             Control("GDPR Art. 35 impact assessment", _CONDITIONS["high_risk"], 2, "high_risk")),
    "HIPAA": (Control("HIPAA Privacy Rule safeguards", _CONDITIONS["pii"], 1, "pii"),
              Control("HIPAA Security Rule audit controls", _CONDITIONS["pii_no_audit"], 2, "pii_no_audit")),
    "CCPA": (Control("CCPA right to opt out", _CONDITIONS["pii_no_consent"], 1, "pii_no_consent"),),
    "SOC2": (Control("SOC 2 CC7 monitoring", _CONDITIONS["no_audit"], 1, "no_audit"),),
    "EU-AI-Act": (Control("EU AI Act Art. 13 transparency", _CONDITIONS["automated_no_explanation"], 1,
                          "automated_no_explanation"),
                  Control("EU AI Act Art. 14 human oversight", _CONDITIONS["high_risk"], 2, "high_risk"),
                  Control("EU AI Act public deployment", _CONDITIONS["public_automated"], 1, "public_automated")),
    "ISO-27001": (Control("ISO 27001 A.8.15 logging", _CONDITIONS["pii_no_audit"], 1, "pii_no_audit"),),
    "NIST-AI-RMF": (Control("NIST AI RMF Manage 2.2", _CONDITIONS["high_risk"], 2, "high_risk"),),
}


def control_mask(name: str, cols: Columns) -> np.ndarray:
    """Where control condition ``name`` holds for fact columns (with a ``scope`` index column)."""
    pii, consent, audit = cols["contains_pii"], cols["consent"], cols["has_audit_trail"]
    automated, explained = cols["automated"], cols["explanation_provided"]
    masks = {
        "pii_no_consent": pii & ~consent,
        "pii": pii,
        "pii_no_audit": pii & ~audit,
        "automated_no_explanation": automated & ~explained,
        "protected": cols["protected_attribute_used"],
        "high_risk": cols["risk"] >= 2,
        "public_automated": (cols["scope"] == SCOPES.index("public")) & automated,
        "no_audit": ~audit,
    }
    return np.asarray(masks[name])


def framework_minimum(cols: Columns) -> np.ndarray:
    """The level the request's framework requires for each row (the controls that hold)."""
    level = np.zeros(cols["risk"].shape[0], dtype=np.int64)
    for f, framework in enumerate(FRAMEWORKS):
        at = cols["framework"] == f
        for control in CONTROLS[framework]:
            level = np.where(at & control_mask(control.mask, cols), np.maximum(level, control.level), level)
    return level


def _rego_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


RULE_CACHE_SIZE = 8192  # control lists and modules remembered (requests repeat: the facts are discrete)
_CONTROL_FLAGS = ("contains_pii", "consent", "has_audit_trail", "automated", "explanation_provided",
                  "protected_attribute_used")  # the flags a control condition reads (besides risk and scope)


def applicable_controls(framework: str, scope: str, facts: Mapping[str, Any]) -> tuple[Control, ...]:
    """The controls of ``framework`` whose condition holds for ``facts`` (a request's facts, as
    :func:`~acgs_workloads.components.text_governance.facts_row` writes them) in ``scope``."""
    flags = tuple(bool(facts[name]) for name in _CONTROL_FLAGS)
    return _applicable_controls(framework, scope, flags, facts["risk_level"])


@lru_cache(maxsize=RULE_CACHE_SIZE)
def _applicable_controls(framework: str, scope: str, flags: tuple[bool, ...], risk_level: str
                         ) -> tuple[Control, ...]:
    cols = {name: np.array([value]) for name, value in zip(_CONTROL_FLAGS, flags, strict=True)}
    cols["risk"] = np.array([RISK_LEVELS.index(risk_level)])
    cols["scope"] = np.array([SCOPES.index(scope)])
    return tuple(c for c in CONTROLS[framework] if bool(control_mask(c.mask, cols)[0]))


def rego_module(policy_type: str, framework: str, scope: str, decision: str, facts: dict[str, Any]) -> str:
    """A Rego v1 module for this request: the framework's controls that apply to ``facts`` and the decision."""
    return _module_source(policy_type, framework, scope, decision, applicable_controls(framework, scope, facts))


@lru_cache(maxsize=RULE_CACHE_SIZE)
def _module_source(policy_type: str, framework: str, scope: str, decision: str, controls: tuple[Control, ...]
                   ) -> str:
    """The module's text: it depends on the facts only through the ``controls`` that apply."""
    package = f"acgs.generated.{policy_type}.{re.sub(r'[^a-z0-9]', '_', framework.lower())}"
    lines = [
        f"# {framework} {policy_type.replace('_', ' ')} policy for scope {scope}, written for one request.",
        f"package {package}",
        "",
        "import rego.v1",
        "",
        'levels := ["approve", "approve_with_safeguards", "escalate", "deny"]',
        "",
        f"proposed := {_rego_string(decision)}",
        "",
        "required contains i if {",
        "\tsome i, level in levels",
        "\tlevel == proposed",
        "}",
        "",
    ]
    for control in controls:  # only the controls that apply to this request
        lines += [f"# {control.ref}", f"required contains {control.level} if {{"]
        lines += [f"\t{part.strip()}" for part in control.condition.split(";")]
        lines += ["}", ""]
    lines += ["verdict := levels[max(required)]", ""]
    return "\n".join(lines)


def evaluate_module(module: str, facts: dict[str, Any], scope: str) -> str | None:
    """The module's verdict on the request's facts (None when it does not compile or evaluate). Requests repeat
    (the facts are discrete), so verdicts are cached by (module, facts, scope)."""
    return _verdict(module, json.dumps(facts, sort_keys=True), scope)


@lru_cache(maxsize=8192)
def _verdict(module: str, facts_json: str, scope: str) -> str | None:
    facts = json.loads(facts_json)
    try:
        interpreter = new_interpreter({"generated.rego": module})
        set_input(interpreter, {**facts, "scope": scope})
        package = next(line for line in module.splitlines() if line.startswith("package ")).removeprefix("package ")
        verdict = query_json(interpreter, f"data.{package.strip()}.verdict")
    except (RegoEvalError, StopIteration):
        return None
    return verdict if isinstance(verdict, str) else None


def normalise_framework(value: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", value.lower())
    if key not in _FRAMEWORK_KEYS:
        raise ValueError(f"unknown framework {value!r}; expected one of {', '.join(FRAMEWORKS)} (any case)")
    return _FRAMEWORK_KEYS[key]


class PolicyRequest(TextRequest):
    policy_type: str = Field(min_length=1, max_length=128,
                             description=f"Free text; known values: {', '.join(POLICY_TYPES)}.")
    framework: str = Field(description=f"One of {', '.join(FRAMEWORKS)}, case-insensitive.")
    scope: Scope = "team"

    @field_validator("framework")
    @classmethod
    def _framework(cls, value: str) -> str:
        return normalise_framework(value)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        return value.lower().replace("organisation", "organization") if isinstance(value, str) else value

    def request_text(self) -> str:
        return " ".join(t for t in (self.policy_type.replace("_", " "), super().request_text()) if t)

    def scenario_words(self) -> str:
        return f"{self.policy_type} {self.framework} {self.scope}"


class GovernanceDecision(BaseModel):
    decision: Decision
    safeguards: list[str]
    framework: str
    controls: list[str] = Field(description="The framework's controls that apply to the facts read.")


class PolicyResponse(BaseModel):
    governance_decision: GovernanceDecision
    opa_rule: str = Field(description="A Rego v1 module for this request and framework.")
    compiled: bool = Field(description="The module compiled and evaluated in the Rego engine.")
    module_verdict: str | None = Field(description="The module's verdict on the request's own facts.")
    module_agrees: bool = Field(description="The module's verdict equals governance_decision.decision.")
    facts: FactsRead
    constitutional_hash: str


class PolicyGovernance(TextGovernance):
    name = "policy-governance"
    request_model = PolicyRequest
    response_model = PolicyResponse

    # the decision is read from the facts plus the framework and scope the request names
    fact_width = lang.FACT_WIDTH + len(FRAMEWORKS) + len(SCOPES)
    fact_groups = (*lang.FACT_GROUPS, len(FRAMEWORKS), len(SCOPES))

    def targets(self, cols: Columns) -> dict[str, np.ndarray]:
        facts = super().targets(cols)["facts"]
        return {"facts": np.concatenate([facts, cols["framework"][:, None], cols["scope"][:, None]], axis=1)}

    def latent(self, rng: np.random.Generator, n: int) -> Columns:
        cols = super().latent(rng, n)
        cols["policy_type"] = rng.integers(0, len(POLICY_TYPES), n)
        cols["framework"] = rng.integers(0, len(FRAMEWORKS), n)
        cols["scope"] = rng.integers(0, len(SCOPES), n)
        return cols

    def house_rules(self, cols: Columns, level: np.ndarray) -> np.ndarray:
        return np.maximum(super().house_rules(cols, level), framework_minimum(cols))

    def frame(self, rng: np.random.Generator, cols: Columns, texts: np.ndarray) -> np.ndarray:
        phrases = _PHRASE_TABLE[cols["policy_type"], rng.integers(0, 3, len(texts))].tolist()
        front = (rng.random(len(texts)) < 0.5).tolist()
        out = np.empty(len(texts), dtype=object)
        out[:] = [f"{phrase.capitalize()}: {text}" if f else f"{text} ({phrase})"
                  for phrase, text, f in zip(phrases, texts.tolist(), front, strict=True)]
        return out

    def generate(self, examples: int, seed: int, spec: ModelSpec, constitution: Any = None,
                 families: Sequence[int] | None = None) -> Columns:
        cols = super().generate(examples, seed, spec, constitution, families)
        rows = zip(cols["policy_type"].tolist(), cols["framework"].tolist(), cols["scope"].tolist(), strict=True)
        known = {(p, f, s): self.structured_tokens(p, f, s) for p in range(len(POLICY_TYPES))
                 for f in range(len(FRAMEWORKS)) for s in range(len(SCOPES))}
        tokens = np.empty(examples, dtype=object)
        tokens[:] = [list(known[row]) for row in rows]  # each row its own list
        cols["structured"] = tokens
        return cols

    @staticmethod
    def structured_tokens(policy_type: int, framework: int, scope: int) -> list[str]:
        return [f"pt:{POLICY_TYPES[policy_type]}", f"fw:{FRAMEWORKS[framework].lower()}", f"scope:{SCOPES[scope]}"]

    def extras(self, cols: Columns) -> list[list[str]]:
        base = super().extras(cols)
        if "structured" in cols:
            return [b + list(s) for b, s in zip(base, cols["structured"], strict=True)]
        return base

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        cols = self.client_columns(requests)
        known = {p: i for i, p in enumerate(POLICY_TYPES)}
        cols["policy_type"] = np.array([known.get(r.policy_type.lower(), -1) for r in requests], dtype=np.int64)
        cols["framework"] = np.array([FRAMEWORKS.index(r.framework) for r in requests], dtype=np.int64)
        cols["scope"] = np.array([SCOPES.index(r.scope) for r in requests], dtype=np.int64)
        for i, r in enumerate(requests):
            pt = f"pt:{r.policy_type.lower()[:64]}"
            cols["extras"][i] = [*cols["extras"][i], pt, f"fw:{r.framework.lower()}", f"scope:{r.scope}"]
        return cols

    def request_for(self, cols: Columns, index: int, constitution_hash: str) -> dict[str, Any]:
        return {
            "policy_type": POLICY_TYPES[int(cols["policy_type"][index])],
            "framework": FRAMEWORKS[int(cols["framework"][index])],
            "scope": SCOPES[int(cols["scope"][index])],
            "context": str(cols["text"][index]),
            "constitutional_hash": constitution_hash,
        }

    def probe_request(self, text: str, constitution_hash: str) -> dict[str, Any]:
        return {**PROBE, "context": text, "constitutional_hash": constitution_hash}

    def probe_columns(self, cols: Columns) -> None:
        n = cols["risk"].shape[0]
        cols["framework"] = np.full(n, FRAMEWORKS.index(PROBE["framework"]), dtype=np.int64)
        cols["scope"] = np.full(n, SCOPES.index(PROBE["scope"]), dtype=np.int64)

    def module_for(self, cols: Columns, index: int, decision: str, policy_type: str) -> tuple[str, dict[str, Any]]:
        facts = facts_row(cols, index)
        framework = FRAMEWORKS[int(cols["framework"][index])]
        scope = SCOPES[int(cols["scope"][index])]
        safe_type = re.sub(r"[^a-z0-9]+", "_", policy_type.lower()).strip("_") or "policy"
        if not safe_type[0].isalpha():
            safe_type = "p_" + safe_type
        return rego_module(safe_type, framework, scope, decision, facts), facts

    def respond(self, request: Any, cols: Columns, index: int, predicted: int, probabilities: np.ndarray,
                constitution_hash: str) -> BaseModel:
        decision = DECISIONS[predicted]
        module, facts = self.module_for(cols, index, decision, request.policy_type)
        scope = SCOPES[int(cols["scope"][index])]
        verdict = evaluate_module(module, facts, scope)
        framework = FRAMEWORKS[int(cols["framework"][index])]
        controls = [c.ref for c in applicable_controls(framework, scope, facts)]
        return PolicyResponse(
            governance_decision=GovernanceDecision(decision=decision, safeguards=safeguards_for(facts, decision),
                                                   framework=framework, controls=controls),
            opa_rule=module,
            compiled=verdict is not None,
            module_verdict=verdict,
            module_agrees=verdict == decision,
            facts=self.facts_read(cols, index),
            constitutional_hash=constitution_hash,
        )

    def extra_metrics(self, model: nn.Module, cols: Columns, predicted: np.ndarray, spec: ModelSpec) -> dict[str, Any]:
        limit = min(len(predicted), 300)
        compiled = agree = 0
        for i in range(limit):
            decision = DECISIONS[int(predicted[i])]
            module, facts = self.module_for(cols, i, decision, POLICY_TYPES[int(cols["policy_type"][i])])
            verdict = evaluate_module(module, facts, SCOPES[int(cols["scope"][i])])
            compiled += verdict is not None
            agree += verdict == decision
        return {"policiesGenerated": limit, "policiesCompiled": compiled,
                "policyCompileRate": compiled / limit if limit else 1.0,
                "moduleAgreementRate": agree / limit if limit else 1.0}
