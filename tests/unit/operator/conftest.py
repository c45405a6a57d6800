"""Handlers against the in-memory Ray client: kopf objects built by hand, events captured."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest

from acgs_operator import events
from acgs_operator.config import OperatorConfig
from acgs_operator.rayclient import FakeRayClient
from acgs_operator.rayclient.registry import RayClients

GOOD_REGO = 'package acgs.privacy\n\nviolation contains "pii" if input.decision.exposes_pii\n'


@dataclass
class Recorder:
    items: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.items]


@pytest.fixture
def recorded_events(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    def fake_event(body: Any, *, type: str, reason: str, message: str = "") -> None:
        recorder.items.append((type, reason, message))

    monkeypatch.setattr(events.kopf, "event", fake_event)
    return recorder


@pytest.fixture
def ray() -> FakeRayClient:
    return FakeRayClient()


@pytest.fixture
def memo(ray: FakeRayClient) -> kopf.Memo:
    memo = kopf.Memo()
    memo.config = OperatorConfig(ray_address=ray.dashboard_url, artifact_root="/tmp/artifacts")
    memo.rays = RayClients(ray.dashboard_url, factory=lambda _: ray)
    return memo


class FakeIndex(dict):  # type: ignore[type-arg]
    """kopf.Index is a mapping of keys to collections of values."""

    def add(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        self[key] = [value]


def valid_constitution_entry(hash_: str = "cdd01ef066bc6cf2") -> dict[str, Any]:
    return {
        "spec": {"principles": [{"id": "privacy", "severity": "critical", "rego": GOOD_REGO}]},
        "status": {
            "hash": hash_,
            "observedGeneration": 1,
            "conditions": [{"type": "Valid", "status": "True", "reason": "Compiled", "message": ""}],
        },
        "generation": 1,
    }


@pytest.fixture
def constitution_index() -> FakeIndex:
    index = FakeIndex()
    index.add(("ns", "default"), valid_constitution_entry())
    return index


class Resource:
    """A resource as kopf would hand it to a handler, with its status patches applied in between."""

    def __init__(self, kind: str, spec: dict[str, Any], name: str = "job", generation: int = 1) -> None:
        self.raw: dict[str, Any] = {
            "apiVersion": "acgs.io/v1alpha1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": "1234abcd-0000-0000-0000-000000000000",
                "generation": generation,
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": copy.deepcopy(spec),
            "status": {},
        }

    def kwargs(self) -> dict[str, Any]:
        body = kopf.Body(copy.deepcopy(self.raw))
        self.patch = kopf.Patch()
        return {
            "spec": body.spec,
            "meta": body.meta,
            "status": body.status,
            "body": body,
            "patch": self.patch,
            "namespace": "ns",
            "name": self.raw["metadata"]["name"],
            "uid": self.raw["metadata"]["uid"],
            "retry": 0,
            "logger": __import__("logging").getLogger("test"),
        }

    def apply_patch(self) -> None:
        for key, value in (self.patch.get("status") or {}).items():
            self.raw["status"][key] = value

    def change_spec(self, **changes: Any) -> None:
        self.raw["spec"].update(changes)
        self.raw["metadata"]["generation"] += 1

    @property
    def status(self) -> dict[str, Any]:
        return self.raw["status"]

    def condition(self, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status.get("conditions", []) if c["type"] == type_), None)


@pytest.fixture
def make_resource() -> type[Resource]:
    return Resource


@pytest.fixture
def fake_index() -> type[FakeIndex]:
    return FakeIndex


@pytest.fixture
def constitution_entry():  # type: ignore[no-untyped-def]
    return valid_constitution_entry


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies kopf's status patches: null deletes a key,
    an object is merged key by key, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class MergePatchedResource(Resource):
    """A Resource whose status patches are applied with JSON merge-patch semantics (nulls delete)."""

    def apply_patch(self) -> None:
        self.raw["status"] = merge_patch(self.raw["status"], self.patch.get("status") or {})


@pytest.fixture
def make_merge_patched_resource() -> type[MergePatchedResource]:
    return MergePatchedResource
