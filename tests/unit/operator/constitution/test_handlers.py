"""The Constitution handler: observe (compile) -> decide -> apply, with events captured."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from acgs_operator.constitution import handlers as h

GOOD = 'package acgs.privacy\n\nviolation contains "pii exposed" if input.decision.exposes_pii\n'
BROKEN = "package acgs.broken\n\nviolation contains msg if {\n"


def principles(*modules: tuple[str, str]) -> dict[str, Any]:
    return {"principles": [{"id": pid, "severity": "critical", "rego": rego} for pid, rego in modules]}


@pytest.fixture
def make_resource(make_merge_patched_resource):  # type: ignore[no-untyped-def]
    """Resources whose status patches are merged as the API server merges them."""
    return make_merge_patched_resource


def reconcile(resource: Any) -> None:
    try:
        h.reconcile_constitution(**resource.kwargs())
    finally:
        resource.apply_patch()


def test_valid_then_changed_then_broken(make_resource, recorded_events) -> None:  # type: ignore[no-untyped-def]
    cst = make_resource("Constitution", principles(("privacy", GOOD)), name="default")
    reconcile(cst)
    first = cst.status["hash"]
    assert cst.status["phase"] == "Valid" and cst.status["principles"] == 1 and cst.status["observedGeneration"] == 1
    assert cst.condition("Valid")["status"] == "True" and recorded_events.reasons == ["Compiled"]
    assert recorded_events.items[0][2].endswith(f"hash {first}")

    cst.change_spec(**principles(("privacy", GOOD), ("safety", GOOD.replace("privacy", "safety"))))
    reconcile(cst)
    assert cst.status["hash"] != first and cst.status["principles"] == 2
    assert recorded_events.reasons[1:] == ["Compiled", "HashChanged"]
    assert recorded_events.items[-1][2] == f"constitution hash {first} -> {cst.status['hash']}"

    valid_since = cst.condition("Valid")["lastTransitionTime"]
    cst.change_spec(**principles(("broken", BROKEN)))
    reconcile(cst)
    assert cst.status["phase"] == "Invalid" and cst.condition("Valid")["reason"] == "CompileFailed"
    assert cst.condition("Valid")["observedGeneration"] == 3 and cst.condition("Valid")["status"] == "False"
    assert valid_since is not None and recorded_events.reasons[-2:] == ["CompileFailed", "HashChanged"]


def test_malformed_spec_is_a_permanent_error(make_resource, recorded_events) -> None:  # type: ignore[no-untyped-def]
    cst = make_resource("Constitution", {"principles": [{"id": "Bad Id", "rego": GOOD}]}, name="default")
    with pytest.raises(kopf.PermanentError, match="invalid Constitution spec"):
        reconcile(cst)
    assert cst.status["phase"] == "Invalid" and cst.condition("Valid")["reason"] == "InvalidSpec"
    assert "hash" not in cst.status and recorded_events.reasons == ["InvalidSpec"]
