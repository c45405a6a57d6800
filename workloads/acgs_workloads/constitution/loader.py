"""Loading Constitution resources (YAML/JSON manifests or dicts) into a hashed snapshot."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from acgs_workloads.constitution.hashing import as_principles, constitution_hash
from acgs_workloads.contract import ConstitutionSnapshot

DEFAULT_RESOURCE = "default.yaml"


def snapshot_from_manifest(manifest: dict[str, Any]) -> ConstitutionSnapshot:
    """A snapshot of a ``Constitution`` manifest (or a bare ``{"principles": [...]}`` spec)."""
    if "spec" in manifest:
        kind = manifest.get("kind", "Constitution")
        if kind != "Constitution":
            raise ValueError(f"expected kind Constitution, got {kind}")
        name = str(manifest.get("metadata", {}).get("name", "default"))
        spec = manifest["spec"]
    else:
        name, spec = str(manifest.get("name", "default")), manifest
    principles = as_principles(spec.get("principles") or [])
    if not principles:
        raise ValueError("a constitution needs at least one principle")
    return ConstitutionSnapshot(
        name=name,
        hash=constitution_hash(principles),
        principles=principles,
        hash_aliases=list(spec.get("hashAliases") or spec.get("hash_aliases") or []),
    )


def load_constitution(path_or_yaml: str | Path) -> ConstitutionSnapshot:
    """Load a Constitution from a file path or from YAML/JSON text."""
    text = str(path_or_yaml)
    candidate = Path(text)
    if "\n" not in text and candidate.suffix in {".yaml", ".yml", ".json"}:
        text = candidate.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a Constitution must be a mapping")
    return snapshot_from_manifest(data)


def default_constitution_text() -> str:
    """The YAML of the default constitution shipped with the package (identical to manifests/constitution.yaml)."""
    return resources.files("acgs_workloads.constitution").joinpath(DEFAULT_RESOURCE).read_text(encoding="utf-8")


def default_constitution() -> ConstitutionSnapshot:
    """The default constitution shipped with the package."""
    return load_constitution(default_constitution_text())
