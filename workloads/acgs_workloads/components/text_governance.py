"""The shared base of the governance components that read requests in plain words.

constitutional-ai and policy-governance are :class:`TextGovernance` components: a request's text (and the
structured context a client may add) becomes hashed n-grams (:mod:`.language`); a
:class:`~acgs_workloads.components.models.TextClassifier` returns the decision and the facts it read; the
runtime guard judges the decision on the **more restrictive** of the client's flags and the facts read
(:func:`~acgs_workloads.components.language.restrictive_merge`), so a client cannot talk the guard into
approving by sending ``contains_pii: false`` for a request about medical records.

Training data: latent facts -> English requests (:func:`~acgs_workloads.components.language.compose`);
labels are the least restrictive decision the **given Constitution's Rego** allows for the facts
(:mod:`.labels`), tightened by documented house rules, plus a share of flipped labels (reviewer
disagreement). A share of the facts is also "supplied by the client" as structured context (truthfully), so
the model learns to use both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from acgs_workloads.components import language as lang
from acgs_workloads.components import vectors as vec
from acgs_workloads.components.base import LABEL, Columns, Component, HashedRequest, masked_logits
from acgs_workloads.components.governance import (
    DECISIONS,
    FLAGS,
    RISK_LEVELS,
    flip_labels,
    house_minimum,
    safeguards_for,
)
from acgs_workloads.components.labels import constitution_minimum, decision_table
from acgs_workloads.components.models import ReadsWordVectors, TextClassifier
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec

REVEAL_SHARE = 0.25  # share of facts a generated request also states as structured context
SCENARIO_WORDS = ("ethical_dilemma", "data_access", "compliance_review", "general", "incident_response")
PII_DATA_TYPES = frozenset({"personal", "pii", "medical", "health", "financial", "biometric", "sensitive",
                            "children", "location", "genetic", "hr"})
PLAIN_DATA_TYPES = frozenset({"public", "aggregate", "anonymised", "anonymized", "anonymous", "none",
                              "synthetic"})
FACT_LOSS_WEIGHT = 0.5
ID_DROPOUT = 0.15  # share of a training request's n-gram (or word) ids hidden at each step
MAX_EXTRA_CONTEXT = 16
RiskLevelName = Literal["low", "medium", "high", "critical"]


class RequestContext(BaseModel):
    """Structured facts a client may state beside the text; a fact left out is read from the text alone.
    ``data_type`` (e.g. ``personal``, ``medical``, ``public``) states ``contains_pii``; ``user_role`` and
    other short keys are read as context words."""

    model_config = ConfigDict(extra="allow")

    user_role: str | None = Field(default=None, max_length=128)
    data_type: str | None = Field(default=None, max_length=64)
    risk_level: RiskLevelName | None = None
    contains_pii: bool | None = None
    consent: bool | None = None
    has_audit_trail: bool | None = None
    explanation_provided: bool | None = None
    protected_attribute_used: bool | None = None
    human_oversight_available: bool | None = None
    automated: bool | None = None
    harm_score: float | None = Field(default=None, ge=0.0, le=1.0, description="Estimated harm, 0..1.")

    def extra_words(self) -> list[str]:
        """Other context keys as ``ctx:key=value`` tokens (short scalar values only)."""
        extra = self.model_extra or {}
        out = []
        for key, value in list(extra.items())[:MAX_EXTRA_CONTEXT]:
            if isinstance(value, str | int | float | bool):
                out.append(f"ctx:{str(key)[:32].lower()}={str(value)[:32].lower()}")
        return out


class FactsRead(BaseModel):
    """The governance facts a decision was judged on: the more restrictive of the client's context and the
    request's text."""

    contains_pii: bool
    consent: bool
    has_audit_trail: bool
    explanation_provided: bool
    protected_attribute_used: bool
    human_oversight_available: bool
    automated: bool
    risk_level: str
    harm_level: str
    harm_score: float


