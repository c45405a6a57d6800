"""Results -> report dict -> Markdown (pure) and the PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acgs_operator.pipeline import plots, report

SHA = "ab" * 32


def training_job() -> dict[str, Any]:
    return {
        "spec": {"dataset": {"generator": {"examples": 4000}}, "training": {"epochs": 3}},
        "status": {
            "phase": "Succeeded",
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:01:05Z",
            "metrics": {"accuracy": 0.94, "precision": 0.93, "recall": 0.92, "f1": 0.942, "p99LatencyMs": 1.5,
                        "p50LatencyMs": 0.8, "heldOutAccuracy": 0.91, "heldOutF1": 0.905,
                        "unsafeApproveRate": 0.0625, "overRefusalRate": 0.04},
            "compliance": {"score": 0.995, "threshold": 0.9, "passed": True, "constitutionHash": "cd5ebfe6b284d24b",
                           "evaluatedExamples": 800, "violations": [{"principle": "privacy", "count": 4}]},
            "model": {"sha256": SHA, "uri": "/a/b", "sizeBytes": 10},
            "conditions": [{"type": "Compliant", "status": "True", "message": "compliance 0.995 >= 0.9"}],
            "rayJob": {"submissionId": "acgs-cai-1-g1"},
        },
    }


def sample_report(ok: bool = True) -> dict[str, Any]:
    curve = [{"step": s, "epoch": 1, "loss": 1.0 / s, "percent": 10.0 * s} for s in range(1, 6)]
    component = report.component_row(training_job(), "constitutional-ai", "constitutional-ai", curve)
    stages = [{"stage": "train constitutional-ai", "key": "train/cai", "state": "done" if ok else "failed",
               "detail": "accuracy | 0.94", "seconds": 65.0}]
    route = {"route": "POST /constitutional-ai/predict", "check": "prediction", "expect": 200, "codes": {"200": 5},
             "requests": 5, "p50Ms": 4.0, "p99Ms": 9.0, "ok": True, "errors": [], "example": "{}",
             "latenciesMs": [3.0, 4.0, 4.0, 5.0, 9.0]}
    deployment = report.deployment_row({"status": {"phase": "Ready", "url": "http://h/constitutional-ai",
                                                   "model": {"sha256": SHA},
                                                   "compliance": {"score": 0.995, "gate": 0.9}}},
                                       "constitutional-ai", "constitutional-ai")
    meta = {"startedAt": "2026-01-01T00:00:00Z", "wallSeconds": 300.0, "profile": "small", "namespace": "ns",
            "cluster": "embedded", "constitution": "default", "constitutionHash": "cd5ebfe6b284d24b"}
    return report.build(meta=meta, stages=stages, components=[component], deployments=[deployment], routes=[route],
                        principles=["privacy", "safety"])


def test_component_row_takes_every_figure_from_the_status() -> None:
    row = report.component_row(training_job(), "constitutional-ai", "cai")
    assert row["accuracy"] == 0.94 and row["f1"] == 0.942 and row["compliance"] == 0.995
    assert row["gatePassed"] is True and row["sha256"] == SHA and row["trainSeconds"] == 65.0
    assert row["violations"] == {"privacy": 4} and row["evaluatedExamples"] == 800
    assert row["examples"] == 4000 and row["epochs"] == 3
    assert (row["heldOutAccuracy"], row["heldOutF1"], row["unsafeApproveRate"], row["overRefusalRate"]) == (
        0.91, 0.905, 0.0625, 0.04)
    assert (row["predictorP50Ms"], row["predictorP95Ms"], row["predictorP99Ms"]) == (0.8, None, 1.5)
    empty = report.component_row(None, "wina-optimization", "w", curve_error="no job")
    assert empty["accuracy"] is None and empty["gatePassed"] is False and empty["curveError"] == "no job"


def test_deployment_row_takes_every_figure_from_the_status() -> None:
    md = {"status": {"phase": "Ready", "url": "http://h/x", "routes": ["/x/predict"], "observedGeneration": 1,
                     "model": {"uri": "file:///m", "sha256": SHA, "trainingJob": "ns/cai",
                               "lineage": {"modelSha256": SHA, "signedBy": "0123456789abcdef"}},
                     "compliance": {"constitutionHash": "cd5ebfe6b284d24b", "score": 0.99, "gate": 0.9,
                                    "reason": "CompliancePassed"},
                     "replicas": {"desired": 2, "ready": 1}}}
    row = report.deployment_row(md, "constitutional-ai", "cai")
    assert row == {"modelDeployment": "cai", "component": "constitutional-ai", "phase": "Ready", "url": "http://h/x",
                   "routes": ["/x/predict"], "sha256": SHA, "signedBy": "0123456789abcdef",
                   "complianceScore": 0.99, "minScore": 0.9,
                   "reason": "CompliancePassed", "replicasReady": 1, "replicasDesired": 2}
    empty = report.deployment_row(None, "constitutional-ai", "cai")
    assert empty["phase"] is None and empty["routes"] == [] and empty["sha256"] is None


def test_build_marks_failures_and_unfinished_stages() -> None:
    assert sample_report(ok=True)["ok"] is True
    failed = sample_report(ok=False)
    assert failed["ok"] is False and failed["failures"] == [{"stage": "train constitutional-ai",
                                                            "detail": "accuracy | 0.94"}]
    running = report.build(meta={}, stages=[{"stage": "s", "state": "running", "detail": ""}], components=[],
                           deployments=[], routes=[], principles=[])
    assert running["ok"] is False


def test_markdown_has_every_table() -> None:
    md = report.to_markdown(sample_report())
    assert "Result: **passed** in 300.0 s" in md
    assert ("| constitutional-ai | 4000 | 3 | 0.940 | 0.942 | 0.910 / 0.905 | 0.995 | 0.062 | 0.040 "
            "| 0.80 / - / 1.50 | passed (>= 0.90) | abababababab | 65 |") in md
    assert "| constitutional-ai | 800 | 4 | 0 |" in md
    assert "| POST /constitutional-ai/predict | prediction | 200 | 200×5 | 4.00 | 9.00 | yes |" in md
    assert "accuracy / 0.94" in md  # a pipe inside a cell does not break the table
    assert "![Training loss" in md
    assert "## Failures" in report.to_markdown(sample_report(ok=False))


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    data = sample_report()
    assert plots.write_all(data, tmp_path) == list(report.PLOTS)
    for name in report.PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = report.build(meta={}, stages=[], components=[], deployments=[], routes=[], principles=[])
    assert plots.write_all(empty, tmp_path / "none") == []


def test_reevaluation_row_compares_the_evaluation_only_run_with_training() -> None:
    from types import SimpleNamespace

    before = {"status": {"phase": "Ready", "compliance": {"constitutionHash": "a" * 16, "score": 0.98}}}
    after = {"status": {"phase": "Ready", "model": {"trainingJob": "ns/cai", "sha256": SHA},
                        "compliance": {"constitutionHash": "b" * 16, "score": 0.97},
                        "reevaluation": {"constitutionHash": "b" * 16, "phase": "Complete", "seconds": 6.0,
                                         "submissionId": "acgs-eval-1"}}}
    jobs = {"cai": {"status": {"startTime": "2026-12-01T00:00:00Z", "completionTime": "2026-12-01T00:01:00Z"}}}
    row = report.reevaluation_row(after, before, jobs, "constitutional-ai", "cai", SimpleNamespace(seconds=12.345))
    assert row["scoreBefore"] == 0.98 and row["scoreAfter"] == 0.97 and row["constitutionHash"] == "b" * 16
    assert (row["reevaluationSeconds"], row["trainSeconds"], row["ratio"]) == (6.0, 60.0, 0.1)
    assert row["changeToReadySeconds"] == 12.35 and row["rayJob"] == "acgs-eval-1"


def test_reevaluation_view_waits_for_ready_under_the_new_hash() -> None:
    from acgs_operator.pipeline.stages import State, reevaluation_view

    view = reevaluation_view("b" * 16)

    def md(phase: str, hash_: str, reason: str) -> dict[str, Any]:
        return {"status": {"phase": phase, "compliance": {"constitutionHash": hash_, "score": 0.9, "reason": reason}}}

    assert view(md("Ready", "a" * 16, "CompliancePassed")).state is State.RUNNING, "still the old hash"
    assert view(md("Blocked", "a" * 16, "Reevaluating")).state is State.RUNNING
    assert view(md("Ready", "b" * 16, "CompliancePassed")).state is State.DONE
    assert view(md("Blocked", "b" * 16, "ComplianceBelowThreshold")).state is State.FAILED
    assert view(None).state is State.FAILED
