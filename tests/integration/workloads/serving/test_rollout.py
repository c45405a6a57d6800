"""A model rollout under steady load loses nothing: the application the operator builds (``max_surge_percent``
100) is redeployed with other weights while vegeta sends a fixed rate; every request is answered 200, and the
answers name the old digest, then the new one."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from acgs_operator.api.v1alpha1 import ModelDeploymentSpec
from acgs_operator.modeldeployment import build as mds
from acgs_workloads.artifacts import load_artifact, read_metadata, save_artifact
from acgs_workloads.contract import ConstitutionSnapshot

from .conftest import ServeEnv, Trained
from .test_load_shedding import vegeta
from .test_model_apps import deploy

RATE, SECONDS, SWITCH_AFTER = 20, 30, 5


def other_weights(model: Trained, root: Path) -> Trained:
    """The same model with one bias nudged: servable, judged like the original, another digest."""
    loaded = load_artifact(model.uri)
    state = {k: v.clone() for k, v in loaded.state_dict.items()}
    name = next(k for k in state if k.endswith("bias"))
    state[name] = state[name] + 1e-3
    meta = read_metadata(model.uri)
    artifact = save_artifact(str(root), "rollout-b", state, component=meta.component, config=meta.config,
                             constitution_hash=meta.constitution_hash, dataset_digest=meta.dataset_digest,
                             metrics=meta.metrics, compliance=meta.compliance)
    return Trained(component=model.component, uri=str(root / "models" / "rollout-b"), sha256=artifact.sha256)


def application(model: Trained, constitution: ConstitutionSnapshot) -> dict[str, object]:
    spec = ModelDeploymentSpec.model_validate({
        "model": {"uri": model.uri, "sha256": model.sha256}, "constitutionRef": {"name": "default"},
        "routePrefix": "/rollout", "replicas": 1, "resources": {"cpus": 0.5},
    })
    evidence = mds.ModelEvidence(component=model.component, uri=model.uri, sha256=model.sha256,
                                 constitution_hash=constitution.hash, score=1.0)
    return mds.serve_application(namespace="it", name="rollout", spec=spec, evidence=evidence,
                                 constitution=constitution)


def test_a_rollout_under_load_drops_no_request(
    serve_env: ServeEnv, trained: Callable[[str], Trained], constitution: ConstitutionSnapshot, http: httpx.Client,
    tmp_path: Path,
) -> None:
    old = trained("constitutional-ai")
    new = other_weights(old, tmp_path)
    assert new.sha256 != old.sha256
    first = application(old, constitution)
    options = {k: v for k, v in first["deployments"][0].items() if k != "name"}  # type: ignore[index]
    assert options["max_surge_percent"] == 100
    deploy(serve_env, "it-rollout", str(first["import_path"]), first["args"], "/rollout", **options)  # type: ignore[arg-type]
    body = {"scenario": "general", "user_request": "summarise my account history",
            "constitutional_hash": constitution.hash}
    assert http.post("/rollout/predict", json=body).json()["model_sha256"] == old.sha256

    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"method": "POST", "url": f"{serve_env.base_url}/rollout/predict",
                                   "body": base64.b64encode(json.dumps(body).encode()).decode(),
                                   "header": {"Content-Type": ["application/json"]}}) + "\n")
    raw = tmp_path / "results.bin"
    with raw.open("wb") as sink:
        attack = subprocess.Popen([vegeta(), "attack", f"-targets={targets}", "-format=json", f"-rate={RATE}/s",
                                   f"-duration={SECONDS}s", "-timeout=10s", "-keepalive=true"], stdout=sink)
        time.sleep(SWITCH_AFTER)
        second = application(new, constitution)
        deploy(serve_env, "it-rollout", str(second["import_path"]), second["args"], "/rollout", **options)  # type: ignore[arg-type]
        assert attack.wait(timeout=SECONDS + 60) == 0
    encoded = subprocess.run([vegeta(), "encode", "--to", "json", str(raw)], capture_output=True, check=True,
                             text=True, timeout=60).stdout
    results = [json.loads(line) for line in encoded.splitlines() if line.strip()]
    assert len(results) >= RATE * SECONDS * 0.9
    failed = [(r["code"], r.get("error"), base64.b64decode(r.get("body") or b"")[:200]) for r in results
              if int(r["code"]) != 200]
    assert failed == [], f"{len(failed)} of {len(results)} failed during the rollout: {failed[:5]}"
    digests = [json.loads(base64.b64decode(r["body"]))["model_sha256"] for r in results]
    switch = digests.index(new.sha256)
    assert set(digests[:switch]) == {old.sha256} and digests[-1] == new.sha256
    print(f"\nrollout under {RATE} RPS: {len(results)} requests, 0 failed; {switch} answers from the old weights "
          f"(the change came after {SWITCH_AFTER} s), {digests.count(new.sha256)} from the new")
