"""Model artifacts: weights + ``metadata.json`` under an artifact root, addressed by URI, verified by sha256.

The artifact root is a local path or a pyarrow filesystem URI (``file://``, ``s3://``, ``gs://``, ``hdfs://``).
A model lives at ``<root>/models/<name>/model.safetensors`` (or ``model.pt`` when safetensors is not
installed) next to its ``metadata.json``; :class:`~acgs_workloads.contract.ModelArtifact` ``uri`` names the
weights file and ``sha256`` is the digest of its bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import torch
from pydantic import BaseModel

from acgs_workloads.contract import ArtifactMetadata, ComplianceReport, ModelArtifact, TrainingMetrics, WeightsInfo
from acgs_workloads.storage import (  # re-exported: the training code reads and writes through these
    METADATA_FILE,
    StorageError,
    exists,
    join_uri,
    read_bytes,
    read_metadata,
    resolve,
    weights_uri_of,
    write_bytes,
)

__all__ = [
    "METADATA_FILE", "ArtifactDigestMismatch", "ArtifactError", "LoadedArtifact", "exists", "join_uri",
    "load_artifact", "read_bytes", "read_metadata", "resolve", "save_artifact", "sha256_bytes", "sha256_of",
    "weights_uri_of", "write_bytes",
]

_CHUNK = 1 << 20
ArtifactError: TypeAlias = StorageError  # an artifact that cannot be read or written is a storage error


class ArtifactDigestMismatch(ArtifactError):
    """The bytes at ``uri`` do not have the expected sha256: the artifact is refused."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"artifact {uri} has sha256 {actual}, expected {expected}; refusing to load it")
        self.uri = uri
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class LoadedArtifact:
    state_dict: dict[str, torch.Tensor]
    metadata: ArtifactMetadata
    artifact: ModelArtifact


# --------------------------------------------------------------------------- digests


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(uri: str) -> str:
    """The sha256 of the file at ``uri`` (streamed)."""
    fs, path = resolve(uri)
    digest = hashlib.sha256()
    try:
        with fs.open_input_stream(path) as inp:
            while chunk := inp.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact {uri} does not exist") from exc
    return digest.hexdigest()


# --------------------------------------------------------------------------- weights encoding


def _safetensors_available() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def encode_weights(state_dict: Mapping[str, torch.Tensor]) -> tuple[bytes, str]:
    """The bytes of ``state_dict`` and the file name they go to (safetensors if installed, else torch.save)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if _safetensors_available():
        from safetensors.torch import save

        return bytes(save(tensors)), "model.safetensors"
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue(), "model.pt"


def decode_weights(data: bytes, name: str) -> dict[str, torch.Tensor]:
    if name.endswith(".safetensors"):
        from safetensors.torch import load

        return dict(load(data))
    loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise ArtifactError(f"{name} does not hold a state dict")
    return loaded


# --------------------------------------------------------------------------- save / load


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def model_dir(artifact_root: str, name: str) -> str:
    """Where the model ``name`` (normally the run id) is stored under ``artifact_root``."""
    if not name or "/" in name or name in (".", ".."):
        raise ArtifactError(f"invalid artifact name {name!r}")
    return join_uri(artifact_root, "models", name)


def save_artifact(
    artifact_root: str,
    name: str,
    state_dict: Mapping[str, torch.Tensor],
    *,
    component: str,
    config: BaseModel | Mapping[str, Any] | None = None,
    constitution_hash: str,
    dataset_digest: str,
    metrics: TrainingMetrics | None = None,
    compliance: ComplianceReport | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ModelArtifact:
    """Write the weights and ``metadata.json`` under ``<artifact_root>/models/<name>/``; return the artifact."""
    data, file_name = encode_weights(state_dict)
    directory = model_dir(artifact_root, name)
    weights_uri = join_uri(directory, file_name)
    digest = sha256_bytes(data)
    write_bytes(weights_uri, data)
    metadata = ArtifactMetadata(
        component=component,
        config=_jsonable(config) if config is not None else None,
        constitution_hash=constitution_hash,
        dataset_digest=dataset_digest,
        metrics=metrics,
        compliance=compliance,
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        weights=WeightsInfo(file=file_name, sha256=digest, size_bytes=len(data), format=file_name.split(".")[-1]),
        extra=_jsonable(extra) if extra is not None else {},
    )
    write_bytes(join_uri(directory, METADATA_FILE), metadata.json_bytes())
    return ModelArtifact(uri=weights_uri, sha256=digest, size_bytes=len(data))


def load_artifact(uri: str, expected_sha256: str | None = None) -> LoadedArtifact:
    """Read the weights at ``uri`` and their metadata; refuse them if their sha256 is not ``expected_sha256``.

    Without ``expected_sha256`` the digest recorded in ``metadata.json`` is checked instead.
    """
    weights = weights_uri_of(uri)
    data = read_bytes(weights)
    actual = sha256_bytes(data)
    metadata = read_metadata(weights)
    expected = expected_sha256 or metadata.weights.sha256
    if expected.lower() != actual:
        raise ArtifactDigestMismatch(weights, expected.lower(), actual)
    name = weights.rstrip("/").rsplit("/", 1)[-1]
    state = decode_weights(data, name)
    return LoadedArtifact(state, metadata, ModelArtifact(uri=weights, sha256=actual, size_bytes=len(data)))
