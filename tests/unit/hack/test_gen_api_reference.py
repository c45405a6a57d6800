"""docs/api-reference.md is what hack/gen_api_reference.py writes from the CRDs, and it misses nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from acgs_operator.api import crdgen
from acgs_operator.api.v1alpha1 import KINDS

ROOT = Path(__file__).resolve().parents[3]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_reference", ROOT / "hack" / "gen_api_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_committed_reference_matches_the_crds() -> None:
    text = (ROOT / "docs" / "api-reference.md").read_text()
    assert text == generator().render(), "run `python hack/gen_api_reference.py` and commit docs/api-reference.md"


def test_check_mode_reports_drift(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    gen = generator()
    stale = tmp_path / "api-reference.md"
    stale.write_text(gen.render().replace("| yes |", "| no |", 1))
    monkeypatch.setattr(gen, "OUTPUT", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "python hack/gen_api_reference.py" in capsys.readouterr().err


def _leaves(node: dict, path: str):  # type: ignore[no-untyped-def,type-arg]
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}"
        yield from _leaves(child, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict):
        yield from _leaves(items, f"{path}[]")


def _rules(node: object):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def test_every_field_and_every_cel_rule_is_documented() -> None:
    text = generator().render()
    for kind in KINDS:
        root = crdgen.crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert f"## {kind.kind}" in text
        for part in ("spec", "status"):
            for path in _leaves(root["properties"][part], part):
                assert f"| `{path}` |" in text, f"{kind.kind}: {path} missing"
        rules = list(_rules(root))
        assert rules or kind.kind == "Constitution"
        for rule in rules:
            assert rule["message"] in text and rule["rule"].replace("|", "\\|") in text
