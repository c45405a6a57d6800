"""The CRDs in crds/ are exactly what the API models generate, and carry what kubectl users expect."""

from pathlib import Path

import pytest
import yaml

from acgs_operator.api import crdgen
from acgs_operator.api.v1alpha1 import KINDS, Kind

ROOT = Path(__file__).resolve().parents[4]


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drift(ROOT / "crds") == [], "run `acgs crds generate` and commit crds/"


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    victim = tmp_path / "acgs.io_trainingjobs.yaml"
    victim.write_text(victim.read_text().replace("minimum: 16", "minimum: 1"))
    assert crdgen.drift(tmp_path) == ["acgs.io_trainingjobs.yaml"]


def _version(kind: Kind) -> dict:
    return crdgen.crd_for(kind)["spec"]["versions"][0]


def _walk(node: object):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_kind_has_status_subresource_columns_and_short_names(kind: Kind) -> None:
    crd = crdgen.crd_for(kind)
    assert crd["spec"]["names"]["shortNames"]
    version = _version(kind)
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions", "phase"} <= set(status)
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Kind) -> None:
    """No JSON-Schema-only constructs that the API server refuses in a structural schema."""
    schema = _version(kind)["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node
        assert node.get("additionalProperties") is not False
        if "properties" in node:
            assert node["type"] == "object"


def test_defaults_and_cel_rules_are_generated() -> None:
    spec = _version(KINDS[1])["schema"]["openAPIV3Schema"]["properties"]["spec"]
    training = spec["properties"]["training"]
    assert training["default"]["epochs"] == 3 and training["default"]["scheduler"]["type"] == "cosine"
    assert training["properties"]["epochs"]["default"] == 3
    assert spec["properties"]["dataset"]["default"] == {"generator": {"examples": 4000, "seed": 42}}
    rules = [v["rule"] for node in _walk(spec) for v in node.get("x-kubernetes-validations", [])]
    assert "has(self.generator) != has(self.uri)" in rules
    assert any("fp16" in r for r in rules)
    lr = training["properties"]["learningRate"]
    assert lr["minimum"] == 0.0 and lr["exclusiveMinimum"] is True


def test_generated_yaml_round_trips() -> None:
    for name, text in crdgen.crd_files().items():
        assert text.startswith("# GENERATED")
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition", name


def test_constitution_hash_aliases_are_a_validated_set() -> None:
    """spec.hashAliases: unique (list type set), at most 16, each 16 lowercase hex chars, with a CEL message."""
    spec = _version(KINDS[0])["schema"]["openAPIV3Schema"]["properties"]["spec"]
    aliases = spec["properties"]["hashAliases"]
    assert aliases["type"] == "array" and aliases["x-kubernetes-list-type"] == "set" and aliases["maxItems"] == 16
    item = aliases["items"]
    assert item["pattern"] == "^[0-9a-f]{16}$" and item["minLength"] == item["maxLength"] == 16
    assert [v["rule"] for v in item["x-kubernetes-validations"]] == ["self.matches('^[0-9a-f]{16}$')"]
    assert "hashAliases" in item["x-kubernetes-validations"][0]["message"]
    assert "hashAliases" not in spec.get("required", [])
    status = _version(KINDS[0])["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["hashAliases"]["items"] == {"type": "string"}


def _md_spec_errors(spec: dict) -> list[str]:
    """Schema errors (bounds, types) of a ModelDeployment spec against the generated CRD, path first."""
    import jsonschema

    schema = _version(KINDS[2])["schema"]["openAPIV3Schema"]["properties"]["spec"]
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(f"spec.{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(spec))


MD_BASE = {"model": {"trainingJobRef": {"name": "cai"}}, "constitutionRef": {"name": "default"}}


@pytest.mark.parametrize(
    ("queue", "field", "message"),
    [
        ({"maxQueuedRequests": -1}, "spec.queue.maxQueuedRequests", "less than the minimum of 1"),
        ({"maxQueuedRequests": 0}, "spec.queue.maxQueuedRequests", "less than the minimum of 1"),
        ({"maxOngoingRequests": 0}, "spec.queue.maxOngoingRequests", "less than the minimum of 1"),
        ({"maxOngoingRequests": 4096}, "spec.queue.maxOngoingRequests", "greater than the maximum of 1024"),
        ({"retryAfterSeconds": 1.5}, "spec.queue.retryAfterSeconds", "is not of type 'integer'"),
    ],
    ids=["unbounded-queue", "zero-queue", "zero-ongoing", "huge-ongoing", "fractional-retry"],
)
def test_the_queue_schema_refuses_unbounded_or_bad_limits_naming_the_field(queue: dict, field: str,
                                                                           message: str) -> None:
    assert KINDS[2].kind == "ModelDeployment"
    assert not _md_spec_errors({**MD_BASE, "queue": {"maxOngoingRequests": 16}})
    errors = _md_spec_errors({**MD_BASE, "queue": queue})
    assert len(errors) == 1 and errors[0].startswith(f"{field}: ") and message in errors[0], errors


def test_the_queue_has_bounded_defaults_and_cross_field_rules() -> None:
    spec = _version(KINDS[2])["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["queue"]["default"] == {"maxOngoingRequests": 16, "maxQueuedRequests": 64,
                                                      "retryAfterSeconds": 1}
    rules = {v["rule"]: v for v in spec["x-kubernetes-validations"]}
    batch = next(v for r, v in rules.items() if "self.batching.maxBatchSize" in r)
    target = next(v for r, v in rules.items() if "targetOngoingRequests" in r)
    assert batch["fieldPath"] == target["fieldPath"] == ".queue.maxOngoingRequests"
