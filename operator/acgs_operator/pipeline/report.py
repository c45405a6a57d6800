"""The run's results as one JSON-ready dict, and that dict as Markdown (pure functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from acgs_operator.api.v1alpha1 import (
    DeploymentComplianceStatus,
    ModelDeploymentStatus,
    ReplicaStatus,
    TrainingJobStatus,
)
from acgs_operator.conditions import find
from acgs_operator.pipeline.stages import status_of
from acgs_operator.reasons import ConditionType
from acgs_workloads.contract import TrainingMetrics

PLOTS = {
    "training_curves.png": "Training loss per step (from the Ray job logs' progress events)",
    "compliance_per_principle.png": "Compliance per principle (1 - violations / evaluated examples)",
    "latency_histograms.png": "Latency per route (sequential requests)",
}


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (dt.datetime.strptime(end, fmt) - dt.datetime.strptime(start, fmt)).total_seconds()


def component_row(job: Mapping[str, Any] | None, component: str, name: str, curve: Sequence[Mapping[str, Any]] = (),
                  curve_error: str = "") -> dict[str, Any]:
    """One component's figures from its TrainingJob status (pure)."""
    status = status_of(job, TrainingJobStatus)
    metrics, compliance, model = status.metrics or TrainingMetrics(), status.compliance, status.model
    compliant = find(status.conditions, ConditionType.COMPLIANT)
    spec = (job or {}).get("spec") or {}  # the sample manifest's fields, as applied
    return {
        "component": component,
        "trainingJob": name,
        "phase": status.phase,
        "examples": ((spec.get("dataset") or {}).get("generator") or {}).get("examples"),
        "epochs": (spec.get("training") or {}).get("epochs"),
        "accuracy": metrics.accuracy,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "f1": metrics.f1,
        "loss": metrics.loss,
        "heldOutAccuracy": metrics.held_out_accuracy,
        "heldOutF1": metrics.held_out_f1,
        "unsafeApproveRate": metrics.unsafe_approve_rate,
        "overRefusalRate": metrics.over_refusal_rate,
        "samplesPerSecond": metrics.samples_per_second,
        "predictorP50Ms": metrics.p50_latency_ms,
        "predictorP95Ms": metrics.p95_latency_ms,
        "predictorP99Ms": metrics.p99_latency_ms,
        "compliance": compliance.score if compliance else None,
        "threshold": compliance.threshold if compliance else None,
        "constitutionHash": compliance.constitution_hash if compliance else None,
        "evaluatedExamples": compliance.evaluated_examples if compliance else None,
        "violations": {v.principle: v.count for v in compliance.violations} if compliance else {},
        "gatePassed": compliant is not None and compliant.status == "True",
        "gateMessage": compliant.message if compliant else "",
        "sha256": model.sha256 if model else None,
        "modelUri": model.uri if model else None,
        "sizeBytes": model.size_bytes if model else None,
        "restarts": status.restarts,
        "trainSeconds": _seconds_between(status.start_time, status.completion_time),
        "rayJob": status.ray_job.submission_id if status.ray_job else None,
        "curve": list(curve),
        "curveError": curve_error,
    }


def deployment_row(md: Mapping[str, Any] | None, component: str, name: str) -> dict[str, Any]:
    status = status_of(md, ModelDeploymentStatus)
    compliance, replicas = status.compliance or DeploymentComplianceStatus(), status.replicas or ReplicaStatus()
    return {
        "modelDeployment": name,
        "component": component,
        "phase": status.phase,
        "url": status.url,
        "routes": list(status.routes),
        "sha256": status.model.sha256 if status.model else None,
        "signedBy": status.model.lineage.signed_by if status.model and status.model.lineage else None,
        "complianceScore": compliance.score,
        "minScore": compliance.gate,
        "reason": compliance.reason,
        "replicasReady": replicas.ready,
        "replicasDesired": replicas.desired,
    }


def reevaluation_row(after: Mapping[str, Any] | None, before: Mapping[str, Any] | None,
                     jobs: Mapping[str, Mapping[str, Any] | None], component: str, name: str,
                     stage: Any = None) -> dict[str, Any]:
    """One deployment after the pipeline's Constitution edit: re-evaluated (how long, which score) versus the
    training that produced its model."""
    now, then = status_of(after, ModelDeploymentStatus), status_of(before, ModelDeploymentStatus)
    run = now.reevaluation
    job_name = (now.model.training_job or "").split("/")[-1] if now.model else ""
    job = status_of(jobs.get(job_name), TrainingJobStatus)
    train = _seconds_between(job.start_time, job.completion_time)
    seconds = run.seconds if run is not None else None
    return {
        "modelDeployment": name,
        "component": component,
        "phase": now.phase,
        "constitutionHash": now.compliance.constitution_hash if now.compliance else None,
        "scoreBefore": then.compliance.score if then.compliance else None,
        "scoreAfter": now.compliance.score if now.compliance else None,
        "reevaluationSeconds": seconds,
        "trainSeconds": train,
        "ratio": round(seconds / train, 4) if seconds is not None and train else None,
        "changeToReadySeconds": round(stage.seconds, 2) if stage is not None and stage.seconds is not None else None,
        "rayJob": run.submission_id if run is not None else None,
    }


