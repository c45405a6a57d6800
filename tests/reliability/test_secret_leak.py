"""Case 8b: the value of an API-key Secret never leaves the Secret.

A Secret holds a unique random key that a ModelDeployment names in ``spec.auth.apiKeySecretRef``. The model
is an artifact trained here (plain torch, seconds) and given by ``model.uri`` + ``sha256``, so the gate
passes and the operator reads the Secret to configure the Serve application with the key's sha256. Then
the key must work (401 without it, 200 with it) and neither the key nor its base64 may appear in: the
status of any ACGS resource, any Event of the namespace, the operator's log, the Serve applications'
config from the dashboard, or the Ray head's logs (controller, proxy and replica logs included).

The replica's decision audit (logger ``acgs.audit``, one JSON line per refusal and guard override) is
checked too: the refused requests of this case (two 401s, one 409) must appear as audit lines in the Ray
logs, and no audit line may hold the key, its base64 or the request's text.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from acgs_operator.devenv.kubectl import Kubectl
from acgs_workloads.constitution.loader import default_constitution
from acgs_workloads.contract import (
    ConstitutionSnapshot,
    DatasetSpec,
    GeneratorSpec,
    ModelSpec,
    TrainingSpec,
    TrainRunConfig,
)

ROOT = Path(__file__).resolve().parents[2]
CASE = "8b"
TITLE = "no secret value leaks (statuses, events, logs, Serve config)"
GOAL = "0 hits of the key or its base64"
READY_TIMEOUT_S = 240
AUDIT_TIMEOUT_S = 30
AUDIT_LINE = re.compile(r'\{"event":"acgs\.audit".*\}')


@dataclass(frozen=True)
class Place:
    name: str
    text: str

    @property
    def lines(self) -> int:
        return self.text.count("\n") + 1

    @property
    def size(self) -> int:
        return len(self.text.encode())


def train_tiny(root: Path, constitution: ConstitutionSnapshot) -> tuple[str, str]:
    """A constitutional-ai model trained with the real loop (plain torch): (model directory URI, sha256)."""
    import torch

    from acgs_workloads.train import run

    cfg = TrainRunConfig(
        run_id="leak-probe",
        component="constitutional-ai",
        constitution=constitution,
        dataset=DatasetSpec(generator=GeneratorSpec(examples=600, seed=3)),
        model=ModelSpec(hidden_size=16, layers=1),
        training=TrainingSpec(epochs=1, batch_size=64, learning_rate=0.01),
        artifact_root=str(root),
        use_ray=False,
    )
    torch.set_grad_enabled(True)
    result = run(cfg)
    return result.model.uri.rsplit("/", 1)[0], result.model.sha256


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def ray_logs(temp_dir: str) -> list[Place]:
    logs = Path(temp_dir) / "session_latest" / "logs"
    return [
        Place(f"ray log {p.relative_to(logs)}", p.read_text(errors="replace"))
        for p in sorted(logs.rglob("*"))
        if p.is_file() and p.suffix in (".log", ".out", ".err", ".txt", ".json")
    ]


def hits(places: list[Place], needles: list[str]) -> dict[str, int]:
    return {p.name: sum(p.text.count(n) for n in needles) for p in places if any(n in p.text for n in needles)}


def audit_lines(places: list[Place], deployment: str) -> list[str]:
    """The audit lines of ``deployment`` found in ``places`` (the JSON object, whatever prefix a log adds; a
    line Ray copies into a second log counts once)."""
    found: set[str] = set()
    for place in places:
        for match in AUDIT_LINE.finditer(place.text):
            if f'"deployment":"{deployment}"' in match.group(0):
                found.add(match.group(0))
    return sorted(found)


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})


@pytest.mark.case(CASE)
def test_the_api_key_never_leaks(  # type: ignore[no-untyped-def]
    kubectl: Kubectl, acgs_operator, ray_head, namespace: str, tmp_path: Path, reliability_report: Any
) -> None:
    key = f"acgs-leak-probe-{secrets.token_hex(16)}"
    needles = [key, base64.b64encode(key.encode()).decode()]

    kubectl.run("apply", "-n", namespace, "-f", str(ROOT / "manifests" / "constitution.yaml"))
    constitution = default_constitution()
    uri, sha256 = train_tiny(tmp_path / "artifacts", constitution)
    kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", "constitution/default")
    assert kubectl.get_json("constitution", "default", "-n", namespace)["status"]["hash"] == constitution.hash

    kubectl.run("create", "secret", "generic", "api-key", "-n", namespace, f"--from-literal=key={key}")
    prefix = f"/leak-{namespace[-6:]}"
    spec = {
        "model": {"uri": uri, "sha256": sha256},
        "constitutionRef": {"name": "default"},
        "routePrefix": prefix,
        "compliance": {"minScore": 0.0},
        "auth": {"apiKeySecretRef": {"name": "api-key", "key": "key"}},
    }
    kubectl.apply(manifest("ModelDeployment", "guarded", spec), namespace=namespace, server_side=False)
    kubectl.run(
        "wait", "-n", namespace, "--for=condition=Ready", f"--timeout={READY_TIMEOUT_S}s", "modeldeployment/guarded",
        timeout=READY_TIMEOUT_S + 20,
    )
    url = kubectl.get_json("modeldeployment", "guarded", "-n", namespace)["status"]["url"]
    request_text = f"summarise my account {secrets.token_hex(8)}"
    body = {"scenario": "general", "user_request": request_text, "constitutional_hash": constitution.hash}
    without = httpx.post(f"{url}/predict", json=body, timeout=30)
    wrong = httpx.post(f"{url}/predict", json=body, headers={"X-API-Key": key + "x"}, timeout=30)
    with_key = httpx.post(f"{url}/predict", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert (without.status_code, wrong.status_code, with_key.status_code) == (401, 401, 200), with_key.text
    mismatch = httpx.post(f"{url}/predict", json={**body, "constitutional_hash": "0" * 16},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert mismatch.status_code == 409, mismatch.text

    # the replica writes its audit lines to its worker's stderr log: wait until the three refusals are there
    deployment = f"{namespace}/guarded"
    deadline = time.monotonic() + AUDIT_TIMEOUT_S
    audited = audit_lines(ray_logs(ray_head.temp_dir), deployment)
    while len(audited) < 3 and time.monotonic() < deadline:
        time.sleep(1)
        audited = audit_lines(ray_logs(ray_head.temp_dir), deployment)

    places = [
        Place("ACGS resources (all namespaces, -o json)",
              kubectl.run("get", "constitutions,trainingjobs,modeldeployments", "-A", "-o", "json").stdout),
        Place(f"Events of {namespace}", kubectl.run("get", "events", "-n", namespace, "-o", "json").stdout),
        Place("operator log", acgs_operator.log.read_text(errors="replace")),
        Place("Serve applications (dashboard)", http_get(f"{ray_head.dashboard_url}/api/serve/applications/")),
        *ray_logs(ray_head.temp_dir),
    ]
    # the places really hold this deployment: a search of empty text would find nothing either
    serve_config = json.loads(places[3].text)
    assert any(prefix == app.get("route_prefix") for app in serve_config["applications"].values())
    assert "guarded" in places[0].text and "apiKeySecretRef" in places[0].text
    found = hits(places, needles)
    # the control: the same search finds the key where it belongs (the Secret holds its base64)
    secret = Place("the Secret", kubectl.run("get", "secret", "api-key", "-n", namespace, "-o", "json").stdout)
    control = hits([secret], needles)
    reliability_report.record(
        CASE, TITLE, goal=GOAL,
        places_searched=len(places),
        ray_log_files=len(places) - 4,
        lines_searched=sum(p.lines for p in places),
        bytes_searched=sum(p.size for p in places),
        needles="key, base64(key)",
        hits=sum(found.values()),
        key_checks=f"without {without.status_code}, wrong {wrong.status_code}, with {with_key.status_code}",
        control_hits_in_secret=sum(control.values()),
        audit_lines=len(audited),
    )
    assert control == {secret.name: 1}, "the search does not find the key even in its Secret"
    assert found == {}, f"the API key leaked into: {found}"
    reasons = Counter(json.loads(line)["reason"] for line in audited)
    assert reasons["unauthorized"] >= 2 and reasons["constitution_mismatch"] >= 1, audited
    audit_hits = [line for line in audited if any(n in line for n in [*needles, request_text])]
    reliability_report.record(CASE, TITLE, audit_hits=len(audit_hits))
    assert audit_hits == [], f"audit lines hold the key or the request text: {audit_hits}"
