"""Evaluation-only run of a trained model under a changed Constitution:
``python -m acgs_workloads.reevaluate --model-uri URI --constitution JSON [--min-compliance F]``.

When a Constitution changes, the operator runs this as a Ray job instead of retraining: the trained model at
``--model-uri`` (its directory or weights file, verified against the sha256 in its ``metadata.json``) is
evaluated on the same held-out requests its training run used (the split is regenerated from the run's
config, which ``metadata.json`` holds), labelled and judged under the new Constitution. The
:class:`~acgs_workloads.contract.EvaluationRecord` goes to ``<model dir>/evaluations/<new hash>.json`` and the
last stdout line is one :class:`~acgs_workloads.contract.EvaluationEvent`. Exits 0 once the record is written,
whatever the gates say (the operator's gate decides); 2 on a bad constitution or argument, 1 when the run
fails (no artifact, a digest mismatch, an artifact without its run's config).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import torch  # before the Rego engine: loading regopy first makes `import torch` abort
from pydantic import ValidationError

from acgs_workloads.contract import (
    ArtifactMetadata,
    ConstitutionSnapshot,
    EvaluationEvent,
    EvaluationRecord,
    TrainRunConfig,
    describe_validation_error,
    format_event,
)
from acgs_workloads.storage import StorageError, evaluation_uri
from acgs_workloads.train import EXIT_BAD_CONFIG, EXIT_FAILED, ConfigError, check_constitution, human, read_document

__all__ = ["EXIT_BAD_CONFIG", "EXIT_FAILED", "ReevaluationError", "main", "parse_constitution", "reevaluate",
           "rerun_config"]


class ReevaluationError(ValueError):
    """The artifact cannot be re-evaluated (no run config in its metadata, or one that no longer validates)."""


def parse_constitution(source: str) -> ConstitutionSnapshot:
    """A ConstitutionSnapshot from a JSON string or a JSON/YAML file path (:func:`reevaluate` checks that it
    compiles and that its hash is its principles')."""
    data = read_document(source, "--constitution")
    try:
        return ConstitutionSnapshot.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid constitution snapshot: {describe_validation_error(error)}") from error


def rerun_config(metadata: ArtifactMetadata, constitution: ConstitutionSnapshot,
                 min_compliance: float | None = None) -> TrainRunConfig:
    """The training run's config (from ``metadata.json``) under ``constitution``, with ``min_compliance`` as
    the compliance gate when given."""
    if not metadata.config:
        raise ReevaluationError("its metadata.json does not hold the training run's config, so its held-out split "
                                "cannot be regenerated; retrain it instead")
    data = dict(metadata.config)
    data["constitution"] = constitution.wire()
    try:
        cfg = TrainRunConfig.model_validate(data)
    except ValidationError as error:
        raise ReevaluationError(
            f"the training config in its metadata.json does not validate: {describe_validation_error(error)}"
        ) from error
    if cfg.component != metadata.component:
        raise ReevaluationError(f"its metadata says component {metadata.component} but its config {cfg.component}")
    if min_compliance is not None:
        gates = cfg.evaluation.gates.model_copy(update={"min_compliance": min_compliance})
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"gates": gates})})
    return cfg


