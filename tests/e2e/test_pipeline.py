"""The main command as a user runs it: `acgs pipeline --profile small` trains all six components, serves
three, calls every route and writes a report; it exits 0 only when every stage passed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from acgs_workloads.contract import COMPONENTS

SERVED = ("constitutional-ai", "policy-governance", "multi-agent-coordination")
ROUTES = ("/constitutional-ai", "/policy-governance", "/multi-agent")  # the documented routes of the samples
PLOTS = ("training_curves.png", "compliance_per_principle.png", "latency_histograms.png")
TIMEOUT_S = 600


def acgs_command() -> list[str]:
    script = Path(sys.executable).with_name("acgs")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "acgs_operator"]


def test_pipeline_small_profile_end_to_end(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_AUTH_MODE="disabled",
               ACGS_RUN_DIR=str(tmp_path / "run"))
    for name in ("KUBECONFIG", "ACGS_RAY_ADDRESS"):  # a fresh machine: the embedded default
        env.pop(name, None)
    proc = subprocess.Popen(
        [*acgs_command(), "pipeline", "--profile", "small", "--requests", "20", "--report-dir", str(report_dir)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out = proc.communicate(timeout=TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the pipeline stops everything it started
        out = proc.communicate(timeout=120)[0]
        raise AssertionError(f"acgs pipeline ran over {TIMEOUT_S}s:\n{out[-6000:]}") from None
    assert proc.returncode == 0, out[-6000:]
    assert "pipeline passed" in out

    for name in ("report.md", "report.json", *PLOTS):
        path = report_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    for name in PLOTS:
        assert (report_dir / name).read_bytes()[:4] == b"\x89PNG"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["ok"] is True and report["failures"] == []
    assert report["meta"]["profile"] == "small" and len(report["meta"]["constitutionHash"]) == 16

    rows = {c["component"]: c for c in report["components"]}
    assert set(rows) == set(COMPONENTS)
    for component, row in rows.items():
        for figure in ("accuracy", "f1", "compliance"):
            assert 0.0 <= row[figure] <= 1.0, (component, figure, row[figure])
        assert row["gatePassed"] is True, (component, row["gateMessage"])
        assert len(row["sha256"]) == 64 and row["constitutionHash"] == report["meta"]["constitutionHash"]
        assert row["curve"], f"no loss curve for {component}: {row['curveError']}"
    assert {d["component"] for d in report["deployments"]} == set(SERVED)
    assert all(d["phase"] == "Ready" for d in report["deployments"])
    from acgs_operator.devenv import keys
    from acgs_workloads.signing import fingerprint

    signer = fingerprint(keys.key_pair()[1])  # signed with the development key, verified in the namespace
    assert all(d["signedBy"] == signer for d in report["deployments"]), report["deployments"]

    routes = {r["route"]: r for r in report["routes"]}
    for prefix in ROUTES:  # the documented request bodies (acgs_operator.pipeline.routes.BODIES) answer 200
        good = routes[f"POST {prefix}/predict"]
        assert good["codes"] == {"200": 20} and good["p50Ms"] > 0, good
        assert routes[f"POST {prefix}/predict (wrong hash)"]["codes"] == {"409": 3}
        assert routes[f"GET {prefix}/health"]["codes"] == {"200": 20}
    for path in ("/health", "/models", "/metrics"):
        assert routes[f"GET {path}"]["codes"] == {"200": 20}

    markdown = (report_dir / "report.md").read_text()
    assert "Result: **passed**" in markdown and all(c in markdown for c in COMPONENTS)
