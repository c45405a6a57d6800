"""Model signing round trips on a real model-signing bundle: tampering, foreign keys, added files, remote URIs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from acgs_workloads import signing
from acgs_workloads.contract import SIGNATURE_FILE, ArtifactMetadata, WeightsInfo


def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "m"
    directory.mkdir(parents=True)
    weights = b"\x00\x01weights" * 100
    (directory / "model.safetensors").write_bytes(weights)
    metadata = ArtifactMetadata(
        component="constitutional-ai", constitution_hash="a" * 16, dataset_digest="d" * 64,
        weights=WeightsInfo(file="model.safetensors", sha256=hashlib.sha256(weights).hexdigest(),
                            size_bytes=len(weights), format="safetensors"),
    )
    (directory / "metadata.json").write_bytes(metadata.json_bytes())
    return directory


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    return signing.generate_key_pair()


def test_sign_verify_round_trip_and_lineage(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    directory = model_dir(tmp_path)
    written = signing.sign_model(str(directory / "model.safetensors"), private)  # a file inside the directory
    assert (directory / SIGNATURE_FILE).is_file()
    assert written.sha256 == hashlib.sha256((directory / SIGNATURE_FILE).read_bytes()).hexdigest()
    assert written.signed_by == signing.fingerprint(public) == signing.fingerprint(signing.public_key_of(private))
    assert signing.verify_model(str(directory), [public]) == written
    lineage = signing.trace(str(directory), written)
    assert lineage.model_sha256 == hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    assert lineage.metadata_sha256 == hashlib.sha256((directory / "metadata.json").read_bytes()).hexdigest()
    assert (lineage.dataset_digest, lineage.constitution_hash) == ("d" * 64, "a" * 16)
    assert (lineage.signature_sha256, lineage.signed_by) == (written.sha256, written.signed_by)


@pytest.mark.parametrize("target", ["model.safetensors", "metadata.json"])
def test_a_flipped_byte_is_named(tmp_path: Path, key_pair: tuple[bytes, bytes], target: str) -> None:
    private, public = key_pair
    directory = model_dir(tmp_path)
    signing.sign_model(str(directory), private)
    data = bytearray((directory / target).read_bytes())
    data[len(data) // 2] ^= 0x01
    (directory / target).write_bytes(bytes(data))
    with pytest.raises(signing.SignatureError, match=f"files changed since signing: {target}"):
        signing.verify_model(str(directory), [public])


def test_foreign_key_missing_signature_and_added_file(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    directory = model_dir(tmp_path)
    with pytest.raises(signing.SignatureError, match="has no signature"):
        signing.verify_model(str(directory), [public])
    signing.sign_model(str(directory), private)
    _, other = signing.generate_key_pair()
    with pytest.raises(signing.SignatureError, match="Key mismatch"):
        signing.verify_model(str(directory), [other])
    assert signing.verify_model(str(directory), [other, public]).signed_by == signing.fingerprint(public)
    (directory / "evaluations").mkdir()
    (directory / "evaluations" / "x.json").write_text(json.dumps({"unsigned": True}))
    with pytest.raises(signing.SignatureError, match="Extra files"):
        signing.verify_model(str(directory), [public])
    signing.sign_model(str(directory), private)  # signed again: the record is covered
    signing.verify_model(str(directory), [public])


def test_bad_keys_are_named(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    with pytest.raises(signing.SigningKeyError, match="not an unencrypted PEM private key"):
        signing.sign_model(str(directory), b"not a key")
    with pytest.raises(signing.SigningKeyError, match="no verification key"):
        signing.verify_model(str(directory), [])
    with pytest.raises(signing.SigningKeyError, match="not a PEM public key"):
        signing.fingerprint("garbage")


def test_a_filesystem_uri_is_signed_through_a_local_copy(tmp_path: Path, key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    directory = model_dir(tmp_path)
    uri = f"file://{directory}"
    signed = signing.sign_model(uri, private)
    assert signing.verify_model(uri, [public]) == signed
    assert signing.verify_model(str(directory), [public]) == signed