class TextRequest(HashedRequest):
    """Base of the text-reading requests: a ``context`` object of facts or a sentence."""

    context: RequestContext | str = Field(default_factory=RequestContext,
                                          description="An object of facts, or a sentence read with the request.")

    @field_validator("context")
    @classmethod
    def _context_length(cls, value: RequestContext | str) -> RequestContext | str:
        if isinstance(value, str) and len(value) > 4096:
            raise ValueError("context text is longer than 4096 characters")
        return value

    def request_text(self) -> str:
        """The words the model reads (the component's text fields and a context sentence)."""
        return self.context if isinstance(self.context, str) else ""

    def scenario_words(self) -> str:
        return ""


def client_columns(requests: Sequence[TextRequest]) -> tuple[Columns, list[list[str]]]:
    """Client-stated facts (``supplied`` marks which) and context tokens of validated requests."""
    n = len(requests)
    cols: Columns = {flag: np.zeros(n, dtype=bool) for flag in FLAGS}
    supplied = np.zeros((n, len(FLAGS)), dtype=bool)
    risk = np.zeros(n, dtype=np.int64)
    risk_supplied = np.zeros(n, dtype=bool)
    harm = np.zeros(n, dtype=np.float64)
    extras: list[list[str]] = []
    for i, request in enumerate(requests):
        tokens = [f"s:{w}" for w in request.scenario_words().lower().replace("_", " ").replace("-", " ").split()]
        ctx = request.context
        if isinstance(ctx, RequestContext):
            stated = {flag: getattr(ctx, flag) for flag in FLAGS}
            if stated["contains_pii"] is None and ctx.data_type is not None:
                kind = ctx.data_type.lower()
                stated["contains_pii"] = True if kind in PII_DATA_TYPES else False if kind in PLAIN_DATA_TYPES else None
            for j, flag in enumerate(FLAGS):
                if stated[flag] is not None:
                    cols[flag][i] = bool(stated[flag])
                    supplied[i, j] = True
                    tokens.append(f"ctx:{flag}={int(bool(stated[flag]))}")
            if ctx.risk_level is not None:
                risk[i], risk_supplied[i] = RISK_LEVELS.index(ctx.risk_level), True
                tokens.append(f"ctx:risk={ctx.risk_level}")
            if ctx.harm_score is not None:
                harm[i] = ctx.harm_score
                tokens.append(f"ctx:harm={lang.HARM_LEVELS[int(lang.harm_level_of(np.array([ctx.harm_score]))[0])]}")
            if ctx.user_role:
                tokens.append(f"ctx:role={ctx.user_role.lower()[:32]}")
            if ctx.data_type:
                tokens.append(f"ctx:data={ctx.data_type.lower()[:32]}")
            tokens += ctx.extra_words()
        extras.append(tokens)
    cols["supplied"] = supplied
    cols["risk"] = risk
    cols["risk_supplied"] = risk_supplied
    cols["harm_score"] = np.round(harm, 2)
    cols["harm_level"] = lang.harm_level_of(harm)
    return cols, extras


def context_tokens(cols: Columns, i: int) -> list[str]:
    """The structured context tokens of generated row ``i`` (what :func:`client_columns` makes of them)."""
    tokens = [f"s:{w}" for w in str(cols["scenario"][i]).replace("_", " ").replace("-", " ").split()]
    for j, flag in enumerate(FLAGS):
        if cols["supplied"][i, j]:
            tokens.append(f"ctx:{flag}={int(bool(cols[flag][i]))}")
    if cols["risk_supplied"][i]:
        tokens.append(f"ctx:risk={RISK_LEVELS[int(cols['risk'][i])]}")
    return tokens


def fact_loss(fact_logits: torch.Tensor, facts: torch.Tensor) -> torch.Tensor:
    """Binary flags (BCE), safety states (3-way CE each), risk and harm levels (4-way CE)."""
    k = len(lang.RISK_FLAGS)
    loss = F.binary_cross_entropy_with_logits(fact_logits[:, :k], facts[:, :k].float())
    for j in range(len(lang.SAFETY_FLAGS)):
        loss = loss + F.cross_entropy(fact_logits[:, k + 3 * j : k + 3 * j + 3], facts[:, k + j])
    base = k + 3 * len(lang.SAFETY_FLAGS)
    s = k + len(lang.SAFETY_FLAGS)
    loss = loss + F.cross_entropy(fact_logits[:, base : base + 4], facts[:, s])
    return loss + F.cross_entropy(fact_logits[:, base + 4 : base + 8], facts[:, s + 1])


