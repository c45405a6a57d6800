"""Evaluation-only runs (``python -m acgs_workloads.reevaluate``): a trained model judged again, on the same
held-out requests, under a changed Constitution, without training."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (before the Rego engine, see acgs_workloads.constitution.engine)

from acgs_workloads.artifacts import read_metadata
from acgs_workloads.components.task import run_split
from acgs_workloads.constitution import default_constitution
from acgs_workloads.constitution.hashing import constitution_hash
from acgs_workloads.contract import (
    EVALUATIONS_DIR,
    ConstitutionSnapshot,
    DatasetSpec,
    EvaluationEvent,
    EvaluationRecord,
    GeneratorSpec,
    ModelSpec,
    Principle,
    ResultEvent,
    TrainingMetrics,
    TrainingSpec,
    TrainRunConfig,
    parse_evaluation,
)
from acgs_workloads.reevaluate import EXIT_BAD_CONFIG, EXIT_FAILED, main, reevaluate, rerun_config
from acgs_workloads.storage import evaluation_uri, read_evaluation
from acgs_workloads.train import run

pytestmark = pytest.mark.unit

NO_AUTOMATION = """package acgs.no_automation

import rego.v1

violation contains msg if {
\tinput.decision in {"approve", "approve_with_safeguards"}
\tinput.request.automated
\tmsg := "automated request approved"
}
"""
# figures that are timings of this process, not properties of the model on its data
TIMINGS = {"loss", "samples_per_second", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"}


def stricter(base: ConstitutionSnapshot) -> ConstitutionSnapshot:
    principles = [*base.principles, Principle(id="no-automation", description="No automated approvals.",
                                              severity="critical", rego=NO_AUTOMATION)]
    return ConstitutionSnapshot(name="no-automation", hash=constitution_hash(principles), principles=principles)


@pytest.fixture(scope="module")
def base() -> ConstitutionSnapshot:
    return default_constitution()


@pytest.fixture(scope="module")
def strict(base: ConstitutionSnapshot) -> ConstitutionSnapshot:
    return stricter(base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base: ConstitutionSnapshot) -> tuple[ResultEvent, float]:
    """A tiny constitutional-ai model (1500 examples, 2 epochs, plain torch; it need not pass its gates)."""
    cfg = TrainRunConfig(
        run_id="reevaluate-base", component="constitutional-ai", constitution=base,
        artifact_root=str(tmp_path_factory.mktemp("reevaluate")), use_ray=False,
        dataset=DatasetSpec(generator=GeneratorSpec(examples=1500, seed=7)),
        training=TrainingSpec(epochs=2, seed=7), model=ModelSpec(hidden_size=32, layers=1),
    )
    started = time.perf_counter()
    event = run(cfg)
    return event, time.perf_counter() - started


@pytest.fixture(scope="module")
def same(trained: tuple[ResultEvent, float], base: ConstitutionSnapshot) -> tuple[EvaluationEvent, float]:
    started = time.perf_counter()
    event = reevaluate(trained[0].model.uri, base)
    return event, time.perf_counter() - started


@pytest.fixture(scope="module")
def changed(trained: tuple[ResultEvent, float], strict: ConstitutionSnapshot) -> tuple[EvaluationEvent, float]:
    started = time.perf_counter()
    event = reevaluate(str(Path(trained[0].model.uri).parent), strict)  # the model directory works as well
    return event, time.perf_counter() - started


def comparable(metrics: TrainingMetrics) -> dict[str, object]:
    return metrics.model_dump(exclude=TIMINGS)


def test_same_constitution_reproduces_the_training_runs_figures(
        trained: tuple[ResultEvent, float], same: tuple[EvaluationEvent, float], base: ConstitutionSnapshot) -> None:
    result, train_seconds = trained
    event, seconds = same
    record = event.record
    print(f"\ntraining run {train_seconds:.2f}s; re-evaluation under the same constitution {seconds:.2f}s "
          f"(record says {record.seconds:.2f}s)")
    assert record.constitution_hash == base.hash
    assert record.model_sha256 == result.model.sha256
    # same weights, same held-out requests and labels, same rules: every figure but the timings is identical
    assert record.compliance == result.compliance
    assert comparable(record.metrics) == comparable(result.metrics)
    assert record.metrics.loss is None and record.metrics.samples_per_second is None  # nothing was trained
    assert record.gates == result.gates
    assert record.evaluated_at.endswith("Z") and record.seconds > 0
    assert record.dataset_digest.startswith("sha256:")


def test_added_principle_lowers_the_score_and_counts_its_violations(
        trained: tuple[ResultEvent, float], same: tuple[EvaluationEvent, float],
        changed: tuple[EvaluationEvent, float], base: ConstitutionSnapshot, strict: ConstitutionSnapshot) -> None:
    train_seconds = trained[1]
    before, after = same[0].record, changed[0].record
    print(f"\ntraining run {train_seconds:.2f}s; re-evaluation under the changed constitution {changed[1]:.2f}s "
          f"(record says {after.seconds:.2f}s, {after.seconds / train_seconds:.0%} of training); compliance "
          f"{before.compliance.score} -> {after.compliance.score}")
    assert after.constitution_hash == strict.hash != base.hash
    assert after.compliance.constitution_hash == strict.hash
    assert after.model_sha256 == before.model_sha256
    counts = {v.principle: v.count for v in after.compliance.violations}
    old = {v.principle: v.count for v in before.compliance.violations}
    assert counts["no-automation"] > 0, "the model approves some automated requests"
    # the same predictions on the same requests: the old principles find exactly what they found before
    assert {k: v for k, v in counts.items() if k != "no-automation"} == old
    assert after.compliance.score < before.compliance.score
    assert after.compliance.evaluated_examples == before.compliance.evaluated_examples
    # only the labels follow the new rules, so the held-out data (and its digest) differ in labels alone
    assert after.dataset_digest != before.dataset_digest


def test_held_out_requests_are_the_training_runs(trained: tuple[ResultEvent, float],
                                                 strict: ConstitutionSnapshot) -> None:
    metadata = read_metadata(trained[0].model.uri)
    _, old = run_split(rerun_config(metadata, ConstitutionSnapshot.model_validate(
        (metadata.config or {})["constitution"])))
    _, new = run_split(rerun_config(metadata, strict))
    assert old.keys() == new.keys()
    for name in old.keys() - {"label"}:
        assert np.array_equal(old[name], new[name]), name
    automated = old["automated"].astype(bool)
    assert (new["label"][~automated] == old["label"][~automated]).all()
    assert (new["label"] != old["label"]).any()


def test_record_is_stored_next_to_the_weights(trained: tuple[ResultEvent, float],
                                              changed: tuple[EvaluationEvent, float],
                                              strict: ConstitutionSnapshot) -> None:
    event = changed[0]
    model_dir = Path(trained[0].model.uri).parent
    path = model_dir / EVALUATIONS_DIR / f"{strict.hash}.json"
    assert event.record_uri == str(path) == evaluation_uri(trained[0].model.uri, strict.hash)
    assert EvaluationRecord.model_validate_json(path.read_bytes()) == event.record
    assert read_evaluation(str(model_dir), strict.hash) == event.record
    assert read_evaluation(trained[0].model.uri, strict.hash) == event.record
    assert read_evaluation(str(model_dir), "0123456789abcdef") is None
    with pytest.raises(ValueError, match="not a constitution hash"):
        read_evaluation(str(model_dir), "../metadata")


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def model_copy(trained: tuple[ResultEvent, float], tmp_path: Path) -> Path:
    """A copy of the trained model's directory, so a test may change it."""
    return Path(shutil.copytree(Path(trained[0].model.uri).parent, tmp_path / "model"))


