"""policy-governance's framework and scope facts and multi-agent-coordination's busy agents (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from acgs_workloads.components import get
from acgs_workloads.components import language as lang
from acgs_workloads.components import multi_agent_coordination as mac
from acgs_workloads.components.base import LABEL, train_tensors
from acgs_workloads.contract import ModelSpec

pytestmark = pytest.mark.unit
SPEC = ModelSpec(hidden_size=16, layers=1)


class _Fixed(nn.Module):
    """A model whose output is a fixed tensor (the loss is then a function of the targets alone)."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out


def _confident(targets: np.ndarray, groups: tuple[int, ...], margin: float = 30.0) -> torch.Tensor:
    """Fact logits that read every target right by a wide margin."""
    parts = []
    for g, size in enumerate(groups):
        if size == 1:
            parts.append(torch.as_tensor(np.where(targets[:, g] == 1, margin, -margin)[:, None], dtype=torch.float32))
        else:
            part = torch.full((targets.shape[0], size), -margin)
            part[torch.arange(targets.shape[0]), torch.as_tensor(targets[:, g])] = margin
            parts.append(part)
    return torch.cat(parts, dim=1)


def test_policy_facts_are_trained_against_framework_and_scope() -> None:
    """The framework and scope logits are scored against the framework and scope columns (they were scored
    against a safety state, so the model never learnt to read them and the controls were guessed)."""
    component = get("policy-governance")
    cols = component.generate(64, 3, SPEC)
    data = train_tensors(component, cols, SPEC)
    targets = component.targets(cols)["facts"]
    assert targets.shape[1] == len(component.fact_groups)
    np.testing.assert_array_equal(targets[:, len(lang.FACT_GROUPS)], cols["framework"])
    np.testing.assert_array_equal(targets[:, len(lang.FACT_GROUPS) + 1], cols["scope"])
    facts = _confident(targets, component.fact_groups)
    decision = torch.zeros(len(targets), len(component.classes))
    right = component.loss(_Fixed(torch.cat([decision, facts], dim=1)), data)
    assert right.item() == pytest.approx(math.log(len(component.classes)), abs=1e-3)  # the decision's share only
    wrong_framework = targets.copy()
    wrong_framework[:, len(lang.FACT_GROUPS)] = (wrong_framework[:, len(lang.FACT_GROUPS)] + 1) % 7
    misread = _confident(wrong_framework, component.fact_groups)
    assert component.loss(_Fixed(torch.cat([decision, misread], dim=1)), data).item() > right.item() + 1.0


def _coordination(present: list[list[str]], task: str, risk: int = 0, pii: bool = False,
                  busy: list[str | None] | None = None) -> dict[str, np.ndarray]:
    n = len(present)
    cols = {
        "present": np.array([[r in p for r in mac.ROLES] for p in present], dtype=bool),
        "task": np.full(n, mac.TASKS.index(task)),
        "priority": np.full(n, mac.PRIORITIES.index("normal")),
        "contains_pii": np.full(n, pii),
        "risk": np.full(n, risk),
    }
    if busy is not None:
        cols["busy"] = np.array([-1 if b is None else mac.ROLES.index(b) for b in busy])
    return cols


def test_a_busy_first_choice_hands_the_lead_on_unless_mandated() -> None:
    team = ["planner", "executor", "auditor"]
    cols = _coordination([team] * 3, "execution", busy=[None, "executor", "planner"])
    lead, _ = mac.reference_choice(cols, None)
    assert [mac.ROLES[i] for i in lead] == ["executor", "planner", "executor"]  # a busy non-lead changes nothing
    pii = _coordination([["planner", "privacy-officer"]] * 2, "planning", pii=True, busy=[None, "privacy-officer"])
    assert [mac.ROLES[i] for i in mac.reference_choice(pii, None)[0]] == ["privacy-officer"] * 2  # mandated
    high = _coordination([["planner", "auditor"]] * 2, "review", risk=2, busy=[None, "auditor"])
    assert [mac.ROLES[i] for i in mac.reference_choice(high, None)[0]] == ["auditor"] * 2


def test_the_task_description_says_who_is_busy() -> None:
    component = get("multi-agent-coordination")
    cols = component.generate(2000, 5, SPEC)
    busy = cols["busy"]
    assert 0.1 < np.mean(busy >= 0) < 0.25
    for i in np.flatnonzero(busy >= 0)[:200]:
        text = str(cols["text"][i]).lower()
        assert any(p.lower() in text for p in mac.ROLE_PHRASES[mac.ROLES[int(busy[i])]]), text
    for i in np.flatnonzero(busy < 0)[:200]:
        text = str(cols["text"][i]).lower()
        assert not any(p.format("").strip() in text for p in mac.BUSY_PHRASES), text
    # the label follows the stated facts: only the strategy noise (reviewer disagreement) departs from them
    lead, strategy = mac.reference_choice(cols, None)
    agree = np.mean(lead * len(mac.STRATEGIES) + strategy == cols["label"])
    assert agree > 1 - 1.5 * mac.STRATEGY_NOISE
    targets = component.targets(cols)["facts"]
    np.testing.assert_array_equal(targets[:, 3], busy + 1)


class _Wrapped(nn.Module):
    """The same model behind a wrapper that is no TextClassifier (the rule term is then left out)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.inner(ids)


@pytest.mark.parametrize("name", ["constitutional-ai", "policy-governance"])
def test_the_decision_rule_is_also_taught_on_the_true_facts(name: str) -> None:
    from acgs_workloads.components.text_governance import fact_one_hot

    component = get(name)
    cols = component.generate(48, 4, SPEC)
    data = train_tensors(component, cols, SPEC)
    known = fact_one_hot(data["facts"], component.fact_groups)
    assert known.shape == (48, sum(component.fact_groups))
    start = 0
    for g, size in enumerate(component.fact_groups):
        chunk = known[:, start : start + size]
        expected = data["facts"][:, g].float() if size == 1 else torch.ones(48)
        assert torch.equal(chunk.sum(dim=1), expected)
        start += size
    torch.manual_seed(0)
    model = component.build_model(SPEC)
    model.eval()  # no dropout: both losses see the same forward pass
    with torch.no_grad():
        rule = torch.nn.functional.cross_entropy(model.decide(known), data["y"])
        with_rule = component.loss(model, data)
        without = component.loss(_Wrapped(model), data)
    assert with_rule.item() == pytest.approx(without.item() + rule.item(), rel=1e-5)



def test_held_out_task_frames_are_never_trained_on() -> None:
    component = get("multi-agent-coordination")
    markers = ("The goal this sprint: ", "Requested by management: ")  # the two held-out frames' openings
    assert all(m.strip() in mac.TASK_FAMILIES[f][1] for m, f in zip(markers, mac.HELD_OUT_TASK_FAMILIES, strict=True))
    train = component.generate(600, 3, SPEC)
    held = component.generate(200, 3, SPEC, families=mac.HELD_OUT_TASK_FAMILIES)
    assert not any(m in text for text in train["text"] for m in markers), "no held-out frame in training data"
    assert all(any(m in text for m in markers) for text in held["text"]), "every held-out request in one"
    assert (train[LABEL].max() < len(mac.CLASSES)) and (held[LABEL].max() < len(mac.CLASSES))
