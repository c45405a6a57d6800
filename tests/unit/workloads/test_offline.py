"""Offline models (``acgs model train`` / ``acgs model predict``): a tiny model trained in plain torch answers
JSON lines with the rows and refusals of the model server's ``POST /predict``."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from acgs_operator import cli
from acgs_workloads.artifacts import read_metadata
from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import ConstitutionSnapshot, ModelSpec, ResultEvent
from acgs_workloads.offline import OfflineError, OfflinePredictor, predict_lines, train_offline
from acgs_workloads.serving.api import create_model_api

pytestmark = pytest.mark.unit

DOCUMENTED = "cdd01ef066bc6cf2"  # the default constitution's declared alias, what README clients send
ETHICAL_DILEMMA = {
    "scenario": "ethical_dilemma",
    "context": {"user_role": "employee", "data_type": "personal"},
    "user_request": "Access to customer data for analysis",
    "constitutional_principles": ["privacy", "transparency", "accountability"],
    "constitutional_hash": DOCUMENTED,
}
POLICY = {
    "policy_type": "data_protection",
    "framework": "GDPR",
    "scope": "organization",
    "context": "Employee data access policy",
    "constitutional_hash": DOCUMENTED,
}
TINY = ModelSpec(hidden_size=16, layers=1)


@pytest.fixture(scope="module")
def constitution() -> ConstitutionSnapshot:
    return default_constitution()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, constitution: ConstitutionSnapshot) -> ResultEvent:
    """A tiny constitutional-ai model (600 examples, one epoch: it need not pass its gates)."""
    return train_offline("constitutional-ai", tmp_path_factory.mktemp("offline"), 600, 1, 7, constitution,
                         model=TINY)


@pytest.fixture(scope="module")
def model_dir(trained: ResultEvent) -> str:
    return str(Path(trained.model.uri).parent)


def line(body: Any) -> str:
    return json.dumps(body)


def answers(model: str, lines: list[str], constitution: ConstitutionSnapshot, **kwargs: Any) -> list[dict[str, Any]]:
    return [json.loads(out) for out in predict_lines(model, lines, constitution, **kwargs)]


def test_train_offline_writes_an_artifact_evaluated_under_the_constitution(
        trained: ResultEvent, model_dir: str, constitution: ConstitutionSnapshot) -> None:
    assert Path(model_dir).name == "constitutional-ai-offline"
    meta = read_metadata(model_dir)
    assert meta.component == "constitutional-ai" and meta.constitution_hash == constitution.hash
    assert meta.weights.sha256 == trained.model.sha256
    assert trained.compliance.constitution_hash == constitution.hash
    assert trained.metrics.accuracy is not None and 0.0 <= trained.metrics.accuracy <= 1.0
    assert meta.config is not None and meta.config["useRay"] is False
    assert meta.config["dataset"]["generator"] == {"examples": 600, "seed": 7}


def test_train_offline_refuses_unusable_arguments(tmp_path: Path, constitution: ConstitutionSnapshot) -> None:
    with pytest.raises(OfflineError, match="examples"):
        train_offline("constitutional-ai", tmp_path, 3, 1, 7, constitution, model=TINY)
    assert not (tmp_path / "models").exists()


def test_the_documented_body_answers_a_row(model_dir: str, constitution: ConstitutionSnapshot) -> None:
    [row] = answers(model_dir, [line(ETHICAL_DILEMMA)], constitution)
    assert "error" not in row
    assert row["decision"] in {"approve", "approve_with_safeguards", "escalate", "deny"}
    assert row["reasoning"] and 0.0 <= row["compliance_score"] <= 1.0
    assert row["constitutional_hash"] == constitution.hash, "every answer carries the current hash"
    assert row["matched_hash"] == DOCUMENTED
    assert row["guard"] is not None


def test_refused_lines_are_error_lines_and_the_stream_goes_on(model_dir: str,
                                                              constitution: ConstitutionSnapshot) -> None:
    lines = [
        line({**ETHICAL_DILEMMA, "constitutional_hash": "0000000000000000"}),  # 1
        "{not json",  # 2
        "",  # 3: skipped
        "   ",  # 4: skipped
        line({**ETHICAL_DILEMMA, "constitutional_principles": ["privacy", "no-such-principle"]}),  # 5
        line({"scenario": "no hash", "user_request": "anything"}),  # 6
        line({**ETHICAL_DILEMMA, "constitutional_hash": constitution.hash}),  # 7
    ]
    out = answers(model_dir, lines, constitution, batch_size=2)
    assert [a.get("line") for a in out] == [1, 2, 5, 6, None]
    mismatch, malformed, unknown, invalid, served = out
    assert mismatch["error"]["status"] == 409 and mismatch["error"]["reason"] == "constitution_mismatch"
    assert mismatch["error"]["body"]["requested_hash"] == "0000000000000000"
    assert mismatch["error"]["body"]["hash_aliases"] == [DOCUMENTED]
    assert malformed["error"]["status"] == 422 and malformed["error"]["reason"] == "invalid_request"  # as the route
    assert unknown["error"]["status"] == 422 and "no-such-principle" in unknown["error"]["message"]
    assert invalid["error"]["status"] == 422 and "body.constitutional_hash" in invalid["error"]["message"]
    assert served["matched_hash"] == served["constitutional_hash"] == constitution.hash
    for refused in (mismatch, malformed, unknown, invalid):
        assert refused["error"]["body"]["constitutional_hash"] == constitution.hash


def test_answers_are_the_bodies_of_the_http_route(model_dir: str, constitution: ConstitutionSnapshot) -> None:
    predictor = OfflinePredictor.open(model_dir, constitution)
    bodies = [ETHICAL_DILEMMA, {**ETHICAL_DILEMMA, "constitutional_hash": "0000000000000000"},
              {**ETHICAL_DILEMMA, "constitutional_principles": ["nope"]}]
    offline = [json.loads(a.text) for a in predictor.answer([line(b) for b in bodies])]
    with TestClient(create_model_api(predictor.service)) as client:
        for body, answer in zip(bodies, offline, strict=True):
            r = client.post("/predict", json=body)
            if r.status_code == 200:
                assert answer == r.json()
            else:
                assert answer["error"]["status"] == r.status_code and answer["error"]["body"] == r.json()


def test_without_the_guard_the_model_answers_alone(model_dir: str, constitution: ConstitutionSnapshot) -> None:
    [row] = answers(model_dir, [line(ETHICAL_DILEMMA)], constitution, guard=False)
    assert row["guard"] is None and row["matched_hash"] == DOCUMENTED


def other_constitution(path: Path, constitution: ConstitutionSnapshot) -> Path:
    """A Constitution manifest without the last principle of ``constitution`` (so another hash)."""
    manifest = {"apiVersion": "acgs.io/v1alpha1", "kind": "Constitution", "metadata": {"name": "smaller"},
                "spec": {"principles": [p.wire() for p in constitution.principles[:-1]]}}
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


def test_a_model_evaluated_under_another_constitution_is_refused(
        tmp_path: Path, model_dir: str, constitution: ConstitutionSnapshot,
        capsys: pytest.CaptureFixture[str]) -> None:
    from acgs_workloads.offline import constitution_from

    other = constitution_from(other_constitution(tmp_path / "smaller.yaml", constitution))
    assert other.hash != constitution.hash
    with pytest.raises(OfflineError, match=f"evaluated under constitution {constitution.hash}"):
        predict_lines(model_dir, [line(ETHICAL_DILEMMA)], other)
    requests = tmp_path / "requests.jsonl"
    requests.write_text(line(ETHICAL_DILEMMA) + "\n", encoding="utf-8")
    argv = ["model", "predict", model_dir, str(requests), "--constitution", str(tmp_path / "smaller.yaml")]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--constitution" in captured.err


def test_cli_predict_reads_a_file_and_writes_json_lines(tmp_path: Path, model_dir: str, trained: ResultEvent,
                                                        constitution: ConstitutionSnapshot,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(f"{line(ETHICAL_DILEMMA)}\n\n{line(ETHICAL_DILEMMA)}\n", encoding="utf-8")
    assert cli.main(["model", "predict", model_dir, str(good)]) == 0
    rows = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["matched_hash"] == DOCUMENTED for r in rows)

    # the artifact root of `acgs model train --out` names its one model; a bad line makes the exit code 1
    root = str(Path(model_dir).parent.parent)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(f"{line(ETHICAL_DILEMMA)}\n{{not json\n".encode() + b'{"scenario": "\xff"}\n')
    assert cli.main(["model", "predict", root, str(bad), "--batch-size", "1"]) == 1
    captured = capsys.readouterr()
    first, second, third = (json.loads(out) for out in captured.out.splitlines())
    assert first["constitutional_hash"] == constitution.hash
    assert (second["line"], second["error"]["status"]) == (2, 422)
    assert (third["line"], third["error"]["status"]) == (3, 422), "a line that is not UTF-8 is not JSON"
    assert "2 request(s)" in captured.err


def test_cli_predict_reads_stdin(monkeypatch: pytest.MonkeyPatch, model_dir: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(f"{line(ETHICAL_DILEMMA)}\n".encode()), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(["model", "predict", model_dir, "-", "--no-guard"]) == 0
    [row] = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
    assert row["guard"] is None


def test_cli_predict_refuses_a_missing_model_or_input(tmp_path: Path, model_dir: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["model", "predict", str(tmp_path / "nothing"), "-"]) == 2
    assert "no model at" in capsys.readouterr().err
    assert cli.main(["model", "predict", model_dir, str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl" in capsys.readouterr().err


def test_cli_train_and_predict_policy_governance(tmp_path: Path, constitution: ConstitutionSnapshot) -> None:
    """The documented policy-governance body, on a tiny model trained through ``acgs model train``."""
    argv = ["model", "train", "--component", "policy-governance", "--out", str(tmp_path), "--examples", "600",
            "--epochs", "1", "--hidden-size", "16"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(argv)
    summary = printed.getvalue()
    assert code == (0 if "gates       passed" in summary else 1)
    assert f"under {constitution.name}@{constitution.hash}" in summary and "sha256" in summary
    [row] = answers(str(tmp_path), [line(POLICY)], constitution)
    assert "error" not in row, row
    assert row["opa_rule"] and row["governance_decision"]["decision"]
    assert row["constitutional_hash"] == constitution.hash and row["matched_hash"] == DOCUMENTED
