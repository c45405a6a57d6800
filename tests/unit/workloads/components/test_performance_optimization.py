"""performance-optimization: the reference configuration, the honest "infeasible" answer, and the constitution's
reliability rule evaluated by the Rego engine agreeing with the component's own formulas."""

from __future__ import annotations

import numpy as np
import pytest

from acgs_workloads.components import get
from acgs_workloads.components.performance_optimization import (
    CLASSES,
    CONFIGS,
    INFEASIBLE,
    INFEASIBLE_CLASS,
    ServingConfig,
    config_of,
    estimates,
    reference_config,
)
from acgs_workloads.constitution import ConstitutionEvaluator
from acgs_workloads.contract import ModelSpec

pytestmark = pytest.mark.unit

COMPONENT = get("performance-optimization")


def columns(rate: float, slo: float, base: float = 5.0, per_item: float = 1.0) -> dict[str, np.ndarray]:
    return {"request_rate_rps": np.array([rate]), "slo_p99_ms": np.array([slo]), "base_ms": np.array([base]),
            "per_item_ms": np.array([per_item]), "tokens": np.array([128.0]), "gpu": np.array([False])}


def test_reference_is_the_cheapest_fitting_configuration_or_infeasible() -> None:
    cols = columns(200.0, 100.0)
    label = reference_config(cols["base_ms"], cols["per_item_ms"], cols["request_rate_rps"], cols["slo_p99_ms"])
    assert CLASSES[label[0]] == "2x1"  # 1 replica; batch 1 carries 167 rps < 220, batch 2 carries 286
    far = columns(200_000.0, 30.0)
    label = reference_config(far["base_ms"], far["per_item_ms"], far["request_rate_rps"], far["slo_p99_ms"])
    assert label[0] == INFEASIBLE_CLASS and CLASSES[INFEASIBLE_CLASS] == INFEASIBLE


def test_infeasible_answer_shows_the_best_effort_and_why() -> None:
    cols = columns(200_000.0, 30.0)
    response = COMPONENT.respond(None, cols, 0, INFEASIBLE_CLASS, np.zeros(len(CLASSES)), "h")
    assert isinstance(response, ServingConfig)
    assert not response.feasible and (response.batch_size, response.replicas) == (32, 16)  # the most capacity
    assert response.reason is not None and "200000 rps" in response.reason and "30 ms" in response.reason
    fitting = COMPONENT.respond(None, columns(200.0, 100.0), 0, CLASSES.index("2x1"), np.zeros(len(CLASSES)), "h")
    assert isinstance(fitting, ServingConfig) and fitting.feasible and fitting.reason is None


def test_reliability_rule_in_rego_agrees_with_the_components_formulas(evaluator: ConstitutionEvaluator) -> None:
    cols = COMPONENT.generate(200, 4, ModelSpec())
    predicted = np.random.default_rng(0).integers(0, len(CLASSES), 200)
    found = evaluator.evaluate(COMPONENT.decisions(cols, predicted))
    for i, label in enumerate(predicted.tolist()):
        if label == INFEASIBLE_CLASS:  # recommends no configuration: nothing to break
            assert "reliability" not in found[i]
            continue
        batch, replicas = config_of(label)
        capacity, p99 = estimates(cols["base_ms"][i], cols["per_item_ms"][i], cols["request_rate_rps"][i],
                                  np.array(float(batch)), np.array(float(replicas)))
        breaks = capacity < 1.1 * cols["request_rate_rps"][i] or p99 > cols["slo_p99_ms"][i]
        assert ("reliability" in found[i]) == breaks, (CONFIGS[label], cols["request_rate_rps"][i], p99)
    assert evaluator.plan.per_decision == ()  # the rule is evaluated batched
