"""Signing trained models and finding the keys that verify them (the operator's side of signed models).

The operator signs a model when its TrainingJob succeeds, with the private key of ``spec.signing`` or the
operator's ``ACGS_SIGNING_KEY_SECRET``: the key stays in the operator, never in a Ray job. A
ModelDeployment's gate (and each of its replicas) verifies the signature with the public keys of
``spec.verification``: its ConfigMap, or ``acgs-verification-keys`` in the namespace.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

from acgs_operator.api.v1alpha1 import (
    VERIFICATION_KEYS_CONFIGMAP,
    ModelDeploymentSpec,
    SecretKeySelector,
    TrainingJobSpec,
)
from acgs_operator.config import OperatorConfig
from acgs_workloads.contract import Lineage

DEFAULT_PRIVATE_KEY = "private.pem"


class KeyUnavailable(Exception):
    """A signing key Secret or a verification-key ConfigMap cannot be read."""


def signing_key_ref(
    spec: TrainingJobSpec | None, namespace: str, config: OperatorConfig
) -> tuple[str, SecretKeySelector] | None:
    """Where the key that signs a model is: the job's ``spec.signing`` (in its namespace), else the operator's
    ``ACGS_SIGNING_KEY_SECRET``; None: the model is not signed."""
    if spec is not None and spec.signing is not None:
        return namespace, spec.signing.key_secret_ref
    if not config.signing_key_secret:
        return None
    ref, _, key = config.signing_key_secret.partition(":")
    ns, name = ref.split("/", 1)
    return ns, SecretKeySelector(name=name, key=key or DEFAULT_PRIVATE_KEY)


async def read_secret_key(core_v1: Any, namespace: str, ref: SecretKeySelector) -> bytes:
    try:
        secret = await asyncio.to_thread(core_v1.read_namespaced_secret, ref.name, namespace)
    except Exception as exc:  # kubernetes ApiException or transport errors
        raise KeyUnavailable(f"Secret {namespace}/{ref.name} cannot be read: {getattr(exc, 'reason', exc)}") from exc
    value = (secret.data or {}).get(ref.key)
    if value is None:
        raise KeyUnavailable(f"Secret {namespace}/{ref.name} has no key {ref.key}")
    return base64.b64decode(value)


@dataclass(frozen=True)
class Signed:
    """The outcome of signing a finished job's model: its lineage, or why it is not signed."""

    lineage: Lineage | None = None
    error: str = ""
    unsigned: bool = False  # no key is configured for this job


async def sign(core_v1: Any, spec: TrainingJobSpec, namespace: str, config: OperatorConfig, uri: str) -> Signed:
    """Sign the model at ``uri`` with this job's key and trace its lineage (storage I/O off the event loop)."""
    from acgs_workloads import signing, storage

    ref = signing_key_ref(spec, namespace, config)
    try:
        if ref is None:
            return Signed(lineage=await asyncio.to_thread(signing.trace, uri, None), unsigned=True)
        pem = await read_secret_key(core_v1, *ref)
        info = await asyncio.to_thread(signing.sign_model, uri, pem)
        return Signed(lineage=await asyncio.to_thread(signing.trace, uri, info))
    except (KeyUnavailable, signing.SignatureError, storage.StorageError, OSError, ValueError) as exc:
        return Signed(error=f"model {uri} is not signed: {exc}")


@dataclass(frozen=True)
class VerificationKeys:
    """The public keys a deployment's model must verify with (empty: none configured), or why none were read."""

    keys: tuple[str, ...] = ()
    source: str = ""
    error: str = ""


async def verification_keys(core_v1: Any, spec: ModelDeploymentSpec, namespace: str) -> VerificationKeys:
    """The ``*.pem`` entries of the deployment's key ConfigMap; a missing default ConfigMap means no keys."""
    policy = spec.verification.policy
    if policy == "Disabled" or (core_v1 is None and policy != "Required"):  # no API client: unit tests
        return VerificationKeys()
    ref = spec.verification.public_keys_ref
    name = ref.name if ref is not None else VERIFICATION_KEYS_CONFIGMAP
    source = f"ConfigMap {namespace}/{name}"
    try:
        cm = await asyncio.to_thread(core_v1.read_namespaced_config_map, name, namespace)
    except Exception as exc:  # kubernetes ApiException or transport errors
        if getattr(exc, "status", None) == 404 and ref is None and policy != "Required":
            return VerificationKeys()
        return VerificationKeys(source=source, error=f"{source} cannot be read: {getattr(exc, 'reason', exc)}")
    keys = tuple(v for k, v in sorted((cm.data or {}).items()) if k.endswith(".pem"))
    if not keys:
        return VerificationKeys(source=source, error=f"{source} has no *.pem public keys")
    return VerificationKeys(keys=keys, source=source)
