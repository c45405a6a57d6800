"""The arguments the operator passes to ``build_app`` (Serve config ``args``), validated on the wire.

The operator builds one Serve application per ModelDeployment; its ``args`` are exactly
:class:`ModelAppArgs` in camelCase. Unknown fields are refused so a drifting operator fails loudly.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from acgs_workloads.config import COMPONENTS, CamelModel, Component, ConstitutionSnapshot

HEX64 = r"^[0-9a-f]{64}$"
DEFAULT_MAX_BODY_BYTES = 1_048_576


class BatchingArgs(CamelModel):
    """``@serve.batch`` settings (mirrors the ModelDeployment's ``spec.batching``)."""

    max_batch_size: int = Field(default=8, ge=1, le=1024)
    batch_wait_timeout_ms: float = Field(default=2.0, ge=0.0, le=10_000.0)

    @property
    def batch_wait_timeout_s(self) -> float:
        return self.batch_wait_timeout_ms / 1000.0


class ModelAppArgs(CamelModel):
    """Everything a ModelServer replica needs; it runs in a fresh Ray worker and reads nothing else."""

    deployment: str = Field(
        min_length=3, max_length=317, pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$",
        description="namespace/name of the ModelDeployment.",
    )
    component: Component
    model_uri: str = Field(min_length=1, max_length=2048, description="Artifact directory (or weights file) URI.")
    model_sha256: str = Field(pattern=HEX64, description="Expected sha256 of the artifact's weights.")
    constitution: ConstitutionSnapshot
    runtime_guard: bool = True
    batching: BatchingArgs | None = None
    api_key_sha256: str | None = Field(default=None, pattern=HEX64, description="sha256 (hex) of the API key.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=64 * 1024 * 1024)

    @property
    def constitution_hash(self) -> str:
        return self.constitution.hash


class PlatformArgs(CamelModel):
    """Arguments of the platform application (none are needed today)."""


class InvalidAppArgs(ValueError):
    """The Serve config ``args`` do not validate; the message names every bad field."""


def describe_validation_error(error: ValidationError) -> str:
    """``field.path: message`` for each error, joined by ``; ``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "<args>"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_model_args(args: dict[str, Any] | ModelAppArgs) -> ModelAppArgs:
    """Validate ``args`` (camelCase or snake_case); raise :class:`InvalidAppArgs` naming the fields."""
    if isinstance(args, ModelAppArgs):
        return args
    try:
        return ModelAppArgs.model_validate(args)
    except ValidationError as error:
        raise InvalidAppArgs(f"invalid ACGS model application args: {describe_validation_error(error)}") from error


def parse_platform_args(args: dict[str, Any] | None) -> PlatformArgs:
    try:
        return PlatformArgs.model_validate(args or {})
    except ValidationError as error:
        raise InvalidAppArgs(f"invalid ACGS platform args: {describe_validation_error(error)}") from error


__all__ = [
    "COMPONENTS",
    "BatchingArgs",
    "InvalidAppArgs",
    "ModelAppArgs",
    "PlatformArgs",
    "parse_model_args",
    "parse_platform_args",
]
