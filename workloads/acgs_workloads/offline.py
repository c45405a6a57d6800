"""Offline models: train one component on this machine and answer JSON lines with it, without Kubernetes or Ray.

What ``acgs model train`` and ``acgs model predict`` run (like ``mlflow models predict``):

- :func:`train_offline` builds a :class:`~acgs_workloads.contract.TrainRunConfig` (``use_ray=False``), checks
  it like ``python -m acgs_workloads.train`` does (:func:`~acgs_workloads.train.parse_config`) and runs the same
  training loop, evaluation and artifact writer (:func:`~acgs_workloads.train.run`).
- :func:`predict_lines` answers one JSON request per line through the model server's own request pipeline
  (:class:`~acgs_workloads.serving.service.ModelService`: artifact checks, hash and alias check, principle
  check, batched inference with the runtime guard). A served request answers the row ``POST /predict`` returns;
  a refused or invalid one answers ``{"error": {"status", "reason", "message", "body"}, "line": n}`` rendered
  by the model server's one error table (:func:`~acgs_workloads.serving.errors.error_response`), where ``body``
  is the HTTP answer's JSON body. A bad line never stops the stream.

A model or constitution that cannot be used raises :class:`OfflineError` before the first line is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch  # noqa: F401  (before the Rego engine: loading regopy first makes `import torch` abort)
import yaml
from pydantic import ValidationError

from acgs_workloads.constitution import compile_errors, load_constitution
from acgs_workloads.contract import (
    METADATA_FILE,
    ConstitutionSnapshot,
    ModelAppArgs,
    ModelSpec,
    ResultEvent,
    TrainRunConfig,
    describe_validation_error,
)
from acgs_workloads.serving.errors import (
    BodyTooLarge,
    InvalidRequest,
    ModelLoadError,
    ServingError,
    error_response,
)
from acgs_workloads.serving.service import MATCHED_HASH, ModelService
from acgs_workloads.storage import StorageError, exists, is_directory, join_uri, read_metadata, resolve
from acgs_workloads.train import ConfigError, parse_config, run

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Answer",
    "OfflineError",
    "OfflinePredictor",
    "constitution_from",
    "offline_run_id",
    "predict_lines",
    "resolve_model_uri",
    "train_offline",
]

DEFAULT_BATCH_SIZE = 64
"""Lines answered by one forward pass when reading a file (``acgs model predict --batch-size``)."""


class OfflineError(ValueError):
    """The model, the constitution or the training arguments cannot be used; the message says why."""


# --------------------------------------------------------------------------- constitution


def constitution_from(path: str | Path | None) -> ConstitutionSnapshot:
    """The constitution in the Constitution manifest (YAML or JSON) at ``path``; the packaged default when
    ``path`` is None. :class:`OfflineError` when the file cannot be read, is no Constitution or does not compile."""
    if path is None:
        from acgs_workloads.constitution import default_constitution

        return default_constitution()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise OfflineError(f"--constitution {path}: {error.strerror or error}") from error
    try:
        # always parsed as text: load_constitution reads a one-line argument ending in .yaml as a file name
        constitution = load_constitution(text if "\n" in text else text + "\n")
    except (ValueError, TypeError, AttributeError, KeyError, yaml.YAMLError) as error:
        raise OfflineError(f"--constitution {path} is not a Constitution manifest: {error}") from error
    errors = compile_errors(constitution.principles)
    if errors:
        raise OfflineError(f"--constitution {path} does not compile: "
                           + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return constitution


# --------------------------------------------------------------------------- training


def offline_run_id(component: str) -> str:
    """The run id, and so the artifact directory ``<out>/models/<run id>``, of an offline run of ``component``."""
    return f"{component}-offline"


def train_offline(
    component: str,
    out: Path,
    examples: int,
    epochs: int,
    seed: int,
    constitution: ConstitutionSnapshot,
    *,
    model: ModelSpec | None = None,
) -> ResultEvent:
    """Train ``component`` on ``examples`` generated examples for ``epochs`` in plain torch, evaluate it under
    ``constitution`` and write the artifact to ``<out>/models/<component>-offline/``; return the result event
    (``.model.uri``, ``.model.sha256``, ``.metrics``, ``.compliance``, ``.gates``).

    The run is the one a TrainingJob runs (same checks, loop, evaluation and artifact); ``seed`` seeds both
    the generator and the training. ``model`` overrides the default sizes. :class:`OfflineError` names an
    unusable argument; a failing run raises what :func:`acgs_workloads.train.run` raises."""
    wire: dict[str, Any] = {
        "runId": offline_run_id(component),
        "component": component,
        "constitution": constitution.wire(),
        "dataset": {"generator": {"examples": examples, "seed": seed}},
        "training": {"epochs": epochs, "seed": seed},
        "artifactRoot": str(out),
        "useRay": False,
    }
    if model is not None:
        wire["model"] = model.wire()
    try:  # the same checks as `python -m acgs_workloads.train --config` (fields, Rego, hash, sizes)
        cfg: TrainRunConfig = parse_config(json.dumps(wire))
    except ConfigError as error:
        raise OfflineError(str(error)) from error
    return run(cfg)


# --------------------------------------------------------------------------- prediction


def resolve_model_uri(location: str) -> str:
    """The model directory (or weights file) at ``location``. An artifact root holding exactly one model under
    ``models/`` (the ``--out`` of ``acgs model train``) names that model. :class:`OfflineError` otherwise."""
    try:
        if not exists(location):
            raise OfflineError(f"no model at {location}")
        if not is_directory(location) or exists(join_uri(location, METADATA_FILE)):
            return location
        models = join_uri(location, "models")
        if is_directory(models):
            import pyarrow.fs as pafs

            fs, path = resolve(models)
            found = sorted(
                info.base_name for info in fs.get_file_info(pafs.FileSelector(path))
                if info.type == pafs.FileType.Directory and exists(join_uri(models, info.base_name, METADATA_FILE))
            )
            if len(found) == 1:
                return join_uri(models, found[0])
            if found:
                raise OfflineError(f"{location} holds {len(found)} models ({', '.join(found)}); name one: "
                                   f"{join_uri(models, found[0])}")
    except StorageError as error:
        raise OfflineError(str(error)) from error
    raise OfflineError(f"{location} is no model directory (no {METADATA_FILE}) and holds no model under models/")


@dataclass(frozen=True)
class Answer:
    """The answer to input line ``line`` (1-based): the served ``row`` or the ``error`` object."""

    line: int
    row: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def wire(self) -> dict[str, Any]:
        """The output object: the row itself, or ``{"error": ..., "line": n}``."""
        if self.row is not None:
            return self.row
        return {"error": self.error, "line": self.line}

    @cached_property
    def text(self) -> str:
        """One output line (no newline), encoded like the model server's JSON responses (no NaN)."""
        return json.dumps(self.wire(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class OfflinePredictor:
    """A :class:`ModelService` for one artifact under one constitution, fed from lines instead of HTTP."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    @classmethod
    def open(cls, model: str, constitution: ConstitutionSnapshot, guard: bool = True) -> OfflinePredictor:
        """Load the model at ``model`` (a model directory, weights file or single-model artifact root; its
        sha256 verified against its metadata) to be served under ``constitution``, with the runtime guard
        unless ``guard`` is False. :class:`OfflineError` when it cannot be served under ``constitution``."""
        uri = resolve_model_uri(model)
        try:
            meta = read_metadata(uri)
        except StorageError as error:
            raise OfflineError(f"cannot read the model at {uri}: {error}") from error
        if meta.constitution_hash != constitution.hash:
            raise OfflineError(
                f"the model at {uri} was evaluated under constitution {meta.constitution_hash or '<none>'}, not "
                f"{constitution.name}@{constitution.hash}: pass the constitution it was trained under with "
                "--constitution FILE, or train it again under this one"
            )
        try:
            args = ModelAppArgs.model_validate({
                "deployment": f"offline/{meta.component}",
                "component": meta.component,
                "model_uri": uri,
                "model_sha256": meta.weights.sha256,
                "constitution": constitution,
                "runtime_guard": guard,
            })
        except ValidationError as error:
            raise OfflineError(f"the model at {uri} cannot be served: {describe_validation_error(error)}") from error
        try:
            return cls(ModelService.from_args(args))
        except (ModelLoadError, StorageError, KeyError) as error:
            raise OfflineError(f"cannot load the model at {uri}: {error}") from error

    @property
    def served_hash(self) -> str:
        return self.service.constitution_hash

    def refusal(self, line: int, error: ServingError) -> Answer:
        """The error answer of ``error`` for input line ``line``, rendered by the model server's error table."""
        status, body, _ = error_response(error, self.served_hash)
        return Answer(line, error={"status": status, "reason": error.reason, "message": str(error), "body": body})

    def internal_error(self, line: int, error: Exception) -> Answer:
        """What the model server answers (500) when predicting raised ``error``."""
        return self.refusal(line, ServingError(f"internal error: {type(error).__name__}: {error}"))

    def admit(self, line: str | bytes) -> tuple[Any, str]:
        """The validated request of one line and the hash it matched, in the order of the HTTP route: body size
        (413), UTF-8 and JSON (422 json_invalid, as FastAPI), fields (422), constitution hash (409), principles
        (422). Raises :class:`ServingError`."""
        size = len(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"))
        if size > self.service.args.max_body_bytes:
            raise BodyTooLarge(str(size), self.service.args.max_body_bytes)
        try:
            body = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
        except (ValueError, RecursionError) as error:  # as FastAPI answers a body that is not JSON: 422 json_invalid
            raise InvalidRequest([{"type": "json_invalid", "loc": ("body", 0),
                                   "msg": f"JSON decode error: {error}"}]) from error
        try:
            request = self.service.model.validate(body)
        except ValidationError as error:  # located in the body, as FastAPI reports them
            raise InvalidRequest([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from error
        matched = self.service.check_hash(request)
        self.service.check_principles(request)
        return request, matched

    def answer(self, lines: Iterable[str | bytes], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Answer]:
        """One answer per non-blank line of ``lines`` (text, or bytes as read from a binary file), in order;
        ``batch_size`` admitted lines share a forward pass (1 answers each line as soon as it is read)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        chunk: list[tuple[int, str | bytes]] = []
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text:
                continue
            chunk.append((number, text))
            if len(chunk) >= batch_size:
                yield from self._answer_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._answer_chunk(chunk)

    def _answer_chunk(self, chunk: list[tuple[int, str | bytes]]) -> list[Answer]:
        answers: dict[int, Answer] = {}
        admitted: list[tuple[int, Any, str]] = []
        for number, text in chunk:
            try:
                request, matched = self.admit(text)
            except ServingError as error:
                answers[number] = self.refusal(number, error)
            except Exception as error:  # never stop the stream on one line
                answers[number] = self.internal_error(number, error)
            else:
                admitted.append((number, request, matched))
        try:
            results = self.service.predict_batch([request for _, request, _ in admitted])
        except Exception:  # one request broke the batch: answer each alone, so only that one fails
            results = [self._predict_one(request) for _, request, _ in admitted]
        for (number, _, matched), result in zip(admitted, results, strict=True):
            if isinstance(result, ServingError):
                answers[number] = self.refusal(number, result)
            elif isinstance(result, Exception):
                answers[number] = self.internal_error(number, result)
            else:
                answers[number] = self._served(number, {**result, MATCHED_HASH: matched})
        return [answers[number] for number, _ in chunk]

    def _predict_one(self, request: Any) -> dict[str, Any] | Exception:
        try:
            return self.service.predict_batch([request])[0]
        except Exception as error:
            return error

    def _served(self, line: int, row: dict[str, Any]) -> Answer:
        answer = Answer(line, row=row)
        try:
            answer.text  # noqa: B018  (encoded once, here: a row that cannot be encoded is answered 500)
        except (TypeError, ValueError) as error:  # not JSON-encodable (NaN): the server answers 500 too
            return self.internal_error(line, error)
        return answer


def predict_lines(
    model_dir_or_uri: str,
    lines: Iterable[str | bytes],
    constitution: ConstitutionSnapshot,
    guard: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[str]:
    """One JSON line (no newline) per non-blank line of ``lines``: the row ``POST /predict`` of a model server of
    the model at ``model_dir_or_uri`` under ``constitution`` would answer, or ``{"error": ..., "line": n}``.

    The model is loaded here, before the first line is read: :class:`OfflineError` when it cannot be served
    under ``constitution``."""
    predictor = OfflinePredictor.open(model_dir_or_uri, constitution, guard)
    return (answer.text for answer in predictor.answer(lines, batch_size))
