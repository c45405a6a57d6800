"""Every status a ModelDeployment builder produces is valid under the CRD's status schema.

The statuses are the ``.wire()`` of what :func:`build.decide` returns on every path (blocked for each
reason, deploying, ready, failed, withdrawn, outages), and what ends up in the object once its merge
patch is applied over the status before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from acgs_operator.api.v1alpha1 import ModelDeploymentStatus
from acgs_operator.modeldeployment import build as mds
from acgs_operator.rayclient import ServeApplication
from tests.unit.operator.conftest import merge_patch
from tests.unit.operator.modeldeployment.common import evidence, observation, spec

CRD = Path(__file__).resolve().parents[4] / "crds" / "acgs.io_modeldeployments.yaml"


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists its properties: the API
    server prunes a field its structural schema does not declare, so here an undeclared key is an error."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return dict(closed(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]))


def validate(schema: dict[str, Any], status: dict[str, Any]) -> None:
    jsonschema.validate(status, schema, cls=jsonschema.Draft4Validator, format_checker=jsonschema.FormatChecker())


def desired() -> dict[str, Any]:
    application = mds.decide(observation(), "2026-01-01T00:00:00Z").application
    assert application is not None
    return application


def served(state: str, message: str = "", replicas: int = 1) -> dict[str, ServeApplication]:
    app = desired()
    return {
        "ns-md": ServeApplication(
            "ns-md",
            state,
            message=message,
            route_prefix=app["route_prefix"],
            config=app,
            replicas_running=replicas if state == "RUNNING" else 0,
            replicas_target=replicas,
        ),
        mds.PLATFORM_APP: ServeApplication(mds.PLATFORM_APP, "RUNNING", config=mds.platform_application()),
    }


READY = served("RUNNING")
PATHS = {
    "blocked-constitution-not-ready": observation(constitution=None),
    "blocked-training-not-complete": observation(
        ev=evidence(
            complete=False,
            not_ready="TrainingJob ns/job is Running",
            uri=None,
            sha256=None,
            score=None,
            constitution_hash=None,
            component=None,
        )
    ),
    "blocked-constitution-changed": observation(ev=evidence(constitution_hash="1" * 16)),
    "blocked-compliance-below-threshold": observation(ev=evidence(score=0.5)),
    "blocked-artifact-digest-mismatch": observation(md=spec(model={"uri": "file:///a", "sha256": "e" * 64})),
    "blocked-no-artifact": observation(ev=evidence(uri=None)),
    "deploying-new": observation(),
    "deploying-changed": observation(md=spec(replicas=3), applications=READY),
    "deploying-autoscaled": observation(md=spec(autoscaling={"minReplicas": 2}), applications=served("DEPLOYING")),
    "ready": observation(applications=READY),
    "failed-deploy": observation(applications=served("DEPLOY_FAILED", "boom")),
    "failed-digest": observation(applications=served("UNHEALTHY", "artifact has sha256 1, expected 2")),
    "withdrawn": observation(ev=evidence(constitution_hash="1" * 16), applications=READY),
    "ray-unavailable": observation(ray_error="connection refused"),
    "secret-unavailable": observation(api_key=mds.ApiKey(error="Secret ns/key cannot be read: Not Found")),
}


@pytest.mark.parametrize("obs", list(PATHS.values()), ids=list(PATHS))
def test_every_decided_status_is_valid(schema: dict[str, Any], obs: mds.Observation) -> None:
    status = mds.decide(obs, "2026-01-01T00:00:00Z").status
    validate(schema, status.wire())
    assert ModelDeploymentStatus.model_validate(status.wire()) == ModelDeploymentStatus.model_validate(
        status.model_dump()
    ), "the wire form reads back as the same status"


@pytest.mark.parametrize("obs", list(PATHS.values()), ids=list(PATHS))
def test_every_status_patch_applied_over_a_ready_status_is_valid(schema: dict[str, Any], obs: mds.Observation) -> None:
    before = mds.decide(observation(applications=READY), "2026-01-01T00:00:00Z").status
    after = mds.decide(
        observation(
            md=obs.spec,
            status=before,
            constitution=obs.constitution,
            ev=obs.evidence,
            api_key=obs.api_key,
            applications=dict(obs.applications) if obs.applications is not None else None,
            ray_error=obs.ray_error,
            generation=2,
        ),
        "2026-01-01T00:01:00Z",
    )
    result = merge_patch(before.wire(), mds.status_patch(after.status))
    validate(schema, result)
    assert result["observedGeneration"] == 2
    if after.outage is None:
        assert result == after.status.wire(), "nothing of the previous status survives a decided status"


def test_the_schema_refuses_a_misspelled_or_mistyped_status(schema: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, {"phase": "Serving"})
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, {"replicas": {"ready": "one"}})
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, {"compliance": {"constitutionhash": "cdd01ef066bc6cf2"}})
