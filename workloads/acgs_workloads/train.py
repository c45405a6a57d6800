"""Entry point of a training run: ``python -m acgs_workloads.train --config <file or JSON>``.

Generates or loads the data, trains through the one training loop (Ray Train or plain torch), evaluates
on the held-out split, writes the artifact and prints one ``ResultEvent`` line for the operator (progress
events come from the training loop's rank 0). Exits 2 on a bad config, 1 when the run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch  # before the Rego engine: loading regopy first makes `import torch` abort
from pydantic import ValidationError

from acgs_workloads.constitution import compile_errors, constitution_hash
from acgs_workloads.contract import (
    ConstitutionSnapshot,
    Progress,
    ResultEvent,
    TrainRunConfig,
    format_event,
)

EXIT_BAD_CONFIG = 2
EXIT_FAILED = 1


class ConfigError(ValueError):
    """The run's configuration is unusable; the message names what is wrong."""


def read_document(source: str, flag: str) -> Any:
    """A JSON string, or the JSON/YAML file at path ``source`` (``flag`` names the option in errors)."""
    text = source
    if not source.lstrip().startswith("{"):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{flag}: {source!r} is neither a JSON object nor a readable file")
        text = path.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as error:
        raise ConfigError(f"{flag} is not valid JSON/YAML: {error}") from error


def check_constitution(constitution: ConstitutionSnapshot) -> None:
    """Every principle compiles in the real engine and ``hash`` is the hash of the principles."""
    if not constitution.principles:
        raise ConfigError("constitution has no principles")
    errors = compile_errors(constitution.principles)
    if errors:
        raise ConfigError("constitution does not compile: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    actual = constitution_hash(constitution.principles)
    if actual != constitution.hash:
        raise ConfigError(f"constitution.hash {constitution.hash} does not match its principles ({actual})")


def parse_config(source: str) -> TrainRunConfig:
    """A TrainRunConfig from a JSON/YAML file path or a JSON string, with its constitution checked."""
    data = read_document(source, "--config")
    try:
        cfg = TrainRunConfig.model_validate(data)
    except ValidationError as error:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        raise ConfigError("invalid training config:\n" + "\n".join(lines)) from error
    check_constitution(cfg.constitution)
    if cfg.component in ("transformer-efficiency", "wina-optimization"):
        from acgs_workloads.components.tokens import MIN_LENGTH

        if cfg.model.sequence_length < MIN_LENGTH:
            raise ConfigError(f"model.sequenceLength must be at least {MIN_LENGTH} for {cfg.component}")
    return cfg


def human(line: str) -> None:
    print(f"[acgs] {line}", flush=True)


def progress_line(progress: Progress) -> None:
    loss = "-" if progress.loss is None else f"{progress.loss:.4f}"
    human(f"epoch {progress.epoch}/{progress.total_epochs} step {progress.step} {progress.percent:5.1f}% loss {loss}")


def run(cfg: TrainRunConfig) -> ResultEvent:
    """Train, evaluate, store the artifact; return the result event."""

    from acgs_workloads.artifacts import save_artifact
    from acgs_workloads.components import get
    from acgs_workloads.components.base import dataset_digest
    from acgs_workloads.components.task import build_task, run_split
    from acgs_workloads.evaluation import evaluate_component
    from acgs_workloads.training import run_training

    started = time.perf_counter()
    component = get(cfg.component)
    train, test = run_split(cfg)
    digest = dataset_digest({**train, **{f"test:{k}": v for k, v in test.items()}})
    human(
        f"run {cfg.run_id}: {cfg.component}, {len(train['label'])} train / {len(test['label'])} test examples, "
        f"{'Ray Train' if cfg.use_ray else 'plain torch'} with {cfg.resources.workers} worker(s), "
        f"constitution {cfg.constitution.name}@{cfg.constitution.hash}"
    )
    outcome = run_training(build_task, cfg, on_progress=progress_line)
    human(
        f"trained in {outcome.wall_seconds:.1f}s: final loss {outcome.final_loss:.4f}, "
        f"{outcome.samples_per_second:.0f} samples/s, restarts {outcome.restarts}"
    )
    model = component.build_model(cfg.model)
    model.load_state_dict(outcome.state_dict)
    model.eval()
    with torch.no_grad():  # not torch.set_grad_enabled(False): a later run in this process must train
        result = evaluate_component(
            component,
            model,
            cfg.model,
            test,
            cfg.constitution,
            cfg.evaluation.gates,
            loss=round(outcome.final_loss, 6),
            samples_per_second=round(outcome.samples_per_second, 3),
        )
    extra: dict[str, Any] = {
        "labelAgreement": result.label_agreement,
        "latency": {
            "p50Ms": result.latency.p50_ms,
            "p99Ms": result.latency.p99_ms,
            "throughputRps": result.latency.throughput_rps,
            "requests": result.latency.requests,
        },
        "lossCurve": outcome.loss_curve,
        "restarts": outcome.restarts,
        "trainWallSeconds": outcome.wall_seconds,
        "mixedPrecision": outcome.mixed_precision,
        "component": result.extra,
        "gates": result.gates.wire(),
    }
    if cfg.component in ("transformer-efficiency", "wina-optimization"):
        # the requests' tokens (the test split's mean), not their padding: the model cuts all-padding columns
        per_request = float(result.extra.get("tokensPerRequest", cfg.model.sequence_length))
        extra["trainTokensPerSecond"] = outcome.samples_per_second * per_request
    artifact = save_artifact(
        cfg.artifact_root,
        cfg.run_id,
        outcome.state_dict,
        component=cfg.component,
        config=cfg,
        constitution_hash=cfg.constitution.hash,
        dataset_digest=digest,
        metrics=result.metrics,
        compliance=result.compliance,
        extra=extra,
    )
    m, c = result.metrics, result.compliance
    human(
        f"evaluated: accuracy {m.accuracy:.4f} f1 {m.f1:.4f} compliance {c.score:.4f} "
        f"(threshold {c.threshold}) p99 {m.p99_latency_ms:.2f} ms, label agreement {result.label_agreement:.4f}"
    )
    for key, value in result.extra.items():
        human(f"  {key}: {json.dumps(value) if not isinstance(value, float) else round(value, 4)}")
    human(f"gates {'passed' if result.gates.passed else 'FAILED: ' + '; '.join(result.gates.failures)}")
    human(
        f"artifact {artifact.uri} sha256 {artifact.sha256} ({artifact.size_bytes} bytes); "
        f"total {time.perf_counter() - started:.1f}s"
    )
    return ResultEvent(metrics=m, compliance=c, model=artifact, gates=result.gates, restarts=outcome.restarts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acgs_workloads.train", description=__doc__)
    parser.add_argument("--config", required=True, help="TrainRunConfig as a JSON string or a JSON/YAML file")
    args = parser.parse_args(argv)
    try:
        cfg = parse_config(args.config)
    except ConfigError as error:
        print(f"acgs-train: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG
    try:
        event = run(cfg)
    except (ValueError, KeyError) as error:
        print(f"acgs-train: run {cfg.run_id} failed: {error}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(format_event(event), flush=True)
    return 0


if __name__ == "__main__":
    from acgs_workloads.entrypoint import exit_process

    exit_process(main())