def test_main_prints_the_event_and_applies_min_compliance(model_copy: Path, strict: ConstitutionSnapshot,
                                                          tmp_path: Path) -> None:
    source = tmp_path / "constitution.yaml"
    source.write_text(json.dumps(strict.wire()), encoding="utf-8")
    code, out, err = cli(["--model-uri", str(model_copy), "--constitution", str(source), "--min-compliance", "0"])
    assert code == 0, err
    assert out.splitlines()[-1].startswith("ACGS_EVENT ")
    assert "[acgs] re-evaluating" in out
    event = parse_evaluation(out)
    assert event is not None and event.record.compliance.threshold == 0.0 and event.record.gates.passed
    assert read_evaluation(str(model_copy), strict.hash) == event.record


def test_main_refuses_a_constitution_whose_hash_is_not_its_principles(model_copy: Path,
                                                                        strict: ConstitutionSnapshot) -> None:
    wrong = strict.model_copy(update={"hash": "0123456789abcdef"})
    before = files(model_copy)
    code, out, err = cli(["--model-uri", str(model_copy), "--constitution", json.dumps(wrong.wire())])
    assert code == EXIT_BAD_CONFIG
    assert "does not match its principles" in err and strict.hash in err
    assert "ACGS_EVENT" not in out and files(model_copy) == before


def test_main_refuses_a_constitution_that_does_not_compile(model_copy: Path, strict: ConstitutionSnapshot) -> None:
    broken = [*strict.principles[:-1], strict.principles[-1].model_copy(update={"rego": "package x\n violation {"})]
    snapshot = ConstitutionSnapshot(name="broken", hash=constitution_hash(broken), principles=broken)
    code, _, err = cli(["--model-uri", str(model_copy), "--constitution", json.dumps(snapshot.wire())])
    assert code == EXIT_BAD_CONFIG and "does not compile" in err and "no-automation" in err


def test_main_fails_on_a_missing_or_altered_model(model_copy: Path, base: ConstitutionSnapshot,
                                                  tmp_path: Path) -> None:
    constitution = json.dumps(base.wire())
    code, out, err = cli(["--model-uri", str(tmp_path / "nowhere" / "model.pt"), "--constitution", constitution])
    assert code == EXIT_FAILED and "does not exist" in err and "ACGS_EVENT" not in out
    weights = model_copy / read_metadata(str(model_copy)).weights.file
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = files(model_copy)
    code, out, err = cli(["--model-uri", str(model_copy), "--constitution", constitution])
    assert code == EXIT_FAILED and "refusing to load it" in err and "ACGS_EVENT" not in out
    assert files(model_copy) == before


def test_main_fails_on_an_artifact_without_its_run_config(model_copy: Path, base: ConstitutionSnapshot) -> None:
    metadata = read_metadata(str(model_copy))
    (model_copy / "metadata.json").write_bytes(metadata.model_copy(update={"config": None}).json_bytes())
    code, _, err = cli(["--model-uri", str(model_copy), "--constitution", json.dumps(base.wire())])
    assert code == EXIT_FAILED and "training run's config" in err