def reevaluate(model_uri: str, constitution: ConstitutionSnapshot, *,
               min_compliance: float | None = None) -> EvaluationEvent:
    """Evaluate the model at ``model_uri`` on its training run's held-out split under ``constitution``; write
    the record to ``<model dir>/evaluations/<constitution.hash>.json`` and return its event.

    Raises :class:`~acgs_workloads.train.ConfigError` for a constitution that does not compile or whose hash is
    not its principles' (or a ``min_compliance`` outside [0, 1]), :class:`~acgs_workloads.storage.StorageError`
    for a missing or unreadable artifact (:class:`~acgs_workloads.artifacts.ArtifactDigestMismatch` when the
    weights are not the bytes ``metadata.json`` names) and :class:`ReevaluationError` for an artifact whose
    run cannot be reproduced.
    """
    from acgs_workloads.artifacts import load_artifact, write_bytes
    from acgs_workloads.components import get
    from acgs_workloads.components.base import dataset_digest
    from acgs_workloads.components.task import run_split
    from acgs_workloads.evaluation import evaluate_component

    check_constitution(constitution)
    if min_compliance is not None and not 0.0 <= min_compliance <= 1.0:
        raise ConfigError(f"--min-compliance {min_compliance} is not between 0 and 1")
    started = time.perf_counter()
    loaded = load_artifact(model_uri)
    metadata = loaded.metadata
    cfg = rerun_config(metadata, constitution, min_compliance)
    human(
        f"re-evaluating {loaded.artifact.uri} (sha256 {loaded.artifact.sha256}, {cfg.component}, run {cfg.run_id}) "
        f"trained under constitution {metadata.constitution_hash}, now under {constitution.name}@{constitution.hash}"
    )
    component = get(cfg.component)
    split_started = time.perf_counter()
    _, test = run_split(cfg)  # the same seeded requests; generated labels follow the new Constitution
    digest = dataset_digest(test)
    source = "generated" if cfg.dataset.generator is not None else f"read from {cfg.dataset.uri} (labels as stored)"
    human(f"held-out split: {len(test['label'])} test examples {source} in "
          f"{time.perf_counter() - split_started:.1f}s, digest {digest}")
    model = component.build_model(metadata.model_spec())
    model.load_state_dict(loaded.state_dict)
    model.eval()
    evaluation_started = time.perf_counter()
    with torch.no_grad():  # not torch.set_grad_enabled(False), as in train.run
        result = evaluate_component(component, model, cfg.model, test, cfg.constitution, cfg.evaluation.gates)
    m, c = result.metrics, result.compliance
    human(
        f"evaluated in {time.perf_counter() - evaluation_started:.1f}s: accuracy {m.accuracy:.4f} f1 {m.f1:.4f} "
        f"compliance {c.score:.4f} (threshold {c.threshold}, "
        f"was {metadata.compliance.score if metadata.compliance else '-'} under {metadata.constitution_hash}) "
        f"p99 {m.p99_latency_ms:.2f} ms, label agreement {result.label_agreement:.4f}"
    )
    for violation in c.violations:
        if violation.count:
            human(f"  {violation.principle}: {violation.count} violation(s)")
    human(f"gates {'passed' if result.gates.passed else 'FAILED: ' + '; '.join(result.gates.failures)}")
    record = EvaluationRecord(
        constitution_hash=constitution.hash,
        model_sha256=loaded.artifact.sha256,
        dataset_digest=digest,
        metrics=m,
        compliance=c,
        gates=result.gates,
        evaluated_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        seconds=round(time.perf_counter() - started, 3),
    )
    location = evaluation_uri(loaded.artifact.uri, constitution.hash)
    write_bytes(location, record.json_bytes())
    human(f"record {location}; total {record.seconds:.1f}s")
    return EvaluationEvent(record_uri=location, record=record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acgs_workloads.reevaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-uri", required=True, help="The model directory or weights file (path or URI)")
    parser.add_argument("--constitution", required=True,
                        help="ConstitutionSnapshot as a JSON string or a JSON/YAML file")
    parser.add_argument("--min-compliance", type=float, default=None,
                        help="The compliance gate (default: the training run's evaluation.gates.minCompliance)")
    args = parser.parse_args(argv)
    try:
        constitution = parse_constitution(args.constitution)
        event = reevaluate(args.model_uri, constitution, min_compliance=args.min_compliance)
    except ConfigError as error:
        print(f"acgs-reevaluate: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG
    except (StorageError, ValueError, KeyError, OSError) as error:  # ReevaluationError is a ValueError
        print(f"acgs-reevaluate: re-evaluation of {args.model_uri} failed: {error}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print(format_event(event), flush=True)
    return 0


if __name__ == "__main__":
    from acgs_workloads.entrypoint import exit_process

    exit_process(main())
