"""The development signing key: one local key pair, its Secret for the operator, its public key per namespace.

``acgs up``, the pipeline and the tests sign every trained model with this key (ECDSA P-256, created once
under ``~/.cache/acgs/signing/``) and verify it with the public key in each namespace's
``acgs-verification-keys`` ConfigMap. Production clusters bring their own key: see README "Signed models".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from acgs_operator.api.v1alpha1 import VERIFICATION_KEYS_CONFIGMAP
from acgs_operator.devenv.binaries import cache_dir
from acgs_operator.devenv.kubectl import Kubectl
from acgs_operator.signing import DEFAULT_PRIVATE_KEY

SIGNING_SECRET = "acgs-signing-key"
SIGNING_NAMESPACE = "default"
PUBLIC_KEY_ENTRY = "acgs-dev.pem"


def key_pair(directory: Path | None = None) -> tuple[bytes, bytes]:
    """The local development key pair (private, public PEM), created on first use."""
    from acgs_workloads.signing import generate_key_pair

    directory = directory or cache_dir() / "signing"
    private, public = directory / DEFAULT_PRIVATE_KEY, directory / "public.pem"
    if not private.is_file() or not public.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        priv, pub = generate_key_pair()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(priv)
        public.write_bytes(pub)
    return private.read_bytes(), public.read_bytes()


def secret_manifest(private_pem: bytes, namespace: str = SIGNING_NAMESPACE) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": SIGNING_SECRET, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "acgs"}},
        "stringData": {DEFAULT_PRIVATE_KEY: private_pem.decode()},
    })


def verification_manifest(public_pem: bytes, namespace: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": VERIFICATION_KEYS_CONFIGMAP, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "acgs"}},
        "data": {PUBLIC_KEY_ENTRY: public_pem.decode()},
    })


def install_signing_key(kubectl: Kubectl, namespace: str = SIGNING_NAMESPACE) -> str:
    """Put the development private key in a Secret; returns the operator's ``ACGS_SIGNING_KEY_SECRET``."""
    private, _ = key_pair()
    kubectl.apply(secret_manifest(private, namespace))
    return f"{namespace}/{SIGNING_SECRET}"


def install_verification_keys(kubectl: Kubectl, namespace: str) -> None:
    """Let ModelDeployments in ``namespace`` verify what the development key signed."""
    _, public = key_pair()
    kubectl.apply(verification_manifest(public, namespace))