def drop_ids(ids: torch.Tensor, share: float) -> torch.Tensor:
    """``ids`` with ``share`` of them hidden (set to padding), the first column kept (the transformer's CLS).
    Training on requests with words hidden teaches the model to read each fact from every word that says it,
    so one word it knows ("religion", "fingerprint") still counts in a phrase it has never seen."""
    hide = torch.rand(ids.shape, device=ids.device) < share
    hide[:, 0] = False
    return ids.masked_fill(hide, 0)


def fact_one_hot(facts: torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """Fact targets (one column per group) as the decision head reads facts: a yes/no fact as 0/1, a one-of-n
    fact one-hot (what the fact head's probabilities are once it reads the text right)."""
    parts = [facts[:, g : g + 1].float() if size == 1 else F.one_hot(facts[:, g].long(), size).float()
             for g, size in enumerate(groups)]
    return torch.cat(parts, dim=1)


def facts_row(cols: Columns, i: int) -> dict[str, Any]:
    """The constitution's ``input.request`` of row ``i`` (the facts judged)."""
    row: dict[str, Any] = {flag: bool(cols[flag][i]) for flag in FLAGS}
    row["risk_level"] = RISK_LEVELS[int(cols["risk"][i])]
    row["harm_score"] = float(cols["harm_score"][i])
    return row


HELD_OUT_EXAMPLES = 1000
HELD_OUT_SEED = 90_001


@dataclass
class LanguageReport:
    """What evaluation adds for a text component: metrics for status and figures for the artifact."""

    metrics: dict[str, float]
    extra: dict[str, Any]


def evaluation_set(name: str) -> list[dict[str, Any]]:
    """A JSON-lines set shipped in :mod:`acgs_workloads.data` (``redteam`` or ``benign``)."""
    text = resources.files("acgs_workloads.data").joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def evaluation_columns(rows: Sequence[dict[str, Any]]) -> Columns:
    """The fact columns of evaluation rows' own ``facts`` (what their authors say the requests do)."""
    cols: Columns = {flag: np.array([bool(r["facts"][flag]) for r in rows], dtype=bool) for flag in FLAGS}
    cols["risk"] = np.array([RISK_LEVELS.index(r["facts"]["risk_level"]) for r in rows], dtype=np.int64)
    cols["harm_level"] = np.array([lang.HARM_LEVELS.index(r["facts"]["harm"]) for r in rows], dtype=np.int64)
    cols["harm_score"] = lang.HARM_SCORES[cols["harm_level"]]
    return cols


def unsafe_approvals(served: Sequence[int], allowed: np.ndarray) -> np.ndarray:
    """Red-team rows approved (with or without safeguards) beyond what their facts allow: a clearly unacceptable
    request approved with "monitoring" is still approved."""
    served_class = np.asarray(served, dtype=np.int64)
    approved = np.isin(served_class, [DECISIONS.index("approve"), DECISIONS.index("approve_with_safeguards")])
    return approved & (served_class < allowed)


class TextGovernance(Component):
    """A governance component (approve / approve_with_safeguards / escalate / deny) that reads text."""

    classes = DECISIONS
    input_dtype = torch.int64
    fact_width = lang.FACT_WIDTH
    fact_groups: ClassVar[tuple[int, ...]] = lang.FACT_GROUPS  # the decision is read from these facts
    families: ClassVar[tuple[int, ...]] = lang.TRAIN_FAMILIES

    # ---------------------------------------------------------------- data

    def latent(self, rng: np.random.Generator, n: int) -> Columns:
        """Latent facts of ``n`` requests (component-specific columns added by subclasses)."""
        domain = rng.integers(0, len(lang.DOMAINS), n)
        pii_p = np.array([0.45, 0.8, 0.65, 0.6, 0.35, 0.45])[domain]
        cols: Columns = {"domain": domain}
        cols["contains_pii"] = rng.random(n) < pii_p
        cols["consent"] = rng.random(n) < 0.5
        cols["has_audit_trail"] = rng.random(n) < 0.45
        cols["explanation_provided"] = rng.random(n) < 0.45
        cols["protected_attribute_used"] = rng.random(n) < 0.12
        cols["human_oversight_available"] = rng.random(n) < 0.75
        cols["automated"] = rng.random(n) < 0.4
        risk_p = np.array([0.4, 0.3, 0.2, 0.1])
        cols["risk"] = (rng.random((n, 1)) > np.cumsum(risk_p)[:-1]).sum(axis=1).astype(np.int64)
        harm_p = np.array([0.45, 0.3, 0.15, 0.1])
        cols["harm_level"] = (rng.random((n, 1)) > np.cumsum(harm_p)[:-1]).sum(axis=1).astype(np.int64)
        lang.quiet_rows(rng, cols)
        lang.sample_acts(rng, cols)
        cols["harm_score"] = lang.HARM_SCORES[cols["harm_level"]]
        return cols

    def house_rules(self, cols: Columns, level: np.ndarray) -> np.ndarray:
        """Rules beyond the constitution (documented per component); default: :func:`house_minimum`."""
        return np.maximum(level, house_minimum(cols, cols["harm_score"]))

    def generate(self, examples: int, seed: int, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None, families: Sequence[int] | None = None) -> Columns:
        if constitution is None:
            from acgs_workloads.constitution.loader import default_constitution

            constitution = default_constitution()
        rng = np.random.default_rng(seed)
        cols = self.latent(rng, examples)
        texts, family, states = lang.compose(cols, rng, self.families if families is None else families)
        cols["text"] = self.frame(rng, cols, texts)
        cols["family"] = family.astype(np.int64)
        cols["facts"] = lang.fact_targets(cols, states)
        cols["supplied"] = rng.random((examples, len(FLAGS))) < REVEAL_SHARE
        cols["risk_supplied"] = rng.random(examples) < REVEAL_SHARE
        scenario = np.asarray(lang.DOMAINS + SCENARIO_WORDS, dtype=object)
        pick = np.where(rng.random(examples) < 0.6, cols["domain"],
                        len(lang.DOMAINS) + rng.integers(0, len(SCENARIO_WORDS), examples))
        cols["scenario"] = scenario[pick]
        level = constitution_minimum(decision_table(constitution, self.name), cols)
        cols[LABEL] = flip_labels(rng, self.house_rules(cols, level))
        return cols

    def frame(self, rng: np.random.Generator, cols: Columns, texts: np.ndarray) -> np.ndarray:
        """The request text of each row (subclasses may wrap the composed sentence)."""
        return texts

    # ---------------------------------------------------------------- model

    def extras(self, cols: Columns) -> list[list[str]]:
        if "extras" in cols:
            return list(cols["extras"])
        return [context_tokens(cols, i) for i in range(cols["risk"].shape[0])]

    def inputs(self, cols: Columns, spec: ModelSpec) -> dict[str, np.ndarray]:
        """n-gram ids, then the words' hashes for the pretrained vectors: [n, MAX_NGRAMS + WORDS_PER_REQUEST]."""
        texts = list(cols["text"])
        return {"x": np.concatenate([lang.featurize(texts, self.extras(cols)), vec.word_hashes(texts)], axis=1)}

    def targets(self, cols: Columns) -> dict[str, np.ndarray]:
        return {"facts": cols["facts"].astype(np.int64)}

    def build_model(self, spec: ModelSpec) -> nn.Module:
        return TextClassifier(lang.BUCKETS, len(self.classes), self.fact_width, spec, self.fact_groups,
                              ngrams=lang.MAX_NGRAMS, word_dimensions=vec.DIMENSIONS)

    def build_trainable(self, spec: ModelSpec) -> nn.Module:
        model = self.build_model(spec)
        if isinstance(model, ReadsWordVectors) and model.words is not None:
            table = vec.load_word_vectors()
            model.set_word_vectors(table.hashes, table.vectors)
        return model

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = model(drop_ids(batch["x"], ID_DROPOUT)).float()
        c = len(self.classes)
        decision = F.cross_entropy(masked_logits(out[:, :c], batch.get("mask")), batch["y"])
        facts = out[:, c:]
        loss = fact_loss(facts, batch["facts"])
        # component facts (e.g. framework and scope): their logits follow the shared FACT_WIDTH, their targets
        # follow the shared facts' one column per group
        start, column = lang.FACT_WIDTH, len(lang.FACT_GROUPS)
        for size in self.fact_groups[len(lang.FACT_GROUPS):]:
            loss = loss + F.cross_entropy(facts[:, start : start + size], batch["facts"][:, column])
            start, column = start + size, column + 1
        decide: nn.Module | None = getattr(getattr(model, "module", model), "decide", None)  # DDP-wrapped or not
        if decide is not None:  # the text classifier and the transformer
            # the decision rule itself, taught on the true facts from the first step: the decision head reads
            # the fact head's probabilities, which say little until the fact head has learnt to read, so
            # without this the rule (constitution, house rules, framework controls) is learnt late and loosely
            known = fact_one_hot(batch["facts"], self.fact_groups).to(out.dtype)
            rule = decide(known).float()
            decision = decision + F.cross_entropy(masked_logits(rule, batch.get("mask")), batch["y"])
        return decision + FACT_LOSS_WEIGHT * loss

    # ---------------------------------------------------------------- serving

    def client_columns(self, requests: Sequence[Any]) -> Columns:
        cols, extras = client_columns(requests)
        cols["text"] = np.array([r.request_text() for r in requests], dtype=object)
        ex = np.empty(len(extras), dtype=object)
        ex[:] = extras
        cols["extras"] = ex
        return cols

    def columns_from_requests(self, requests: Sequence[Any], spec: ModelSpec) -> Columns:
        return self.client_columns(requests)

    def apply_facts(self, cols: Columns, fact_logits: np.ndarray) -> None:
        read = lang.read_facts(fact_logits)
        client = {flag: cols[flag] for flag in FLAGS}
        client["risk"] = np.where(cols["risk_supplied"], cols["risk"], 0)
        client["harm_score"] = cols["harm_score"]
        supplied = {flag: cols["supplied"][:, j] for j, flag in enumerate(FLAGS)}
        merged = lang.restrictive_merge(client, supplied, read)
        cols.update(merged)

    def decision(self, request: dict[str, Any], label: int) -> dict[str, Any]:
        """The Rego ``input`` decision of a request with facts ``request`` answered with class ``label``."""
        decision = DECISIONS[label]
        return {"component": self.name, "decision": decision, "safeguards": safeguards_for(request, decision),
                "request": request}

    def decisions(self, cols: Columns, predicted: np.ndarray) -> list[dict[str, Any]]:
        return [self.decision(facts_row(cols, i), int(label)) for i, label in enumerate(predicted.tolist())]

    def decisions_at(self, cols: Columns, rows: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
        """:meth:`decisions` of request ``rows[i]`` with class ``classes[i]``, read from ``cols`` in place."""
        return [self.decision(facts_row(cols, row), label)
                for row, label in zip(rows.tolist(), classes.tolist(), strict=True)]

    def explain(self, cols: Columns, evaluate: Callable[[Sequence[dict[str, Any]]], list[Any]]) -> None:
        """``allowed``: the least restrictive decision the constitution allows for each request's facts;
        ``why``: the violations that rule out approval (principle -> messages)."""
        n = cols["risk"].shape[0]
        candidates = len(DECISIONS) - 1
        requests = [facts_row(cols, i) for i in range(n)]
        found = evaluate([self.decision(dict(request), label) for request in requests for label in range(candidates)])
        clean = np.array([not f for f in found], dtype=bool).reshape(n, candidates)
        cols["allowed"] = np.where(clean.any(axis=1), clean.argmax(axis=1), len(DECISIONS) - 1)
        why = np.empty(n, dtype=object)
        why[:] = [dict(found[i * candidates]) for i in range(n)]
        cols["why"] = why

    def facts_read(self, cols: Columns, i: int) -> FactsRead:
        row = facts_row(cols, i)
        return FactsRead(**row, harm_level=lang.HARM_LEVELS[int(cols["harm_level"][i])])

    def probe_request(self, text: str, constitution_hash: str) -> dict[str, Any]:
        """A request carrying ``text`` alone (the red-team and benign sets)."""
        raise NotImplementedError

    def probe_columns(self, cols: Columns) -> None:
        """Add to evaluation rows' fact columns what :meth:`probe_request` says besides the text (a framework,
        a scope): the columns :meth:`house_rules` reads. Default: nothing."""

    def allowed_levels(self, rows: Sequence[dict[str, Any]], constitution: ConstitutionSnapshot) -> np.ndarray:
        """The least restrictive decision (index into :data:`DECISIONS`) that ``constitution`` and this
        component's house rules allow for each evaluation row's own ``facts``, asked as :meth:`probe_request`
        asks (policy-governance: under the probe's framework controls too)."""
        cols = evaluation_columns(rows)
        self.probe_columns(cols)
        return self.house_rules(cols, constitution_minimum(decision_table(constitution, self.name), cols))

    def language_report(self, model: nn.Module, spec: ModelSpec, constitution: ConstitutionSnapshot,
                        served: Any, guard: Any) -> LanguageReport:
        """Accuracy and macro-F1 on held-out template families; the red-team set's unsafe-approve rate (approved,
        with or without safeguards, where the request's facts allow neither; approved outright beside it) and
        the benign set's over-refusal rate, through the served model with its runtime guard (and, for the
        record, the model alone)."""
        from acgs_workloads.components.base import predict_arrays
        from acgs_workloads.evaluation import classification_metrics

        held = self.generate(HELD_OUT_EXAMPLES, HELD_OUT_SEED, spec, constitution, families=lang.HELD_OUT_FAMILIES)
        predicted, _ = predict_arrays(model, self.inputs(held, spec), self.input_dtype, classes=len(self.classes))
        scores = classification_metrics(held[LABEL], predicted)
        redteam, benign = evaluation_set("redteam"), evaluation_set("benign")
        allowed = self.allowed_levels(redteam, constitution)
        rates: dict[str, float] = {}
        for name, guarded in (("guarded", guard), ("modelOnly", None)):
            for set_name, rows in (("redteam", redteam), ("benign", benign)):
                answers = served.predict_batch([self.probe_request(r["text"], constitution.hash) for r in rows],
                                               guarded)
                classes = [a.served_class for a in answers]
                if set_name == "redteam":
                    rates[f"redteam:{name}"] = float(unsafe_approvals(classes, allowed).mean())
                    rates[f"outright:{name}"] = sum(c == 0 for c in classes) / len(rows)
                else:  # refused: escalated, denied or no compliant decision at all
                    rates[f"benign:{name}"] = sum(c in (-1, 2, 3) for c in classes) / len(rows)
        metrics = {
            "held_out_accuracy": round(scores["accuracy"], 6),
            "held_out_f1": round(scores["f1"], 6),
            "unsafe_approve_rate": round(rates["redteam:guarded"], 6),
            "over_refusal_rate": round(rates["benign:guarded"], 6),
        }
        extra = {
            "heldOut": {"examples": HELD_OUT_EXAMPLES, "families": list(lang.HELD_OUT_FAMILIES), **metrics},
            "redTeam": {"requests": len(redteam), "unsafeApproveRate": rates["redteam:guarded"],
                        "unsafeApproveRateModelOnly": rates["redteam:modelOnly"],
                        "approvedOutrightRate": rates["outright:guarded"],
                        "approvedOutrightRateModelOnly": rates["outright:modelOnly"]},
            "benign": {"requests": len(benign), "overRefusalRate": rates["benign:guarded"],
                       "overRefusalRateModelOnly": rates["benign:modelOnly"]},
        }
        return LanguageReport(metrics=metrics, extra=extra)

    def request_context(self, cols: Columns, i: int) -> dict[str, Any]:
        """The structured context of generated row ``i`` as a client would send it."""
        ctx: dict[str, Any] = {flag: bool(cols[flag][i]) for j, flag in enumerate(FLAGS) if cols["supplied"][i, j]}
        if cols["risk_supplied"][i]:
            ctx["risk_level"] = RISK_LEVELS[int(cols["risk"][i])]
        return ctx
