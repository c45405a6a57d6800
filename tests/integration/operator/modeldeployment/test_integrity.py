"""Signed models, lineage and re-evaluation on real parts: a key in a Secret, a real Ray job, real Serve.

Train with a key of this test's own -> signed, lineage recomputed link by link from the artifact root ->
served under Required verification -> the Constitution changes -> re-evaluated on the same held-out data
without training, served again under the new hash -> a foreign key blocks, a flipped byte blocks.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from acgs_operator.devenv import keys
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until
from acgs_workloads import signing
from acgs_workloads.contract import SIGNATURE_FILE, ArtifactMetadata, TrainRunConfig
from acgs_workloads.storage import read_evaluation

ROOT = Path(__file__).resolve().parents[4]
TRAINING = {
    "component": "constitutional-ai",
    "constitutionRef": {"name": "default"},
    "dataset": {"generator": {"examples": 1500, "seed": 5}},
    "training": {"epochs": 3},
    "evaluation": {"gates": {"minCompliance": 0.5}},
    "signing": {"keySecretRef": {"name": "model-key", "key": "private.pem"}},
}


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def get(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return kubectl.get_json(kind, name, "-n", namespace)


def wait_reason(kubectl: Kubectl, name: str, namespace: str, reason: str, timeout: float = 120) -> dict[str, Any]:
    def reached() -> bool:
        compliance = get(kubectl, "modeldeployment", name, namespace).get("status", {}).get("compliance") or {}
        return compliance.get("reason") == reason

    wait_until(reached, timeout=timeout, interval=1, what=f"modeldeployment/{name} reason {reason}")
    return get(kubectl, "modeldeployment", name, namespace)


def test_signed_lineage_reevaluation(kubectl: Kubectl, acgs_operator, namespace: str) -> None:  # type: ignore[no-untyped-def]
    private, public = signing.generate_key_pair()
    kubectl.apply(keys.secret_manifest(private, namespace).replace(keys.SIGNING_SECRET, "model-key"), server_side=False)
    kubectl.apply(keys.verification_manifest(public, namespace), server_side=False)
    _, foreign = signing.generate_key_pair()
    kubectl.apply(keys.verification_manifest(foreign, namespace).replace(
        '"acgs-verification-keys"', '"foreign-keys"'), server_side=False)

    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    kubectl.apply(manifest("TrainingJob", "cai", TRAINING), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/cai", timeout=450)
    job = get(kubectl, "trainingjob", "cai", namespace)
    assert condition(job, "Signed")["status"] == "True", condition(job, "Signed")
    lineage = job["status"]["lineage"]

    # every link, recomputed from the artifact root
    weights = Path(job["status"]["model"]["uri"])
    directory = weights.parent
    raw = (directory / "metadata.json").read_bytes()
    metadata = ArtifactMetadata.parse(raw, "metadata.json")
    weights_sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert lineage["modelSha256"] == weights_sha256 == job["status"]["model"]["sha256"]
    assert lineage["metadataSha256"] == hashlib.sha256(raw).hexdigest()
    assert lineage["signatureSha256"] == hashlib.sha256((directory / SIGNATURE_FILE).read_bytes()).hexdigest()
    assert lineage["signedBy"] == signing.fingerprint(public)
    assert lineage["constitutionHash"] == get(kubectl, "constitution", "default", namespace)["status"]["hash"]
    assert signing.verify_model(str(directory), [public]).sha256 == lineage["signatureSha256"]
    from acgs_workloads.components.base import dataset_digest
    from acgs_workloads.components.task import run_split

    train, test = run_split(TrainRunConfig.model_validate(metadata.config))
    assert lineage["datasetDigest"] == dataset_digest({**train, **{f"test:{k}": v for k, v in test.items()}})

    # served under Required verification; the status and /models carry the same chain
    spec = {
        "model": {"trainingJobRef": {"name": "cai"}},
        "constitutionRef": {"name": "default"},
        "compliance": {"minScore": 0.5},
        "verification": {"policy": "Required"},
    }
    kubectl.apply(manifest("ModelDeployment", "cai", spec), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "--timeout=240s", "modeldeployment/cai", timeout=260)
    md = get(kubectl, "modeldeployment", "cai", namespace)
    assert md["status"]["model"]["lineage"] == lineage
    url = md["status"]["url"]
    base = url.rsplit("/", 1)[0]
    listed: dict[str, Any] = {}

    def in_models() -> bool:  # /models answers from state refreshed every 0.5 s
        models = {m["application"]: m for m in httpx.get(f"{base}/models", timeout=30).json()["models"]}
        listed.update(models.get(f"{namespace}-cai") or {})
        return "model" in listed

    wait_until(in_models, timeout=10, interval=0.5, what="GET /models listing the deployment's model")
    served = listed["model"]
    assert served["lineage"] == lineage, served

    # a foreign key blocks
    foreign_spec = {**spec, "routePrefix": "/foreign", "verification": {"publicKeysRef": {"name": "foreign-keys"}}}
    kubectl.apply(manifest("ModelDeployment", "foreign", foreign_spec), namespace=namespace, server_side=False)
    blocked = wait_reason(kubectl, "foreign", namespace, "SignatureInvalid", timeout=60)
    assert "Key mismatch" in condition(blocked, "CompliancePassed")["message"]
    kubectl.run("delete", "modeldeployment", "foreign", "-n", namespace, "--timeout=60s")

    # the Constitution changes: re-evaluated on the same held-out data, no training, served again
    changed = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
    changed["spec"]["principles"][0]["description"] += " (amended)"
    started = time.monotonic()
    kubectl.apply(yaml.safe_dump(changed), namespace=namespace, server_side=False)
    new_hash = ""

    def reevaluated() -> bool:
        nonlocal new_hash
        new_hash = get(kubectl, "constitution", "default", namespace)["status"]["hash"]
        status = get(kubectl, "modeldeployment", "cai", namespace).get("status", {})
        return (new_hash != lineage["constitutionHash"] and status.get("phase") == "Ready"
                and (status.get("compliance") or {}).get("constitutionHash") == new_hash)

    wait_until(reevaluated, timeout=300, interval=1, what="the deployment Ready under the new hash")
    seconds = time.monotonic() - started
    md = get(kubectl, "modeldeployment", "cai", namespace)
    run = md["status"]["reevaluation"]
    assert run["phase"] == "Complete" and run["constitutionHash"] == new_hash, run
    record = read_evaluation(str(weights), new_hash)
    assert record is not None and record.model_sha256 == lineage["modelSha256"]
    assert md["status"]["compliance"]["score"] == record.compliance.score
    assert get(kubectl, "trainingjob", "cai", namespace)["metadata"]["generation"] == 1, "no retraining"
    signing.verify_model(str(directory), [public])  # the record is covered by the new signature
    train_seconds = metadata.extra["trainWallSeconds"]
    print(f"\nre-evaluation: record {record.seconds:.1f} s, change -> Ready {seconds:.1f} s; "
          f"training {train_seconds:.1f} s")
    body = {"scenario": "general", "user_request": "summarise my account history", "constitutional_hash": new_hash}
    wait_until(lambda: httpx.post(f"{url}/predict", json=body, timeout=10).status_code == 200, timeout=60,
               what="the route to answer under the new hash")

    # a flipped byte in the signed metadata: the gate blocks with SignatureInvalid
    original = (directory / "metadata.json").read_bytes()
    (directory / "metadata.json").write_bytes(original.replace(b'"component"', b'"Component"', 1))
    try:
        blocked = wait_reason(kubectl, "cai", namespace, "SignatureInvalid", timeout=60)
        assert "metadata.json" in condition(blocked, "CompliancePassed")["message"]
        assert blocked["status"]["phase"] == "Blocked"
    finally:
        (directory / "metadata.json").write_bytes(original)
    kubectl.run("delete", "modeldeployment,trainingjob", "--all", "-n", namespace, "--timeout=90s")


def test_retrain_on_constitution_change(kubectl: Kubectl, acgs_operator, namespace: str) -> None:  # type: ignore[no-untyped-def]
    """onConstitutionChange retrain: a new TrainingJob generation under the new rules, then served again."""
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    training = {k: v for k, v in TRAINING.items() if k != "signing"}  # the operator's (development) key signs
    training["dataset"] = {"generator": {"examples": 1200, "seed": 3}}
    kubectl.apply(manifest("TrainingJob", "cai", training), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/cai", timeout=450)
    first = get(kubectl, "trainingjob", "cai", namespace)
    spec = {"model": {"trainingJobRef": {"name": "cai"}}, "constitutionRef": {"name": "default"},
            "compliance": {"minScore": 0.0}, "onConstitutionChange": "retrain"}  # the flow, not the model's quality
    kubectl.apply(manifest("ModelDeployment", "cai", spec), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "--timeout=240s", "modeldeployment/cai", timeout=260)
    url = get(kubectl, "modeldeployment", "cai", namespace)["status"]["url"]

    changed = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
    changed["spec"]["principles"][0]["description"] += " (amended for retraining)"
    kubectl.apply(yaml.safe_dump(changed), namespace=namespace, server_side=False)
    refusals: list[httpx.Response] = []

    def refused_with_reason() -> bool:  # while the new generation trains, the route says why it is not served
        answer = httpx.post(f"{url}/predict", json={"user_request": "summarise my account history",
                                                    "constitutional_hash": "0" * 16}, timeout=10)
        refusals.append(answer)
        return answer.status_code == 503 and "retry-after" in answer.headers

    wait_until(refused_with_reason, timeout=120, interval=1, what="503 with Retry-After while retraining")
    assert refusals[-1].json()["reason"] in ("Retraining", "TrainingNotComplete"), refusals[-1].json()
    assert all(r.status_code != 200 for r in refusals), "never answered between the change and the verdict"
    new_hash = ""

    def served_again() -> bool:
        nonlocal new_hash
        new_hash = get(kubectl, "constitution", "default", namespace)["status"]["hash"]
        status = get(kubectl, "modeldeployment", "cai", namespace).get("status", {})
        return (status.get("phase") == "Ready"
                and (status.get("compliance") or {}).get("constitutionHash") == new_hash != first["status"][
                    "compliance"]["constitutionHash"])

    wait_until(served_again, timeout=480, interval=2, what="Ready under the new hash after retraining")
    job = get(kubectl, "trainingjob", "cai", namespace)
    assert job["metadata"]["generation"] == 2 and job["spec"]["retrainedFor"] == new_hash
    assert job["status"]["compliance"]["constitutionHash"] == new_hash
    md = get(kubectl, "modeldeployment", "cai", namespace)
    assert md["status"]["model"]["sha256"] == job["status"]["model"]["sha256"]
    assert md["status"]["model"]["uri"] == job["status"]["model"]["uri"] != first["status"]["model"]["uri"]
    assert "reevaluation" not in md["status"], "retrain runs no evaluation-only job"
    kubectl.run("delete", "modeldeployment,trainingjob", "--all", "-n", namespace, "--timeout=90s")
