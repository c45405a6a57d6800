"""spec.canary on real parts: a trained model serves, a second signed model of the same component takes its
share of the requests (counted from the digest each answer names), an unsigned canary is blocked while the
primary keeps serving, and promoting the canary rolls the deployment over to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from acgs_operator.devenv import keys
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until
from acgs_workloads import signing
from acgs_workloads.artifacts import load_artifact, read_metadata, save_artifact

from .test_integrity import ROOT, get, manifest

TRAINING = {
    "component": "constitutional-ai",
    "constitutionRef": {"name": "default"},
    "dataset": {"generator": {"examples": 2000, "seed": 23}},  # 1,200: compliance 0.45, all-approve
    "training": {"epochs": 2},
    "evaluation": {"gates": {"minCompliance": 0.5}},
}
SHARE, REQUESTS = 20, 1000


def nudged_copy(weights_uri: str, root: Path, name: str, sign: bool) -> tuple[str, str]:
    """The trained model with one bias nudged (another digest, judged alike), signed with the dev key if
    ``sign``; returns (model directory, weights sha256)."""
    directory = str(Path(weights_uri).parent)
    state = {k: v.clone() for k, v in load_artifact(directory).state_dict.items()}
    bias = next(k for k in state if k.endswith("bias"))
    state[bias] = state[bias] + 1e-3
    meta = read_metadata(directory)
    artifact = save_artifact(str(root), name, state, component=meta.component, config=meta.config,
                             constitution_hash=meta.constitution_hash, dataset_digest=meta.dataset_digest,
                             metrics=meta.metrics, compliance=meta.compliance)
    model_dir = str(root / "models" / name)
    if sign:
        signing.sign_model(model_dir, keys.key_pair()[0])
    return model_dir, artifact.sha256


def canary_of(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return get(kubectl, "modeldeployment", "cai", namespace).get("status", {}).get("canary") or {}


def patch_spec(kubectl: Kubectl, namespace: str, spec: dict[str, Any]) -> None:
    kubectl.run("patch", "modeldeployment", "cai", "-n", namespace, "--type", "merge", "-p",
                json.dumps({"spec": spec}))


def test_canary_share_block_and_promotion(kubectl: Kubectl, acgs_operator, namespace: str,  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    keys.install_verification_keys(kubectl, namespace)  # replicas verify both models with the dev key
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    kubectl.apply(manifest("TrainingJob", "cai", TRAINING), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/cai", timeout=450)
    job = get(kubectl, "trainingjob", "cai", namespace)
    primary_sha = job["status"]["model"]["sha256"]
    canary_dir, canary_sha = nudged_copy(job["status"]["model"]["uri"], tmp_path, "canary", sign=True)

    spec = {
        "model": {"trainingJobRef": {"name": "cai"}},
        "canary": {"model": {"uri": canary_dir, "sha256": canary_sha}, "trafficPercent": SHARE},
        "constitutionRef": {"name": "default"},
        "compliance": {"minScore": 0.5},
        "replicas": 1,
        "resources": {"cpus": 0.5},
    }
    kubectl.apply(manifest("ModelDeployment", "cai", spec), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "--timeout=240s", "modeldeployment/cai", timeout=260)
    wait_until(lambda: canary_of(kubectl, namespace).get("phase") == "Serving", timeout=60, interval=1,
               what="status.canary Serving")
    status = get(kubectl, "modeldeployment", "cai", namespace)["status"]
    assert status["canary"]["trafficPercent"] == SHARE and status["canary"]["model"]["sha256"] == canary_sha
    assert status["canary"]["model"]["lineage"]["signedBy"] == signing.fingerprint(keys.key_pair()[1])
    url = status["url"]
    constitution_hash = get(kubectl, "constitution", "default", namespace)["status"]["hash"]
    body = {"scenario": "general", "user_request": "summarise my account history",
            "constitutional_hash": constitution_hash}

    with httpx.Client(timeout=30) as http:
        answers = [http.post(f"{url}/predict", json=body) for _ in range(REQUESTS)]
        assert {a.status_code for a in answers} == {200}
        digests = [a.json()["model_sha256"] for a in answers]
        share = 100 * digests.count(canary_sha) / REQUESTS
        print(f"\ncanary at {SHARE}%: {digests.count(canary_sha)} of {REQUESTS} answers from the canary "
              f"({share:.1f}%), {digests.count(primary_sha)} from the primary")
        assert abs(share - SHARE) <= 3 and digests.count(canary_sha) + digests.count(primary_sha) == REQUESTS
        base = url.rsplit("/", 1)[0]
        metrics = http.get(f"{base}/metrics").text
        assert f'acgs_serve_predictions_total{{app="{namespace}-cai",model="canary"}}' in metrics

        # an unsigned canary is blocked; the primary answers everything and the deployment stays Ready
        unsigned_dir, unsigned_sha = nudged_copy(job["status"]["model"]["uri"], tmp_path, "unsigned", sign=False)
        patch_spec(kubectl, namespace, {"canary": {"model": {"uri": unsigned_dir, "sha256": unsigned_sha}}})
        seen: dict[str, Any] = {}

        def blocked() -> bool:  # one read: a timer that observed the old spec may still write once after the patch
            seen.update(canary_of(kubectl, namespace))
            return seen.get("phase") == "Blocked" and seen["compliance"]["reason"] == "SignatureInvalid"

        wait_until(blocked, timeout=60, interval=1, what="status.canary Blocked (SignatureInvalid)")
        assert seen["trafficPercent"] == 0

        def primary_only() -> bool:
            ready = get(kubectl, "modeldeployment", "cai", namespace)["status"]["phase"] == "Ready"
            return ready and {http.post(f"{url}/predict", json=body).json()["model_sha256"]
                              for _ in range(20)} == {primary_sha}

        wait_until(primary_only, timeout=120, interval=1, what="every answer from the primary")

        # promote the first canary: spec.model names it, spec.canary goes; a rollout to its digest
        patch_spec(kubectl, namespace, {"model": {"trainingJobRef": None, "uri": canary_dir, "sha256": canary_sha},
                                        "canary": None})

        def promoted() -> bool:
            status = get(kubectl, "modeldeployment", "cai", namespace)["status"]
            return (status.get("phase") == "Ready" and (status.get("rollout") or {}).get("phase") == "Complete"
                    and status["model"]["sha256"] == canary_sha and "canary" not in status)

        wait_until(promoted, timeout=180, interval=1, what="the canary promoted (rollout Complete, no status.canary)")
        assert {http.post(f"{url}/predict", json=body).json()["model_sha256"] for _ in range(20)} == {canary_sha}
