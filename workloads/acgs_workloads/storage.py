"""Torch-free access to artifact storage: local paths and pyarrow filesystem URIs.

The operator reads artifact metadata through this module (it never imports torch); the artifact
writer and loader build on it.
"""

from __future__ import annotations

import os
import re

import pyarrow.fs as pafs
from pydantic import ValidationError

from acgs_workloads.contract import (
    EVALUATIONS_DIR,
    HEX16,
    METADATA_FILE,
    ArtifactMetadata,
    EvaluationRecord,
    describe_validation_error,
)


class StorageError(Exception):
    """A location cannot be opened, read or written."""


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it for a local path or filesystem URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise StorageError(f"cannot open location {uri!r}: {exc}") from exc


def join_uri(root: str, *parts: str) -> str:
    """``root`` joined with ``parts`` by ``/`` (keeps the scheme of a URI)."""
    if "://" not in root:
        return os.path.join(os.path.abspath(root), *parts)
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0] if "://" in uri else os.path.dirname(uri)


def parent_path(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] or "/"


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    fs.create_dir(parent_path(path), recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as inp:
            return bytes(inp.read())
    except FileNotFoundError as exc:
        raise StorageError(f"{uri} does not exist") from exc


def is_directory(uri: str) -> bool:
    fs, path = resolve(uri)
    return bool(fs.get_file_info(path).type == pafs.FileType.Directory)


def weights_uri_of(uri: str) -> str:
    """The weights file for ``uri``: the file itself, or the one named in a model directory's metadata."""
    if is_directory(uri):
        return join_uri(uri, _metadata_at(join_uri(uri, METADATA_FILE)).weights.file)
    return uri


def read_metadata(uri: str) -> ArtifactMetadata:
    """The ``metadata.json`` next to the weights at ``uri`` (or inside the model directory ``uri``)."""
    return _metadata_at(join_uri(parent(weights_uri_of(uri)), METADATA_FILE))


def _metadata_at(location: str) -> ArtifactMetadata:
    try:
        return ArtifactMetadata.parse(read_bytes(location), location)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc


def evaluation_uri(model_uri: str, constitution_hash: str) -> str:
    """``<model dir>/evaluations/<constitution_hash>.json`` for the model at ``model_uri`` (its directory or
    weights file): where a re-evaluation under that Constitution is recorded."""
    if not re.fullmatch(HEX16, constitution_hash):
        raise ValueError(f"{constitution_hash!r} is not a constitution hash (16 lowercase hex characters)")
    return join_uri(parent(weights_uri_of(model_uri)), EVALUATIONS_DIR, f"{constitution_hash}.json")


def read_evaluation(model_uri: str, constitution_hash: str) -> EvaluationRecord | None:
    """The record of the model at ``model_uri`` re-evaluated under ``constitution_hash``, or None if it was not.

    A record that does not parse, or that names another hash than its file, is a :class:`StorageError`. The
    caller compares ``model_sha256`` with the weights it serves (the record is about those bytes only).
    """
    location = evaluation_uri(model_uri, constitution_hash)
    if not exists(location):
        return None
    try:
        record = EvaluationRecord.model_validate_json(read_bytes(location))
    except ValidationError as error:
        raise StorageError(
            f"{location} is not an ACGS evaluation record: {describe_validation_error(error)}") from error
    if record.constitution_hash != constitution_hash:
        raise StorageError(f"{location} records constitution {record.constitution_hash}, not {constitution_hash}")
    return record
