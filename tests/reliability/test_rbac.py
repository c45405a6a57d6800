"""Case 8 (RBAC): what the chart's ServiceAccount may and may not do, asked of the real API server.

The chart is installed with the real helm, once per RBAC scope, and every row of the table is one
`kubectl auth can-i --as=system:serviceaccount:<ns>:<sa>` answered by the API server's RBAC authorizer.
Allowed: exactly what the operator uses (its CRs and their status, events, the CRDs kopf scans, `get` on
Secrets in the namespaces it serves). Denied: everything else, Secrets list/watch and other namespaces'
Secrets included. Then the operator itself runs under that ServiceAccount's token, with the arguments and
environment of the chart's Deployment, and reconciles a Constitution (status, event, finalizer) without a
single forbidden request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from acgs_operator.devenv.binaries import require_binary
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.devenv.process import ManagedProcess, free_port, wait_until

CASE = "8"
TITLE = "RBAC: chart service account can-i table"
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "acgs"
HOME, OTHER, ALL = "<home>", "<other>", "<all>"  # the release's namespace, another one, cluster-wide


@dataclass(frozen=True)
class Check:
    verb: str
    resource: str
    where: str  # HOME, OTHER, ALL, or "" for a cluster-scoped resource
    allowed: dict[str, bool]  # scope -> expected answer
    subresource: str = ""


def both(allowed: bool) -> dict[str, bool]:
    return {"cluster": allowed, "namespace": allowed}


CLUSTER_ONLY = {"cluster": True, "namespace": False}
ACGS = ("constitutions.acgs.io", "trainingjobs.acgs.io", "modeldeployments.acgs.io")

TABLE: list[Check] = [
    # what the operator needs, in the namespace it serves
    *[Check(v, r, HOME, both(True)) for r in ACGS for v in ("get", "list", "watch", "patch", "update")],
    *[Check(v, r, HOME, both(True), "status") for r in ACGS for v in ("get", "patch", "update")],
    Check("create", "events", HOME, both(True)),
    Check("patch", "events", HOME, both(True)),
    Check("create", "events.events.k8s.io", HOME, both(True)),
    Check("get", "secrets", HOME, both(True)),
    *[Check(v, "customresourcedefinitions.apiextensions.k8s.io", "", both(True)) for v in ("get", "list", "watch")],
    # every namespace only with scope cluster
    Check("list", "trainingjobs.acgs.io", ALL, CLUSTER_ONLY),
    Check("watch", "modeldeployments.acgs.io", ALL, CLUSTER_ONLY),
    Check("patch", "constitutions.acgs.io", OTHER, CLUSTER_ONLY),
    Check("patch", "trainingjobs.acgs.io", OTHER, CLUSTER_ONLY, "status"),
    Check("create", "events", OTHER, CLUSTER_ONLY),
    # never: Secrets beyond a get in its own namespaces
    Check("list", "secrets", HOME, both(False)),
    Check("watch", "secrets", HOME, both(False)),
    Check("list", "secrets", ALL, both(False)),
    Check("watch", "secrets", ALL, both(False)),
    Check("get", "secrets", OTHER, both(False)),
    Check("get", "secrets", ALL, both(False)),
    Check("create", "secrets", HOME, both(False)),
    Check("update", "secrets", HOME, both(False)),
    # never: creating or deleting users' resources
    *[Check(v, r, HOME, both(False)) for r in ACGS for v in ("create", "delete", "deletecollection")],
    # never: anything outside its work
    Check("get", "pods", HOME, both(False)),
    Check("list", "pods", ALL, both(False)),
    Check("create", "pods", HOME, both(False)),
    Check("create", "pods", HOME, both(False), "exec"),
    Check("get", "configmaps", HOME, both(True)),  # the verification keys, in every namespace it serves
    Check("get", "configmaps", OTHER, CLUSTER_ONLY),
    Check("list", "configmaps", HOME, both(False)),
    Check("create", "configmaps", HOME, both(False)),
    Check("list", "deployments.apps", HOME, both(False)),
    Check("create", "deployments.apps", HOME, both(False)),
    Check("patch", "deployments.apps", HOME, both(False)),
    Check("get", "nodes", "", both(False)),
    Check("list", "nodes", "", both(False)),
    Check("list", "namespaces", "", {"cluster": False, "namespace": True}),  # kopf finds its -n namespaces
    Check("get", "namespaces", "", both(False)),
    Check("delete", "namespaces", "", both(False)),
    Check("create", "customresourcedefinitions.apiextensions.k8s.io", "", both(False)),
    Check("patch", "customresourcedefinitions.apiextensions.k8s.io", "", both(False)),
    Check("delete", "customresourcedefinitions.apiextensions.k8s.io", "", both(False)),
    Check("create", "clusterrolebindings.rbac.authorization.k8s.io", "", both(False)),
    Check("create", "rolebindings.rbac.authorization.k8s.io", HOME, both(False)),
    Check("escalate", "roles.rbac.authorization.k8s.io", HOME, both(False)),
    Check("impersonate", "serviceaccounts", HOME, both(False)),
    Check("create", "serviceaccounts", HOME, both(False), "token"),
    Check("create", "leases.coordination.k8s.io", HOME, both(False)),
    Check("create", "clusterkopfpeerings.kopf.dev", "", both(False)),  # standalone: no peering
]


def can_i(kubectl: Kubectl, check: Check, user: str, namespaces: dict[str, str]) -> bool:
    args = ["auth", "can-i", check.verb, check.resource, f"--as={user}"]
    if check.subresource:
        args.append(f"--subresource={check.subresource}")
    if check.where == ALL:
        args.append("--all-namespaces")
    elif check.where:
        args += ["-n", namespaces[check.where]]
    proc = subprocess.run(
        [str(require_binary("kubectl")), "--kubeconfig", str(kubectl.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    answer = proc.stdout.strip()
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or answer!r}")
    return answer == "yes"


def helm(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(require_binary("helm")), "--kubeconfig", str(kubectl.kubeconfig), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def row(check: Check) -> str:
    sub = f"/{check.subresource}" if check.subresource else ""
    return f"{check.verb} {check.resource}{sub} {check.where or '(cluster)'}"


@pytest.mark.case(CASE)
def test_chart_service_account_can_i_table(kubectl: Kubectl, namespace: str, reliability_report) -> None:  # type: ignore[no-untyped-def]
    other = f"t-rbac-other-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", other)
    namespaces = {HOME: namespace, OTHER: other}
    lines, mismatches, allowed, denied = [], [], 0, 0
    try:
        for scope in ("cluster", "namespace"):
            release = f"acgs-rbac-{scope[:2]}-{uuid.uuid4().hex[:5]}"
            installed = helm(kubectl, "install", release, str(CHART), "-n", namespace, "--set", f"rbac.scope={scope}")
            assert installed.returncode == 0, installed.stderr
            try:
                user = f"system:serviceaccount:{namespace}:{release}"
                with ThreadPoolExecutor(max_workers=8) as pool:
                    answers = list(pool.map(lambda c: can_i(kubectl, c, user, namespaces), TABLE))  # noqa: B023
            finally:
                helm(kubectl, "uninstall", release, "-n", namespace)
            for check, answer in zip(TABLE, answers, strict=True):
                want = check.allowed[scope]
                allowed += want
                denied += not want
                ok = answer == want
                lines.append(f"{scope:9} {row(check):75} {'yes' if answer else 'no':3}  {'ok' if ok else 'MISMATCH'}")
                if not ok:
                    mismatches.append(f"{scope}: {row(check)} answered {answer}, expected {want}")
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)
    print("\nscope     check" + " " * 71 + "can-i\n" + "\n".join(lines))
    reliability_report.record(
        CASE,
        TITLE,
        goal="all allowed / all denied",
        allowed_checks=allowed,
        denied_checks=denied,
        mismatches=len(mismatches),
        scopes="cluster, namespace",
    )
    assert not mismatches, "\n".join(mismatches)


def service_account_kubeconfig(kubectl: Kubectl, namespace: str, account: str, path: Path) -> Path:
    """The session's cluster with a token of ``account`` (TokenRequest) instead of the admin's certificate."""
    config = json.loads(kubectl.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(yaml.safe_dump(config))
    return path


def chart_container(kubectl: Kubectl, release: str, namespace: str) -> dict[str, Any]:
    manifest = helm(kubectl, "get", "manifest", release, "-n", namespace).stdout
    (deployment,) = [d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def operator_as_in_the_chart(container: dict[str, Any], kubeconfig: Path, log: Path) -> tuple[ManagedProcess, int]:
    """`acgs operator run` with the Deployment's arguments and environment (local ports)."""
    health = free_port()
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(
        KUBECONFIG=str(kubeconfig),
        ACGS_HEALTH_PORT=str(health),
        ACGS_METRICS_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    args = [sys.executable, "-m", "acgs_operator", *container["args"]]
    process = ManagedProcess("acgs operator (chart service account)", args, log, env={**os.environ, **env}).start()
    return process, health


def log_records(log: Path) -> list[dict[str, Any]]:
    """The operator's JSON log records (the chart sets ACGS_LOG_FORMAT=json)."""
    records = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def reconciled(log: Path, namespace: str, name: str) -> bool:
    return any(
        r.get("object", {}).get("namespace") == namespace
        and r.get("object", {}).get("name") == name
        and r["message"] == "Handler 'reconcile_constitution' succeeded."
        for r in log_records(log)
    )


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
        return resp.status == 200


@pytest.mark.case(CASE)
@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_operator_works_under_the_chart_service_account(  # type: ignore[no-untyped-def]
    kubectl: Kubectl, namespace: str, scope: str, tmp_path: Path, reliability_report
) -> None:
    release = f"acgs-op-{scope[:2]}-{uuid.uuid4().hex[:5]}"
    name = f"rbac-{scope}"
    installed = helm(kubectl, "install", release, str(CHART), "-n", namespace, "--set", f"rbac.scope={scope}")
    assert installed.returncode == 0, installed.stderr
    process = None
    try:
        container = chart_container(kubectl, release, namespace)
        kubeconfig = service_account_kubeconfig(kubectl, namespace, release, tmp_path / "kubeconfig")
        process, health = operator_as_in_the_chart(container, kubeconfig, tmp_path / "operator.log")
        wait_until(lambda: _healthy(health), timeout=90, what="the operator's /healthz", abort=process.death_notice)

        constitution = yaml.safe_load((ROOT / "manifests" / "constitution.yaml").read_text())
        constitution["metadata"] = {"name": name}
        kubectl.apply(yaml.safe_dump(constitution), namespace=namespace, server_side=False)
        wait_until(
            lambda: reconciled(process.log, namespace, name),  # type: ignore[union-attr]
            timeout=90,
            what=f"this operator to reconcile constitution/{name}",
            abort=process.death_notice,
        )
        kubectl.run("wait", "-n", namespace, "--for=condition=Valid", "--timeout=60s", f"constitution/{name}")
        events = kubectl.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
        assert "Compiled" in {e["reason"] for e in events["items"]}
        kubectl.run("delete", "constitution", name, "-n", namespace, "--wait=true", "--timeout=60s")

        forbidden = [
            r["message"] for r in log_records(process.log) if re.search(r"forbidden|\b403\b", r["message"], re.I)
        ]
        reliability_report.record(CASE, TITLE, **{f"operator_{scope}_scope_forbidden_requests": len(forbidden)})
        assert not forbidden, "\n".join(forbidden)
    finally:
        if process is not None:
            process.stop()
        helm(kubectl, "uninstall", release, "-n", namespace)
