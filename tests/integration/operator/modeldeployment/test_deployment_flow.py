"""The issue's flow on real parts: train -> gate -> serve -> constitution change withdraws the route -> delete."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import wait_until

ROOT = Path(__file__).resolve().parents[4]


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})


TRAINING = {
    "component": "constitutional-ai",
    "constitutionRef": {"name": "default"},
    "dataset": {"generator": {"examples": 1200, "seed": 11}},
    "training": {"epochs": 3},
    "evaluation": {"gates": {"minCompliance": 0.5}},
}


def serve_apps(dashboard: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{dashboard}/api/serve/applications/", timeout=10) as resp:
        return json.load(resp).get("applications") or {}


def ray_jobs(dashboard: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{dashboard}/api/jobs/", timeout=10) as resp:
        return list(json.load(resp))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_train_gate_serve_withdraw_delete(kubectl: Kubectl, acgs_operator, ray_head, namespace: str) -> None:  # type: ignore[no-untyped-def]
    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    kubectl.apply(manifest("TrainingJob", "cai", TRAINING), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Complete", "--timeout=420s", "trainingjob/cai", timeout=450)
    job = kubectl.get_json("trainingjob", "cai", "-n", namespace)
    score = job["status"]["compliance"]["score"]

    # a gate failure: minScore above the achieved score -> Blocked with the reason, nothing served
    too_strict = {
        "model": {"trainingJobRef": {"name": "cai"}},
        "constitutionRef": {"name": "default"},
        "routePrefix": "/strict",
        "compliance": {"minScore": min(1.0, score + 0.001)},
    }
    if score < 1.0:
        kubectl.apply(manifest("ModelDeployment", "strict", too_strict), namespace=namespace, server_side=False)
        kubectl.run(
            "wait", "-n", namespace, "--for=jsonpath={.status.phase}=Blocked", "--timeout=60s", "modeldeployment/strict"
        )
        strict = kubectl.get_json("modeldeployment", "strict", "-n", namespace)
        assert condition(strict, "CompliancePassed")["reason"] == "ComplianceBelowThreshold"
        kubectl.run("delete", "modeldeployment", "strict", "-n", namespace, "--timeout=60s")

    spec = {
        "model": {"trainingJobRef": {"name": "cai"}},
        "constitutionRef": {"name": "default"},
        "compliance": {"minScore": max(0.0, score - 0.01)},
        "onConstitutionChange": "block",  # reevaluate (the default) is tested in test_integrity.py
    }
    kubectl.apply(manifest("ModelDeployment", "cai", spec), namespace=namespace, server_side=False)
    kubectl.run("wait", "-n", namespace, "--for=condition=Ready", "--timeout=240s", "modeldeployment/cai", timeout=260)
    md = kubectl.get_json("modeldeployment", "cai", "-n", namespace)
    constitution_hash = kubectl.get_json("constitution", "default", "-n", namespace)["status"]["hash"]
    url = md["status"]["url"]
    assert url.endswith("/constitutional-ai") and md["status"]["model"]["sha256"] == job["status"]["model"]["sha256"]
    assert md["status"]["compliance"]["constitutionHash"] == constitution_hash

    body = {
        "scenario": "general",
        "user_request": "summarise my account history",
        "constitutional_hash": constitution_hash,
    }
    answer = httpx.post(f"{url}/predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["constitutional_hash"] == constitution_hash
    assert answer.json()["decision"] in ("approve", "approve_with_safeguards", "escalate", "deny")
    wrong = httpx.post(f"{url}/predict", json={**body, "constitutional_hash": "0" * 16}, timeout=30)
    assert wrong.status_code == 409 and constitution_hash in wrong.text

    # the constitution changes: the deployment is re-gated and its route withdrawn (fail closed)
    changed = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
    changed["spec"]["principles"][0]["description"] += " (amended)"
    kubectl.apply(yaml.safe_dump(changed), namespace=namespace, server_side=False)
    kubectl.run(
        "wait", "-n", namespace, "--for=jsonpath={.status.phase}=Blocked", "--timeout=90s", "modeldeployment/cai"
    )
    md = kubectl.get_json("modeldeployment", "cai", "-n", namespace)
    assert condition(md, "CompliancePassed")["reason"] == "ConstitutionChanged"
    assert "re-run TrainingJob" in condition(md, "CompliancePassed")["message"]
    wait_until(
        lambda: httpx.post(f"{url}/predict", json=body, timeout=10).status_code == 404,
        timeout=60,
        what="the withdrawn route to answer 404",
    )

    # delete everything: no Ray job running, no Serve application left
    kubectl.run("delete", "modeldeployment,trainingjob", "--all", "-n", namespace, "--timeout=90s")
    wait_until(lambda: not serve_apps(ray_head.dashboard_url), timeout=90, what="no Serve application left")
    running = [
        j
        for j in ray_jobs(ray_head.dashboard_url)
        if j["status"] in ("PENDING", "RUNNING")
        and (j.get("metadata") or {}).get("acgs.io/resource", "").startswith(f"{namespace}/")
    ]
    assert running == []
