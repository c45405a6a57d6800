"""In-memory indexes of the resources other handlers look up (no API round trips in reconcilers)."""

from __future__ import annotations

import copy
from typing import Any

import kopf

from acgs_operator.api.v1alpha1 import GROUP, VERSION


def _entry(spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta) -> dict[str, Any]:
    return {
        "spec": copy.deepcopy(dict(spec)),
        "status": copy.deepcopy(dict(status)),
        "generation": meta.get("generation"),
        "uid": meta.get("uid"),
    }


@kopf.index(GROUP, VERSION, "constitutions")
def constitutions_by_name(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): _entry(spec, status, meta)}


@kopf.index(GROUP, VERSION, "trainingjobs")
def trainingjobs_by_name(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): _entry(spec, status, meta)}


def first(index: kopf.Index[Any, Any] | None, key: tuple[str, str]) -> dict[str, Any] | None:
    """The one entry under ``key`` (names are unique per namespace), or None."""
    if index is None:
        raise RuntimeError("kopf did not pass the index: is acgs_operator.indexes imported?")
    for entry in index.get(key, []):
        return dict(entry)
    return None