def build(*, meta: Mapping[str, Any], stages: Sequence[Mapping[str, Any]], components: Sequence[Mapping[str, Any]],
          deployments: Sequence[Mapping[str, Any]], routes: Sequence[Mapping[str, Any]],
          principles: Sequence[str], reevaluations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Everything the summary table shows plus the raw data; ``ok`` is false when any stage failed."""
    failed = [s for s in stages if s["state"] == "failed"]
    unfinished = [s for s in stages if s["state"] in ("pending", "running")]
    return {
        "meta": dict(meta),
        "ok": not failed and not unfinished,
        "failures": [{"stage": s["stage"], "detail": s["detail"]} for s in failed],
        "stages": list(stages),
        "components": list(components),
        "deployments": list(deployments),
        "routes": list(routes),
        "reevaluations": list(reevaluations),
        "principles": list(principles),
        "plots": list(PLOTS),
    }


def num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return str(value)


def pair(first: Any, second: Any) -> str:
    """Two figures as ``a / b``; ``-`` when neither was measured (e.g. held-out figures of a structured model)."""
    return "-" if first is None and second is None else f"{num(first)} / {num(second)}"


def short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def gate(component: Mapping[str, Any]) -> str:
    verdict = "passed" if component["gatePassed"] else "failed"
    threshold = component.get("threshold")
    return f"{verdict} (>= {threshold:.2f})" if isinstance(threshold, int | float) else verdict


def codes(route: Mapping[str, Any]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in route["codes"].items()) or "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def to_markdown(report: Mapping[str, Any]) -> str:
    meta = report["meta"]
    verdict = "passed" if report["ok"] else "FAILED"
    out = [
        f"# ACGS pipeline report ({meta.get('startedAt', '')})",
        "",
        f"Result: **{verdict}** in {num(meta.get('wallSeconds'), 1)} s; profile `{meta.get('profile')}`, "
        f"namespace `{meta.get('namespace')}`, cluster {meta.get('cluster')}, constitution "
        f"`{meta.get('constitution')}` hash `{meta.get('constitutionHash')}`.",
        "",
    ]
    if report["failures"]:
        out += ["## Failures", ""] + [f"- {f['stage']}: {f['detail']}" for f in report["failures"]] + [""]
    out += ["## Stages", ""]
    out += _table(["stage", "state", "seconds", "detail"],
                  [[s["stage"], s["state"], num(s["seconds"], 1), s["detail"].replace("|", "/")]
                   for s in report["stages"]])
    out += ["", "## Components", ""]
    out += _table(
        ["component", "examples", "epochs", "accuracy", "macro F1", "held-out acc / F1", "compliance",
         "unsafe-approve", "over-refusal", "predictor p50 / p95 / p99 ms", "gate", "sha256", "train s"],
        [[c["component"], num(c["examples"], 0), num(c["epochs"], 0), num(c["accuracy"]), num(c["f1"]),
          pair(c["heldOutAccuracy"], c["heldOutF1"]), num(c["compliance"]),
          num(c["unsafeApproveRate"]), num(c["overRefusalRate"]),
          " / ".join(num(c[k], 2) for k in ("predictorP50Ms", "predictorP95Ms", "predictorP99Ms")),
          gate(c), short(c["sha256"]), num(c["trainSeconds"], 0)] for c in report["components"]],
    )
    out += ["", "Violations per principle (count of evaluated examples):", ""]
    principles = report["principles"]
    out += _table(["component", "evaluated", *principles],
                  [[c["component"], num(c["evaluatedExamples"], 0),
                    *[str(c["violations"].get(p, 0)) for p in principles]] for c in report["components"]])
    out += ["", "## Deployments", ""]
    out += _table(["deployment", "component", "phase", "url", "compliance", "minScore", "sha256", "signed by"],
                  [[d["modelDeployment"], d["component"], str(d["phase"]), str(d["url"]), num(d["complianceScore"]),
                    num(d["minScore"]), short(d["sha256"]), str(d.get("signedBy") or "unsigned")]
                   for d in report["deployments"]])
    out += ["", "## Routes", ""]
    out += _table(["route", "check", "expected", "status codes", "p50 ms", "p99 ms", "ok"],
                  [[r["route"], r["check"], str(r["expect"]), codes(r), num(r["p50Ms"], 2), num(r["p99Ms"], 2),
                    "yes" if r["ok"] else "NO"] for r in report["routes"]])
    if report.get("reevaluations"):
        meta = report["meta"]
        out += ["", "## Constitution edited: re-evaluated, not retrained", "",
                f"Hash {meta.get('constitutionHash')} -> {meta.get('amendedConstitutionHash')}: each deployment's "
                "model was judged again by an evaluation-only Ray job on its held-out requests under the new rules.",
                ""]
        out += _table(["deployment", "component", "phase", "compliance before", "after", "re-evaluation s",
                       "training s", "ratio", "edit -> Ready s"],
                      [[r["modelDeployment"], r["component"], str(r["phase"]), num(r["scoreBefore"]),
                        num(r["scoreAfter"]), num(r["reevaluationSeconds"], 1), num(r["trainSeconds"], 1),
                        num(r["ratio"], 3), num(r["changeToReadySeconds"], 1)] for r in report["reevaluations"]])
    out += ["", "## Plots", ""]
    written = report.get("plotsWritten", report["plots"])
    out += [f"![{title}]({name})" for name, title in PLOTS.items() if name in written]
    return "\n".join(out) + "\n"
