"""Signed models: OpenSSF model-signing bundles over a model directory, with elliptic-curve keys.

A model directory (``<root>/models/<name>/``) holds the weights, ``metadata.json`` (with the compliance
verdict) and any re-evaluation records; :func:`sign_model` writes ``model.sig``, a model-signing bundle
whose manifest covers every other file there, and :func:`verify_model` checks it against a set of public
keys. Torch-free: the operator's gate and every Serve replica verify through this module.

Keys are PEM (ECDSA, P-256 by default, as ``openssl ecparam -genkey -name prime256v1`` writes them); no
network signing service is involved. A key's fingerprint is the sha256 of its DER SubjectPublicKeyInfo,
first 16 hex characters, the ``signedBy`` of a model's lineage.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acgs_workloads import storage
from acgs_workloads.contract import METADATA_FILE, SIGNATURE_FILE, ArtifactMetadata, Lineage

__all__ = [
    "SignatureError", "SignatureInfo", "SigningKeyError", "fingerprint", "generate_key_pair", "public_key_of",
    "sign_model", "trace", "verify_model",
]


class SignatureError(Exception):
    """A model's signature is missing, malformed, made with another key, or does not match its files."""


class SigningKeyError(ValueError):
    """A signing or verification key cannot be read."""


@dataclass(frozen=True)
class SignatureInfo:
    """A verified (or freshly written) signature: the bundle's sha256 and the signing key's fingerprint."""

    sha256: str
    signed_by: str


# --------------------------------------------------------------------------- keys


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new P-256 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, _public_pem(key.public_key())


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_private(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"the signing key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"the signing key is a {type(key).__name__}, not an elliptic-curve key")
    return key


def _load_public(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"a verification key is not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(f"a verification key is a {type(key).__name__}, not an elliptic-curve key")
    return key


def public_key_of(private_pem: bytes) -> bytes:
    """The PEM public key of a PEM private key."""
    return _public_pem(_load_private(private_pem).public_key())


def fingerprint(public_pem: bytes | str) -> str:
    """sha256 of the key's DER SubjectPublicKeyInfo, first 16 hex characters."""
    der = _load_public(public_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


# --------------------------------------------------------------------------- local view of a model directory


def _model_directory(uri: str) -> str:
    """The model directory of ``uri`` (a model directory, or a file inside one such as the weights)."""
    return uri if storage.is_directory(uri) else storage.parent(uri)


def _local_path(uri: str) -> str | None:
    if "://" not in uri:
        return os.path.abspath(uri)
    if uri.startswith("file://"):
        return storage.resolve(uri)[1]
    return None


@contextlib.contextmanager
def _local_copy(directory: str, *, upload: Sequence[str] = ()) -> Iterator[pathlib.Path]:
    """A local directory holding the files of ``directory``: the directory itself when it is local, else a
    temporary copy; the files named in ``upload`` are written back when the block ends without error."""
    local = _local_path(directory)
    if local is not None:
        yield pathlib.Path(local)
        return
    fs, root = storage.resolve(directory)
    with tempfile.TemporaryDirectory(prefix="acgs-model-") as tmp:
        import pyarrow.fs as pafs

        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(root.rstrip("/")) + 1:]
            target = pathlib.Path(tmp, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(info.path) as inp:
                target.write_bytes(inp.read())
        yield pathlib.Path(tmp)
        for name in upload:
            storage.write_bytes(storage.join_uri(directory, name), pathlib.Path(tmp, name).read_bytes())


@contextlib.contextmanager
def _key_file(pem: bytes) -> Iterator[pathlib.Path]:
    """``pem`` in a private temporary file (model-signing reads keys from paths)."""
    with tempfile.TemporaryDirectory(prefix="acgs-key-") as tmp:
        path = pathlib.Path(tmp, "key.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        yield path


def _hashing_config() -> Any:
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


# --------------------------------------------------------------------------- sign / verify


def sign_model(uri: str, private_pem: bytes) -> SignatureInfo:
    """Sign the model directory of ``uri`` (every file but ``model.sig``) and write ``model.sig`` into it."""
    from model_signing import signing

    key = _load_private(private_pem)
    directory = _model_directory(uri)
    with _local_copy(directory, upload=[SIGNATURE_FILE]) as local, _key_file(private_pem) as key_path:
        signature = local / SIGNATURE_FILE
        signing.Config().set_hashing_config(_hashing_config()).use_elliptic_key_signer(
            private_key=key_path
        ).sign(local, signature)
        digest = hashlib.sha256(signature.read_bytes()).hexdigest()
    return SignatureInfo(sha256=digest, signed_by=fingerprint(_public_pem(key.public_key())))


def verify_model(uri: str, public_keys: Sequence[bytes | str]) -> SignatureInfo:
    """Verify the model directory of ``uri`` against ``model.sig`` with one of ``public_keys``.

    Raises :class:`SignatureError` naming what is wrong: no signature, a signature no given key made, or
    files that differ from what was signed (a changed byte in the weights, metadata or a record, a file
    added or removed).
    """
    from model_signing import verifying

    if not public_keys:
        raise SigningKeyError("no verification key is configured")
    directory = _model_directory(uri)
    if not storage.exists(storage.join_uri(directory, SIGNATURE_FILE)):
        raise SignatureError(f"model {directory} has no signature ({SIGNATURE_FILE})")
    keys = [(fingerprint(pem), pem.encode() if isinstance(pem, str) else pem) for pem in public_keys]
    failures: list[str] = []
    with _local_copy(directory) as local:
        signature = local / SIGNATURE_FILE
        digest = hashlib.sha256(signature.read_bytes()).hexdigest()
        for print_, pem in keys:
            with _key_file(pem) as key_path:
                try:
                    verifying.Config().set_hashing_config(_hashing_config()).use_elliptic_key_verifier(
                        public_key=key_path
                    ).verify(local, signature)
                except Exception as exc:  # model-signing raises ValueError and library-specific errors
                    failures.append(f"key {print_}: {_short(exc)}")
                    continue
            return SignatureInfo(sha256=digest, signed_by=print_)
    raise SignatureError(f"signature of model {directory} does not verify: " + "; ".join(failures))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)\\?'", text)
    if changed:  # model-signing prints both digests as byte reprs; the file names are what matters
        text = "files changed since signing: " + ", ".join(changed)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def trace(uri: str, signature: SignatureInfo | None) -> Lineage:
    """The lineage of the model at ``uri`` from its ``metadata.json`` (and ``signature``, verified or written)."""
    directory = _model_directory(uri)
    location = storage.join_uri(directory, METADATA_FILE)
    raw = storage.read_bytes(location)
    metadata = ArtifactMetadata.parse(raw, location)
    return Lineage(
        dataset_digest=metadata.dataset_digest or None,
        constitution_hash=metadata.constitution_hash,
        model_sha256=metadata.weights.sha256,
        metadata_sha256=hashlib.sha256(raw).hexdigest(),
        signature_sha256=signature.sha256 if signature else None,
        signed_by=signature.signed_by if signature else None,
    )
