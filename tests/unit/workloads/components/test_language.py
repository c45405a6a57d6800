"""Requests in plain words: the generator, hashed n-grams, the restrictive merge and labels from the Constitution."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from acgs_workloads.components import get
from acgs_workloads.components import language as lang
from acgs_workloads.components.base import LABEL
from acgs_workloads.components.governance import DECISIONS
from acgs_workloads.components.labels import constitution_minimum, decision_table
from acgs_workloads.constitution.hashing import constitution_hash
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec, Principle

pytestmark = pytest.mark.unit
SPEC = ModelSpec(hidden_size=16, layers=1)


def test_requests_are_varied_seeded_and_hold_out_families() -> None:
    component = get("constitutional-ai")
    a = component.generate(400, 3, SPEC)
    b = component.generate(400, 3, SPEC)
    assert list(a["text"]) == list(b["text"])
    assert len(set(a["text"])) > 390  # not a handful of templates
    assert not set(a["family"]).intersection(lang.HELD_OUT_FAMILIES)
    held = component.generate(200, 3, SPEC, families=lang.HELD_OUT_FAMILIES)
    assert set(held["family"]) <= set(lang.HELD_OUT_FAMILIES)
    denied = a["facts"][:, len(lang.RISK_FLAGS)] == 2  # the text denies consent
    said = [any(p in t.lower() for p in lang.CONSENT_NO) for t in a["text"][denied]]
    assert np.mean(said) > 0.85  # the rest carry a typo in the phrase


def test_short_and_everyday_requests_state_few_facts() -> None:
    cols = get("constitutional-ai").generate(3000, 5, SPEC)
    words = np.array([len(t.split()) for t in cols["text"]])
    everyday, brief = cols["everyday"], cols["brief"] & ~cols["everyday"]
    assert 0.05 < everyday.mean() < 0.15 and 0.2 < brief.mean() < 0.4
    # an everyday request has no governance facts: nothing risky, every safety fact unsaid, risk and harm lowest
    assert not cols["contains_pii"][everyday].any() and (cols["facts"][everyday][:, 3:] == 0).all()
    assert not cols["protected_attribute_used"][everyday].any() and not cols["automated"][everyday].any()
    assert np.median(words[everyday]) <= 12 and np.median(words[brief]) < np.median(words[~cols["brief"]])
    assert (words <= 10).mean() > 0.05  # people write short requests; the model meets them in training
    assert (cols[LABEL][everyday] <= 1).all()  # approve (or one step up: label noise)


def test_change_requests_name_a_system_of_their_risk() -> None:
    cols = get("constitutional-ai").generate(3000, 6, SPEC)
    for level, systems in enumerate(lang.SYSTEMS):
        named = np.array([any(s in t for s in systems) for t in cols["text"]])
        assert named.sum() > 20
        assert (cols["risk"][named] == level).mean() > 0.97  # the system says the risk (a typo may hide one)


def test_personal_data_is_said_with_an_owner_without_one_and_about_one_person() -> None:
    said = lang.personal_data(np.random.default_rng(3), 2000)
    owned = np.array([t.split(" ", 1)[0] in {o.split(" ")[0] for o in lang.DATA_OWNERS} for t in said])
    one = np.array([any(t.endswith(" for " + name) for name in lang.PERSON_NAMES) for t in said])
    bare = np.array([any(t.endswith(" " + src) for src in lang.DATA_SOURCES) for t in said])
    assert 0.5 < owned.mean() < 0.7 and 0.1 < one.mean() < 0.2 and 0.2 < bare.mean() < 0.3
    assert all(any(kind in t for kind in lang.DATA_KINDS) for t in said)


def test_falsified_records_and_bypassed_controls_are_severe_harm_never_plainly_approved() -> None:
    cols = get("constitutional-ai").generate(6000, 8, SPEC)
    acts = lang.HARM_WORDS[3][lang.HARM_WORDS[3].index("rewriting the temperature logs") :]
    named = np.array([any(a in t for a in acts) for t in cols["text"]])
    assert named.sum() > 20
    assert (cols["harm_level"][named] == 3).all()
    assert (cols[LABEL][named] != DECISIONS.index("approve")).mean() > 0.9  # the rest: label noise


def test_the_evaluation_sets_are_apart_from_the_generator() -> None:
    from acgs_workloads.components.text_governance import evaluation_set

    generated = {t.lower() for t in get("constitutional-ai").generate(5000, 7, SPEC)["text"]}
    for name in ("redteam", "benign"):
        rows = evaluation_set(name)
        assert len(rows) >= 100 and len({r["id"] for r in rows}) == len(rows)
        assert not {r["text"].lower() for r in rows} & generated


def test_an_unsafe_approval_is_one_the_red_team_requests_facts_rule_out() -> None:
    from acgs_workloads.components.text_governance import TextGovernance, evaluation_set, unsafe_approvals
    from acgs_workloads.constitution.loader import default_constitution

    rows = evaluation_set("redteam")
    component = get("constitutional-ai")
    assert isinstance(component, TextGovernance)
    allowed = component.allowed_levels(rows, default_constitution())
    assert (allowed >= 1).all() and (allowed >= 2).mean() > 0.95  # clearly unacceptable: escalate or deny
    approve, safeguards, escalate = (DECISIONS.index(d) for d in ("approve", "approve_with_safeguards", "escalate"))
    assert unsafe_approvals([approve] * len(rows), allowed).all()
    assert not unsafe_approvals([escalate] * len(rows), allowed).any()
    # approving with safeguards is still approving, unless the request's facts allow exactly that
    assert unsafe_approvals([safeguards] * len(rows), allowed).tolist() == (allowed > safeguards).tolist()


def test_policy_governance_counts_unsafe_approvals_under_the_probes_framework_controls() -> None:
    """A high-risk request that does no harm needs nothing beyond approval under the shared rules, but the
    red-team probe asks policy-governance under GDPR, whose Art. 35 impact assessment sends it to a human."""
    from acgs_workloads.components.text_governance import TextGovernance
    from acgs_workloads.constitution.loader import default_constitution

    facts = {"contains_pii": False, "consent": False, "automated": False, "explanation_provided": False,
             "protected_attribute_used": False, "has_audit_trail": True, "human_oversight_available": True,
             "risk_level": "high", "harm": "negligible"}
    rows = [{"id": "x", "text": "", "facts": facts}, {"id": "y", "text": "", "facts": {**facts, "risk_level": "low"}}]
    levels = {}
    for name in ("constitutional-ai", "policy-governance"):
        component = get(name)
        assert isinstance(component, TextGovernance)
        levels[name] = component.allowed_levels(rows, default_constitution()).tolist()
    escalate = DECISIONS.index("escalate")
    assert levels["constitutional-ai"][0] < escalate <= levels["policy-governance"][0]
    assert levels["constitutional-ai"][1] == levels["policy-governance"][1]  # low risk: no control applies


def test_the_act_implies_harm_when_personal_data_leaves_without_consent() -> None:
    verb = np.array([lang.VERBS.index(v) for v in ("send", "sell", "analyse", "send", "send")])
    dest = np.array([lang.DESTINATIONS.index(d) for d in ("to a partner", "", "to a partner", "to a data broker",
                                                          "for an internal report")])
    personal = np.ones(5, dtype=bool)
    assert lang.implied_harm(verb, dest, personal, np.zeros(5, dtype=bool)).tolist() == [2, 2, 1, 3, 0]
    assert lang.implied_harm(verb, dest, personal, np.ones(5, dtype=bool)).tolist() == [0] * 5  # they consented
    assert lang.implied_harm(verb, dest, ~personal, np.zeros(5, dtype=bool)).tolist() == [0] * 5  # nobody's data


def test_generated_harm_and_risk_are_at_least_what_the_act_implies() -> None:
    cols = get("constitutional-ai").generate(3000, 8, SPEC)
    implied = cols["implied_harm"]
    assert 0.05 < (implied >= 2).mean() < 0.2
    assert (cols["harm_level"] >= implied).all() and (cols["risk"] >= np.minimum(implied, 2)).all()
    acted = np.flatnonzero(implied >= 2)
    named = [lang.DESTINATIONS[int(cols["dest"][i])].lower() in cols["text"][i].lower() for i in acted]
    assert np.mean(named) > 0.85  # the destination stays in the words (the rest carry a typo)
    # their labels: never approve (the constitution and the house rules judge the raised harm and risk)
    assert (cols[LABEL][acted] >= 1).mean() > 0.9


# sha256 (first 16 hex digits) of 600 generated requests' texts, families and fact targets, from the generator
# every model figure in the README was measured on
PINNED_REQUESTS = {
    ("constitutional-ai", 11, None): "2392822afc4fd139",
    ("constitutional-ai", 12, lang.HELD_OUT_FAMILIES): "4e2310d57e87c93a",
    ("policy-governance", 11, None): "017d7b9083a76c4d",
}


@pytest.mark.parametrize(("name", "seed", "families"), list(PINNED_REQUESTS))
def test_generated_requests_are_pinned(name: str, seed: int, families: tuple[int, ...] | None) -> None:
    """A change to the generator (one meant only to make it faster, or a NumPy whose random streams differ)
    must not change the data unnoticed: the trained models and their figures depend on every word of it."""
    cols = get(name).generate(600, seed, SPEC, families=families)
    digest = hashlib.sha256("\n".join(cols["text"].tolist()).encode())
    for key in ("family", "facts"):
        digest.update(np.ascontiguousarray(cols[key], dtype=np.int64).tobytes())
    assert digest.hexdigest()[:16] == PINNED_REQUESTS[(name, seed, families)]


def test_ngrams_put_structured_context_first_and_are_stable() -> None:
    ids = lang.ngram_ids("send " * 400, ["ctx:consent=1"])
    assert len(ids) == lang.MAX_NGRAMS and ids[0] == lang.ngram_ids("", ["ctx:consent=1"])[0]
    assert lang.ngram_ids("Medical records") == lang.ngram_ids("medical records")
    assert all(0 < i < lang.BUCKETS for i in ids)


def test_the_guard_judges_the_more_restrictive_facts() -> None:
    client = {"contains_pii": np.array([False, False]), "protected_attribute_used": np.array([False, False]),
              "automated": np.array([False, False]), "consent": np.array([True, True]),
              "has_audit_trail": np.array([True, False]), "explanation_provided": np.array([False, False]),
              "human_oversight_available": np.array([True, True]), "risk": np.array([0, 3]),
              "harm_score": np.array([0.0, 0.0])}
    supplied = {f: np.array([True, True]) for f in (*lang.RISK_FLAGS, *lang.SAFETY_FLAGS)}
    read = {"contains_pii": np.array([True, False]), "protected_attribute_used": np.array([False, False]),
            "automated": np.array([False, True]), "risk": np.array([1, 0]), "harm_level": np.array([0, 3])}
    for flag in lang.SAFETY_FLAGS:
        read[f"{flag}_state"] = np.array([0, 0])
    read["consent_state"] = np.array([2, 1])  # row 0: the text says "without consent"
    merged = lang.restrictive_merge(client, supplied, read)
    assert merged["contains_pii"].tolist() == [True, False]  # the text names personal data: client's False loses
    assert merged["consent"].tolist() == [False, True]  # the text denies consent: client's True loses
    assert merged["automated"].tolist() == [False, True]
    assert merged["risk"].tolist() == [1, 3] and merged["harm_score"][1] == lang.HARM_SCORES[3]


def test_labels_follow_the_given_constitution(constitution: ConstitutionSnapshot) -> None:
    """An extra principle (no automated decisions without a human: escalate at least) changes the labels."""
    rule = ("package acgs.no_automation\n\nimport rego.v1\n\nviolation contains msg if {\n"
            '\tinput.decision in {"approve", "approve_with_safeguards"}\n\tinput.request.automated\n'
            '\tmsg := "automated request approved"\n}\n')
    principles = [*constitution.principles,
                  Principle(id="no-automation", description="No automated approvals.", severity="critical", rego=rule)]
    stricter = ConstitutionSnapshot(name="stricter", hash=constitution_hash(principles), principles=principles)
    component = get("constitutional-ai")
    cols = component.generate(2000, 4, SPEC)
    base = constitution_minimum(decision_table(constitution, component.name), cols)
    strict = constitution_minimum(decision_table(stricter, component.name), cols)
    automated = cols["automated"]
    assert (strict[automated] >= DECISIONS.index("escalate")).all()
    assert (strict[~automated] == base[~automated]).all()
    relabelled = component.generate(2000, 4, SPEC, stricter)
    assert (relabelled["label"][automated] >= 1).mean() > 0.95  # label noise moves a few one step
