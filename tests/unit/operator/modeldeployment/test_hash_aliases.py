"""A Constitution's hash aliases reach the served application (DESIGN §2/§5) without tripping the gate.

The aliases are part of the constitution snapshot the operator hands to the replicas (the Serve app's
``args.constitution.hashAliases``): an edited alias list changes the desired application, so the deployment is
re-applied. The gate compares the model's recorded hash with the Constitution's current hash, which aliases
do not change: an alias edit is never a ``ConstitutionChanged``.
"""

from __future__ import annotations

import pytest

from acgs_operator.constitution import build as constitutions
from acgs_operator.modeldeployment import build as mds
from acgs_operator.rayclient import ServeApplication
from acgs_workloads.contract import ConstitutionSnapshot, ModelAppArgs
from tests.unit.operator.modeldeployment.common import CONSTITUTION, observation

pytestmark = pytest.mark.unit

ALIAS, OTHER_ALIAS = "0011223344556677", "8899aabbccddeeff"


def aliased(*aliases: str) -> ConstitutionSnapshot:
    return CONSTITUTION.model_copy(update={"hash_aliases": list(aliases)})


def deployed(constitution: ConstitutionSnapshot) -> dict[str, ServeApplication]:
    app = mds.decide(observation(constitution=constitution), "t").application
    assert app is not None
    running = ServeApplication(app["name"], "RUNNING", route_prefix=app["route_prefix"], config=app,
                               replicas_running=1)
    return {"ns-md": running, mds.PLATFORM_APP: ServeApplication(mds.PLATFORM_APP, "RUNNING",
                                                                  config=mds.platform_application())}


def test_the_aliases_travel_in_the_application_args() -> None:
    app = mds.decide(observation(constitution=aliased(ALIAS)), "t").application
    assert app is not None
    assert app["args"]["constitution"]["hashAliases"] == [ALIAS]
    assert ModelAppArgs.model_validate(app["args"]).constitution.hash_aliases == [ALIAS], "the replica reads them"


@pytest.mark.parametrize(
    ("before", "after"),
    [((), (ALIAS,)), ((ALIAS,), (ALIAS, OTHER_ALIAS)), ((ALIAS, OTHER_ALIAS), ())],
    ids=["added", "another", "removed"],
)
def test_an_alias_change_reapplies_the_application_and_is_not_a_constitution_change(
    before: tuple[str, ...], after: tuple[str, ...]
) -> None:
    apps = deployed(aliased(*before))
    decision = mds.decide(observation(constitution=aliased(*after), applications=apps), "t2")
    assert decision.reconfigure, "the replicas must learn the new aliases"
    assert decision.application is not None
    assert decision.application["args"]["constitution"]["hashAliases"] == list(after)
    assert decision.status.phase == "Deploying" and decision.status.compliance is not None
    assert decision.status.compliance.reason != "ConstitutionChanged"


def test_unchanged_aliases_leave_the_application_alone() -> None:
    apps = deployed(aliased(ALIAS))
    assert not mds.decide(observation(constitution=aliased(ALIAS), applications=apps), "t2").reconfigure


def test_a_resolved_constitution_with_aliases_passes_the_gate() -> None:
    """End to end through the pure parts: index entry -> snapshot (with aliases) -> gate passes."""
    entry = {
        "spec": {"principles": [p.wire() for p in CONSTITUTION.principles], "hashAliases": [ALIAS]},
        "status": {"hash": CONSTITUTION.hash, "observedGeneration": 2, "hashAliases": [ALIAS],
                   "conditions": [{"type": "Valid", "status": "True", "reason": "Compiled"}]},
        "generation": 2,
    }
    snapshot, why = constitutions.resolve(entry, "default")
    assert why == "" and snapshot == aliased(ALIAS)
    decision = mds.decide(observation(constitution=snapshot), "t")
    assert decision.application is not None and decision.status.phase == "Deploying"
