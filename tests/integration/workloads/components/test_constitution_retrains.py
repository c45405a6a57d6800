"""A Constitution with an extra principle retrains into a model that stops approving what the principle forbids.

Two constitutional-ai models are trained through the one training loop (plain torch), one under the default
Constitution and one under the default plus "no automated approvals". The labels come from each
Constitution's own Rego, so the second model, with its runtime guard off, should stop approving requests
whose text describes automation, while the first still approves many of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (before the Rego engine, see acgs_workloads.constitution.engine)

from acgs_workloads.components import get
from acgs_workloads.components import language as lang
from acgs_workloads.constitution import default_constitution
from acgs_workloads.constitution.hashing import constitution_hash
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec, Principle, TrainRunConfig
from acgs_workloads.serving.model import ServedModel
from acgs_workloads.train import run

pytestmark = pytest.mark.integration

NO_AUTOMATION = """package acgs.no_automation

import rego.v1

violation contains msg if {
\tinput.decision in {"approve", "approve_with_safeguards"}
\tinput.request.automated
\tmsg := "automated request approved"
}
"""


def stricter(base: ConstitutionSnapshot) -> ConstitutionSnapshot:
    principles = [*base.principles, Principle(id="no-automation", description="No automated approvals.",
                                              severity="critical", rego=NO_AUTOMATION)]
    return ConstitutionSnapshot(name="no-automation", hash=constitution_hash(principles), principles=principles)


def train(root: Path, constitution: ConstitutionSnapshot) -> ServedModel:
    cfg = TrainRunConfig(
        run_id=f"relabel-{constitution.name}", component="constitutional-ai", constitution=constitution,
        artifact_root=str(root), use_ray=False,
        dataset={"generator": {"examples": 8000, "seed": 42}},
        training={"epochs": 3, "batch_size": 64, "learning_rate": 0.003},
    )
    event = run(cfg)
    return ServedModel("constitutional-ai").load(event.model.uri, event.model.sha256)


def approval_share(model: ServedModel, bodies: list[dict[str, object]]) -> float:
    answers = model.predict_batch(bodies)  # no guard: what the model itself learned
    return float(np.mean([a.served_class in (0, 1) for a in answers]))


def test_an_added_principle_changes_what_the_model_learns(tmp_path: Path) -> None:
    base = default_constitution()
    strict = stricter(base)
    component = get("constitutional-ai")
    # requests in wordings never trained on, automated, with no other fact that forbids approval
    held = component.generate(3000, 77, ModelSpec(), base, families=lang.HELD_OUT_FAMILIES)
    pick = np.flatnonzero(held["automated"] & held["explanation_provided"] & ~held["contains_pii"]
                          & ~held["protected_attribute_used"] & (held["risk"] <= 1) & (held["harm_level"] <= 1))
    assert len(pick) >= 20
    bodies_for = {c.hash: [{"scenario": "general", "user_request": str(held["text"][i]), "constitutional_hash": c.hash}
                           for i in pick] for c in (base, strict)}
    default_model = train(tmp_path / "default", base)
    strict_model = train(tmp_path / "strict", strict)
    before = approval_share(default_model, bodies_for[base.hash])
    after = approval_share(strict_model, bodies_for[strict.hash])
    print(f"automated requests approved: default constitution {before:.3f}, with no-automation {after:.3f} "
          f"({len(pick)} requests)")
    assert before >= 0.6, "the default constitution allows these requests"
    assert after <= 0.1, "the added principle forbids approving them"
