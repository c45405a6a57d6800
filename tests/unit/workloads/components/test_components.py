"""The six components: generators, labels vs the Rego engine, schemas, models and predictors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from acgs_workloads.artifacts import save_artifact
from acgs_workloads.components import get, names
from acgs_workloads.components import tokens as tok
from acgs_workloads.components.base import dataset_digest, split_columns, train_tensors
from acgs_workloads.components.datasets import read_columns, write_columns
from acgs_workloads.components.governance import RISK_LEVELS
from acgs_workloads.components.labels import constitution_minimum, decision_table
from acgs_workloads.components.models import WinaLinear
from acgs_workloads.components.policy_governance import (
    FRAMEWORKS,
    RULE_CACHE_SIZE,
    SCOPES,
    _applicable_controls,
    _module_source,
    applicable_controls,
    evaluate_module,
    framework_minimum,
    rego_module,
)
from acgs_workloads.constitution import ConstitutionEvaluator, compliance_share
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec
from acgs_workloads.serving.errors import ConstitutionHashMismatch, ModelLoadError, ModelNotLoaded
from acgs_workloads.serving.model import ServedModel

pytestmark = pytest.mark.unit

SPEC = ModelSpec(hidden_size=16, layers=1, heads=2, sequence_length=24)
# measured share of reference labels the Rego engine accepts (label noise included); performance-optimization
# has none: its reference never breaks the reliability rule (it answers "infeasible" when nothing fits)
MIN_AGREEMENT = {"performance-optimization": 1.0}


@pytest.mark.parametrize("name", names())
def test_generator_is_seeded_and_vectorised(name: str) -> None:
    component = get(name)
    a, b, c = (component.generate(500, s, SPEC) for s in (7, 7, 8))
    assert dataset_digest(a) == dataset_digest(b)
    assert dataset_digest(a) != dataset_digest(c)
    assert all(len(v) == 500 for v in a.values())
    assert a["label"].min() >= 0 and a["label"].max() < len(component.classes)
    assert len(np.unique(a["label"])) >= 3  # not a constant task


@pytest.mark.parametrize("name", names())
def test_labels_agree_with_the_rego_engine(name: str, evaluator: ConstitutionEvaluator) -> None:
    component = get(name)
    cols = component.generate(300, 11, SPEC)
    agreement = compliance_share(evaluator.evaluate(component.decisions(cols, cols["label"])))
    print(f"{name}: {agreement:.3f} of reference labels comply")
    assert agreement >= MIN_AGREEMENT.get(name, 0.95)


def test_governance_labels_are_the_least_restrictive_compliant_decision(evaluator: ConstitutionEvaluator,
                                                                        constitution: ConstitutionSnapshot) -> None:
    component = get("constitutional-ai")
    cols = component.generate(200, 5, SPEC)
    minimum = constitution_minimum(decision_table(constitution, component.name), cols)
    assert compliance_share(evaluator.evaluate(component.decisions(cols, minimum))) == 1.0
    looser = np.maximum(minimum - 1, 0)
    rows = np.flatnonzero(minimum > 0)
    results = evaluator.evaluate(component.decisions({k: v[rows] for k, v in cols.items()}, looser[rows]))
    assert all(results), "one step less restrictive than the minimum must violate a principle"


@pytest.mark.parametrize("name", names())
def test_model_forward_and_gradient_checkpointing(name: str) -> None:
    component = get(name)
    cols = component.generate(64, 1, SPEC)
    data = train_tensors(component, cols, SPEC)
    torch.manual_seed(0)
    model = component.build_model(SPEC)
    logits = model(data["x"][:8])
    assert logits.shape == (8, len(component.classes) + component.fact_width)
    model.train()
    model.gradient_checkpointing = True
    torch.manual_seed(1)
    loss = component.loss(model, {k: v[:8] for k, v in data.items()})
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_dataset_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    component = get("multi-agent-coordination")
    cols = component.generate(50, 2, SPEC)
    for ext in ("jsonl", "parquet"):
        uri = str(tmp_path / f"data.{ext}")
        write_columns(cols, uri)
        back = read_columns(uri, component)
        assert set(back) == set(cols)
        for key in cols:
            np.testing.assert_array_equal(back[key], cols[key])


def test_dataset_labels_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1, "label": "deny"}\n{"a": 2, "label": "approve"}\n')
    assert read_columns(str(path), get("constitutional-ai"))["label"].tolist() == [3, 0]
    path.write_text('{"a": 1, "label": "maybe"}\n{"a": 2, "label": "approve"}\n')
    with pytest.raises(ValueError, match="unknown labels"):
        read_columns(str(path), get("constitutional-ai"))


def test_split_is_deterministic_and_disjoint() -> None:
    cols = {"label": np.arange(100), "v": np.arange(100) * 2}
    train, test = split_columns(cols, 0.2, 3)
    again, _ = split_columns(cols, 0.2, 3)
    assert len(test["label"]) == 20 and set(train["label"]).isdisjoint(test["label"])
    np.testing.assert_array_equal(train["v"], again["v"])


def test_token_sequences_keep_context_and_word_order() -> None:
    ids = tok.encode(["Send the records without consent", "with consent send the records"],
                     [["ctx:risk=high"], []], 16)
    assert ids.shape == (2, 16) and (ids[:, 0] == tok.CLS).all()
    assert ids[0, 1] == tok.token_id("ctx:risk=high") and ids[0, 2] == tok.token_id("send")
    assert tok.lengths(ids).tolist() == [7, 6] and (ids[0, 7:] == tok.PAD).all()
    assert sorted(ids[0, 2:7].tolist()) != sorted(ids[1, 1:6].tolist())  # "without" is not "with"
    assert ids[1, 1] == tok.token_id("with") and ids[0, 6] == tok.token_id("consent")
    assert ids.max() < tok.VOCAB
    long = tok.encode([" ".join(["word"] * 40)], None, 16)
    assert tok.lengths(long).tolist() == [16]  # cut at the model's sequenceLength
    assert tok.full_lengths([" ".join(["word"] * 40)], [["ctx:a=1"]]).tolist() == [42]
    with pytest.raises(ValueError, match="sequenceLength"):
        tok.encode(["a request"], None, tok.MIN_LENGTH - 1)


def test_transformer_components_read_the_text_task(constitution: ConstitutionSnapshot) -> None:
    te, wina, ca = get("transformer-efficiency"), get("wina-optimization"), get("constitutional-ai")
    a, b = te.generate(200, 3, SPEC, constitution), ca.generate(200, 3, SPEC, constitution)
    np.testing.assert_array_equal(a["text"], b["text"])  # the same requests and Constitution-derived labels
    np.testing.assert_array_equal(a["label"], b["label"])
    assert te.request_model is ca.request_model and te.response_model is ca.response_model
    x = te.inputs(a, SPEC)["x"]  # token ids, then each word's pretrained-vector key at the same position
    assert x.shape == (200, 2 * SPEC.sequence_length)
    tokens, keys = x[:, : SPEC.sequence_length], x[:, SPEC.sequence_length :]
    assert ((keys != 0) <= (tokens > tok.CLS)).all() and (keys[:, 0] == 0).all()  # words only, never CLS
    spec = SPEC.model_copy(update={"wina_sparsity": 0.25})
    model = wina.build_model(spec)
    wina.prepare_for_inference(model)
    layers = [m for m in model.modules() if isinstance(m, WinaLinear)]
    assert layers and all(m.keep == 0.75 for m in layers)
    dense = te.build_model(spec)
    te.prepare_for_inference(dense)
    assert all(m.keep is None for m in dense.modules() if isinstance(m, WinaLinear))
    assert ModelSpec.model_validate({"winaSparsity": 0.95}).wina_sparsity == 0.95
    with pytest.raises(ValidationError, match="winaSparsity"):
        ModelSpec.model_validate({"winaSparsity": 0.96})


@pytest.mark.parametrize("decision", ["approve", "approve_with_safeguards", "escalate", "deny"])
def test_generated_modules_compile_and_their_verdict_is_the_strictest_control(decision: str) -> None:
    facts = {"contains_pii": True, "consent": False, "has_audit_trail": False, "explanation_provided": False,
             "protected_attribute_used": False, "human_oversight_available": True, "automated": True,
             "risk_level": "medium", "harm_score": 0.1}
    module = rego_module("data_protection", "GDPR", "organization", decision, facts)
    assert "GDPR Art. 6" in module and "GDPR Art. 22" in module and "Art. 35" not in module  # only what applies
    verdict = evaluate_module(module, facts, "organization")
    assert verdict == (decision if decision != "approve" else "approve_with_safeguards")
    assert evaluate_module(module.replace("verdict :=", "verdict :=="), facts, "organization") is None


def _request(name: str, constitution: ConstitutionSnapshot) -> dict[str, object]:
    component = get(name)
    cols = component.generate(5, 9, SPEC)
    return component.request_for(cols, 0, constitution.hash)


def test_the_controls_of_a_module_are_the_ones_the_labels_apply() -> None:
    """Every (framework, scope, risk, flags) combination: the controls a request's module holds (cached) reach
    exactly the level :func:`framework_minimum` (the labels' vectorised rule) requires."""
    flags = ("contains_pii", "consent", "has_audit_trail", "automated", "explanation_provided",
             "protected_attribute_used")
    grid = np.array(list(itertools.product(range(len(FRAMEWORKS)), range(len(SCOPES)), range(len(RISK_LEVELS)),
                                           *[(0, 1)] * len(flags))))
    cols = {"framework": grid[:, 0], "scope": grid[:, 1], "risk": grid[:, 2]}
    cols |= {flag: grid[:, 3 + j].astype(bool) for j, flag in enumerate(flags)}
    levels = []
    for i in range(len(grid)):
        facts = {flag: bool(cols[flag][i]) for flag in flags} | {"risk_level": RISK_LEVELS[int(cols["risk"][i])]}
        controls = applicable_controls(FRAMEWORKS[int(cols["framework"][i])], SCOPES[int(cols["scope"][i])], facts)
        levels.append(max((c.level for c in controls), default=0))
    assert np.array_equal(np.array(levels), framework_minimum(cols))


def test_generated_modules_are_cached_in_bounded_caches() -> None:
    facts = {"contains_pii": True, "consent": False, "has_audit_trail": True, "explanation_provided": True,
             "protected_attribute_used": False, "human_oversight_available": True, "automated": False,
             "risk_level": "high", "harm_score": 0.3}
    first = rego_module("access_control", "HIPAA", "team", "escalate", facts)
    again = rego_module("access_control", "HIPAA", "team", "escalate", {**facts, "harm_score": 0.9})
    assert again is first  # no control reads the harm score: the same module, rendered once
    assert "HIPAA Privacy Rule" in first and "Security Rule" not in first
    assert rego_module("access_control", "HIPAA", "team", "escalate", {**facts, "has_audit_trail": False}) != first
    assert _module_source.cache_info().maxsize == _applicable_controls.cache_info().maxsize == RULE_CACHE_SIZE


@pytest.mark.parametrize("name", ["constitutional-ai", "policy-governance", "multi-agent-coordination"])
def test_decisions_at_rows_are_the_decisions_of_those_rows(name: str) -> None:
    component = get(name)
    cols = component.generate(40, 3, SPEC)
    rows, classes = np.array([3, 3, 0, 39]), np.array([0, 2, 3, 1])
    subset = {key: values[rows] for key, values in cols.items()}
    assert component.decisions_at(cols, rows, classes) == component.decisions(subset, classes)


@pytest.mark.parametrize("name", names())
def test_served_model_lifecycle(name: str, constitution: ConstitutionSnapshot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    component = get(name)
    predictor = ServedModel(name)
    assert predictor.health()["status"] == "not-loaded"
    with pytest.raises(ModelNotLoaded):
        predictor.predict(_request(name, constitution))
    model = component.build_model(SPEC)
    artifact = save_artifact(str(tmp_path), "run", model.state_dict(), component=name,
                             config={"model": SPEC.wire()}, constitution_hash=constitution.hash,
                             dataset_digest="sha256:x")
    predictor.load(artifact.uri, expected_sha256=artifact.sha256)
    health = predictor.health()
    assert health["status"] == "ok" and health["sha256"] == artifact.sha256
    response = predictor.predict(_request(name, constitution)).response
    assert isinstance(response, component.response_model)
    assert response.constitutional_hash == constitution.hash  # type: ignore[attr-defined]
    with pytest.raises(ConstitutionHashMismatch):
        predictor.predict({**_request(name, constitution), "constitutional_hash": "0" * 16})
    with pytest.raises(ValidationError):
        predictor.predict({"constitutional_hash": constitution.hash, "unexpected": 1})
    assert predictor.health()["requests"] == 1 and predictor.health()["errors"] == 3  # incl. the not-loaded call
    with pytest.raises(ModelLoadError, match="holds"):
        ServedModel("constitutional-ai" if name != "constitutional-ai" else "policy-governance").load(artifact.uri)


def test_seed_response_shapes(constitution: ConstitutionSnapshot) -> None:
    predictors = {}
    for name in names():
        predictors[name] = ServedModel(name).load_state(get(name).build_model(SPEC).state_dict(), SPEC,
                                                        constitution.hash)
    h = constitution.hash
    ca = predictors["constitutional-ai"].predict({
        "scenario": "hiring", "context": {"contains_pii": True, "risk_level": "high"},
        "user_request": "rank these applicants", "constitutional_principles": ["fairness"],
        "constitutional_hash": h}).response
    assert {"decision", "safeguards", "reasoning", "compliance_score", "constitutional_hash", "facts",
            "principles"} == set(ca.model_dump())
    assert ca.facts.contains_pii and ca.facts.risk_level in ("high", "critical")  # type: ignore[attr-defined]
    pg = predictors["policy-governance"].predict({
        "policy_type": "data_retention", "framework": "gdpr", "scope": "organization", "context": {},
        "constitutional_hash": h}).response
    assert pg.compiled and "package acgs.generated.data_retention.gdpr" in pg.opa_rule  # type: ignore[attr-defined]
    assert pg.governance_decision.framework == "GDPR"  # type: ignore[attr-defined]
    ma = predictors["multi-agent-coordination"].predict({
        "scenario": "incident", "involved_agents": [{"name": "ann", "role": "planner"}, "legal"],
        "task_description": "review the incident report", "priority": "high", "constitutional_hash": h}).response
    assert ma.lead_agent in {"ann", "legal"} and set(ma.assignments) == {"ann", "legal"}  # type: ignore[attr-defined]
    assert [s.role for s in ma.subtasks] == ["planner", "auditor"]  # type: ignore[attr-defined]
    po = predictors["performance-optimization"].predict({
        "request_rate_rps": 200, "slo_p99_ms": 100, "base_ms": 5, "per_item_ms": 1, "constitutional_hash": h}).response
    assert po.batch_size >= 1 and po.replicas >= 1  # type: ignore[attr-defined]
    for name in ("transformer-efficiency", "wina-optimization"):
        te = predictors[name].predict({"user_request": "export the patients' medical records",
                                       "context": {"risk_level": "critical"}, "constitutional_hash": h}).response
        assert te.decision in {"approve", "approve_with_safeguards", "escalate", "deny"}  # type: ignore[attr-defined]
        assert te.facts.risk_level == "critical"  # type: ignore[attr-defined]  # the guard keeps the client's
        with pytest.raises(ValidationError, match="tokens"):
            predictors[name].predict({"tokens": [1, 2, 3], "constitutional_hash": h})
        with pytest.raises(ValidationError, match="user_request"):
            predictors[name].predict({"user_request": 7, "constitutional_hash": h})
    with pytest.raises(ValidationError, match="unique"):
        predictors["multi-agent-coordination"].predict({
            "involved_agents": [{"name": "a", "role": "planner"}, {"name": "a", "role": "auditor"}],
            "task_description": "review", "constitutional_hash": h})
    with pytest.raises(ValidationError, match="names no known role"):
        predictors["multi-agent-coordination"].predict({
            "involved_agents": ["zorblax"], "task_description": "review", "constitutional_hash": h})
    with pytest.raises(ValidationError, match="unknown framework"):
        predictors["policy-governance"].predict({"policy_type": "x", "framework": "FOO", "constitutional_hash": h})


def test_transformer_figures_and_wina_at_the_spec_sparsity(constitution: ConstitutionSnapshot) -> None:
    spec = SPEC.model_copy(update={"wina_sparsity": 0.3, "dropout": 0.0})
    wina = get("wina-optimization")
    cols = wina.generate(40, 6, spec, constitution)
    model = wina.build_model(spec)
    wina.prepare_for_inference(model)
    figures = wina.extra_metrics(model, cols, cols["label"], spec)
    assert figures["inferenceTokensPerSecond"] > 0 and figures["parameterMiB"] > 0
    assert 0.0 < figures["truncatedShare"] <= 1.0  # requests are longer than SPEC's 24 tokens
    assert figures["winaSparsity"] == 0.3 and figures["winaSparsities"] == [0.0, 0.25, 0.3, 0.5, 0.75]
    assert set(figures["winaAccuracyPerToken"]) == {"0", "0.25", "0.3", "0.5", "0.75"}
    assert set(figures["winaMlpSpeedupBatch"]) == {"0.25", "0.3", "0.5", "0.75"}
    assert all(m.keep == 0.7 for m in model.modules() if isinstance(m, WinaLinear))  # left as served


def test_reasoning_names_the_facts_and_what_rules_out_plain_approval() -> None:
    from acgs_workloads.components.constitutional_ai import PrincipleFinding, reasoning_text

    row = {"contains_pii": True, "consent": False, "protected_attribute_used": False, "automated": False,
           "explanation_provided": False, "risk_level": "medium", "has_audit_trail": False,
           "human_oversight_available": True}
    finding = PrincipleFinding(principle="privacy",
                               messages=["personal data without consent approved without safeguards"])
    text = reasoning_text("approve_with_safeguards", row, "negligible", [finding], judged=True)
    assert text == ("approve_with_safeguards: personal data without consent; medium risk without an audit trail. "
                    "Plain approval is ruled out by privacy (personal data without consent approved without "
                    "safeguards).")
    quiet = {**row, "contains_pii": False, "risk_level": "low"}
    assert reasoning_text("approve", quiet, "negligible", [], judged=True) == (
        "approve: no personal data, low risk, negligible harm. The constitution allows approval of these facts.")
