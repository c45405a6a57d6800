"""Write docs/api-reference.md from the generated CRDs: every field of every kind, and the CEL rules.

    python hack/gen_api_reference.py           # rewrite docs/api-reference.md
    python hack/gen_api_reference.py --check   # exit 1 when the committed file differs (what the test runs)

The source is ``acgs_operator.api.crdgen`` (the same generator that writes crds/ and the chart's copy),
so the reference says exactly what the API server enforces.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acgs_operator.api import crdgen
from acgs_operator.api.v1alpha1 import GROUP, KINDS, VERSION

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api-reference.md"
COMMAND = "python hack/gen_api_reference.py"


@dataclass(frozen=True)
class Field:
    path: str
    type: str
    required: bool
    default: str
    constraints: str
    description: str


@dataclass(frozen=True)
class Rule:
    path: str
    rule: str
    message: str
    field_path: str


def type_of(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"[]{type_of(node.get('items', {}))}"
    if kind == "object" and "properties" not in node and "additionalProperties" in node:
        return f"map[string]{type_of(node['additionalProperties'])}"
    if "format" in node:
        return f"{kind} ({node['format']})"
    return kind


def _bound(node: dict[str, Any], key: str, exclusive: str, strict: str, loose: str) -> str | None:
    if key not in node:
        return None
    return f"{strict if node.get(exclusive) is True else loose} {node[key]}"


def constraints_of(node: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    for bound in (
        _bound(node, "minimum", "exclusiveMinimum", ">", ">="),
        _bound(node, "maximum", "exclusiveMaximum", "<", "<="),
    ):
        if bound:
            parts.append(bound)
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in node:
            value = node[key]
            parts.append(f"{label} `{value}`" if key == "pattern" else f"{label} {value}")
    if node.get("x-kubernetes-list-type"):
        keys = node.get("x-kubernetes-list-map-keys")
        parts.append(f"list type {node['x-kubernetes-list-type']}" + (f" (keys {', '.join(keys)})" if keys else ""))
    items = node.get("items")
    if isinstance(items, dict) and "properties" not in items:  # a list of scalars: the items' own constraints
        each = constraints_of(items)
        if each:
            parts.append(f"each item: {each}")
    return "; ".join(parts)


def walk(node: dict[str, Any], path: str, required: bool) -> Iterator[Field | Rule]:
    """Every field below ``node`` (depth first, in schema order) and the CEL rules attached to each."""
    if path:
        default = json.dumps(node["default"], separators=(", ", ": ")) if "default" in node else ""
        yield Field(path, type_of(node), required, default, constraints_of(node), node.get("description", ""))
    for rule in node.get("x-kubernetes-validations", []):
        yield Rule(path or "(root)", rule["rule"], rule.get("message", ""), rule.get("fieldPath", ""))
    own_required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name, name in own_required)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield from walk_items(items, f"{path}[]")
    elif isinstance(items, dict):  # a list of scalars: rules on each item
        for rule in items.get("x-kubernetes-validations", []):
            yield Rule(f"{path}[]", rule["rule"], rule.get("message", ""), rule.get("fieldPath", ""))


def walk_items(items: dict[str, Any], path: str) -> Iterator[Field | Rule]:
    for rule in items.get("x-kubernetes-validations", []):
        yield Rule(path, rule["rule"], rule.get("message", ""), rule.get("fieldPath", ""))
    own_required = set(items.get("required", []))
    for name, child in items.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}", name in own_required)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{cell(text)}`" if text else ""


def kind_section(kind: Any) -> list[str]:
    crd = crdgen.crd_for(kind)
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    lines = [
        f"## {kind.kind}",
        "",
        cell(root.get("description", "")),
        "",
        f"`{GROUP}/{VERSION}`, namespaced, plural `{names['plural']}`, short names "
        + ", ".join(f"`{n}`" for n in names.get("shortNames", []))
        + ", category `acgs`.",
        "",
    ]
    columns = version.get("additionalPrinterColumns", [])
    if columns:
        lines += ["Printer columns: " + ", ".join(f"{c['name']} (`{c['jsonPath']}`)" for c in columns) + ".", ""]
    for part in ("spec", "status"):
        schema = root["properties"][part]
        entries = list(walk(schema, part, part in root.get("required", [])))
        fields = [e for e in entries if isinstance(e, Field)]
        rules = [e for e in entries if isinstance(e, Rule)]
        lines += [
            f"### {kind.kind} {part}",
            "",
            "| field | type | required | default | constraints | description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in fields:
            lines.append(
                f"| `{f.path}` | {cell(f.type)} | {'yes' if f.required else ''} | {code(f.default)} "
                f"| {cell(f.constraints)} | {cell(f.description)} |"
            )
        lines.append("")
        if rules:
            lines += [
                f"Validation rules (CEL, checked by the API server) on the {kind.kind} {part}:",
                "",
                "| on | rule | message |",
                "| --- | --- | --- |",
            ]
            for r in rules:
                where = f"`{r.path}`" + (f" (reported at `{r.field_path}`)" if r.field_path else "")
                lines.append(f"| {where} | {code(r.rule)} | {cell(r.message)} |")
            lines.append("")
    return lines


def render() -> str:
    lines = [
        "<!-- GENERATED by `python hack/gen_api_reference.py` from the CRDs (acgs_operator/api/crdgen.py). "
        "Do not edit. -->",
        "",
        f"# ACGS API reference (`{GROUP}/{VERSION}`)",
        "",
        "Every field of the three kinds as the API server sees it: type, default, constraints and the CEL "
        "rules with their messages. The same text is in the schema: `kubectl explain <kind>.spec --recursive`.",
        "",
        *[f"- [{k.kind}](#{k.kind.lower()})" for k in KINDS],
        "",
    ]
    for kind in KINDS:
        lines += kind_section(kind)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/api-reference.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date; run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} matches the CRDs")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
