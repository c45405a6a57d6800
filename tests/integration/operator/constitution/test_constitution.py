"""kubectl apply a Constitution -> the operator compiles it in the real engine, hashes it, sets Valid."""

import hashlib
import json
from pathlib import Path

import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until

ROOT = Path(__file__).resolve().parents[4]

BROKEN = """apiVersion: acgs.io/v1alpha1
kind: Constitution
metadata: {name: broken}
spec:
  principles:
  - id: privacy
    severity: critical
    rego: |
      package acgs.privacy
      violation contains "pii" if input.decision.exposes_pii
  - id: syntax
    rego: |
      package acgs.syntax
      violation contains msg if {
"""


def independent_hash(principles: list[dict]) -> str:
    """DESIGN §2, computed here without the project's code: defaults filled, canonical JSON, sha256[:16]."""
    filled = [{"description": "", "severity": "major", **p} for p in principles]
    canonical = json.dumps(filled, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_sample_constitution_becomes_valid_with_the_right_hash(kubectl: Kubectl, acgs_operator, namespace: str) -> None:  # type: ignore[no-untyped-def]
    manifest = (ROOT / "manifests" / "constitution.yaml").read_text()
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest)
    name = yaml.safe_load(manifest)["metadata"]["name"]
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", f"constitution/{name}")
    obj = kubectl.get_json("constitution", name, "-n", namespace)
    assert obj["status"]["hash"] == independent_hash(yaml.safe_load(manifest)["spec"]["principles"])
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["phase"] == "Valid"

    def compiled_event() -> bool:
        events = kubectl.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
        return "Compiled" in {e["reason"] for e in events["items"]}

    wait_until(compiled_event, timeout=30, what="a Compiled event")  # events are posted asynchronously


def test_syntax_error_sets_valid_false_with_the_engine_message(kubectl: Kubectl, acgs_operator, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=BROKEN)
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid=False", "--timeout=60s", "constitution/broken")
    condition = next(
        c
        for c in kubectl.get_json("constitution", "broken", "-n", namespace)["status"]["conditions"]
        if c["type"] == "Valid"
    )
    assert condition["reason"] == "CompileFailed"
    assert condition["message"].startswith("principle syntax:")
    assert "privacy" not in condition["message"]


def test_a_spec_change_is_recompiled(kubectl: Kubectl, acgs_operator, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=BROKEN)
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid=False", "--timeout=60s", "constitution/broken")
    fixed = BROKEN.replace("violation contains msg if {\n", 'violation contains "x" if input.decision.bad\n')
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=fixed)
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/broken")
    obj = kubectl.get_json("constitution", "broken", "-n", namespace)
    assert obj["status"]["observedGeneration"] == 2
    assert obj["status"]["hash"] == independent_hash(yaml.safe_load(fixed)["spec"]["principles"])


def test_hash_aliases_are_listed_and_editing_them_keeps_the_hash(  # type: ignore[no-untyped-def]
    kubectl: Kubectl, acgs_operator, namespace: str
) -> None:
    manifest = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
    name = manifest["metadata"]["name"]
    assert manifest["spec"]["hashAliases"] == ["cdd01ef066bc6cf2"], "the documented hash is a declared alias"
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    kubectl.run("wait", "-n", namespace, "--for=jsonpath={.status.hashAliases[0]}=cdd01ef066bc6cf2",
                "--timeout=60s", f"constitution/{name}")
    first = kubectl.get_json("constitution", name, "-n", namespace)["status"]
    assert first["hash"] == independent_hash(manifest["spec"]["principles"]) != "cdd01ef066bc6cf2"

    manifest["spec"]["hashAliases"] = []  # removed: the merge patch must not keep the old list
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))

    def aliases_cleared() -> bool:
        status = kubectl.get_json("constitution", name, "-n", namespace)["status"]
        return status.get("observedGeneration") == 2 and status.get("hashAliases") == []

    wait_until(aliases_cleared, timeout=60, what="status.hashAliases emptied")
    assert kubectl.get_json("constitution", name, "-n", namespace)["status"]["hash"] == first["hash"]

    def alias_event() -> bool:
        events = kubectl.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
        return "HashAliasesChanged" in {e["reason"] for e in events["items"]}

    wait_until(alias_event, timeout=30, what="a HashAliasesChanged event")


def test_an_invalid_alias_is_rejected_at_apply_time_naming_the_field(kubectl: Kubectl, namespace: str) -> None:
    manifest = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
    for bad, says in ((["CDD01EF066BC6CF2"], "hashAliases"), (["cdd01ef066bc6cf2"] * 2, "Duplicate value")):
        manifest["spec"]["hashAliases"] = bad
        result = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest),
                             check=False)
        assert result.returncode != 0, f"{bad} was accepted"
        assert "spec.hashAliases[" in result.stderr and says in result.stderr, result.stderr
