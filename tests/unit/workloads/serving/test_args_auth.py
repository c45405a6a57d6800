"""ModelAppArgs validation (the operator's Serve config args) and API-key checks."""

from __future__ import annotations

import hashlib

import pytest

from acgs_workloads.constitution import default_constitution
from acgs_workloads.contract import InvalidAppArgs, ModelAppArgs, parse_model_args, parse_platform_args
from acgs_workloads.serving.auth import authorized, key_matches, key_sha256, presented_key

pytestmark = pytest.mark.unit

SHA = "a" * 64


def wire(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "deployment": "team-a/cai",
        "component": "constitutional-ai",
        "modelUri": "file:///artifacts/models/run-1",
        "modelSha256": SHA,
        "constitution": default_constitution().wire(),
        "runtimeGuard": True,
        "batching": {"maxBatchSize": 8, "batchWaitTimeoutMs": 2.0},
        "apiKeySha256": "b" * 64,
        "maxBodyBytes": 1048576,
    }
    base.update(overrides)
    return base


def test_operator_wire_form_validates() -> None:
    args = parse_model_args(wire())
    assert args.component == "constitutional-ai"
    assert args.batching is not None and args.batching.batch_wait_timeout_s == pytest.approx(0.002)
    assert args.constitution_hash == default_constitution().hash
    assert ModelAppArgs.model_validate(args.wire()) == args  # round trip through the wire form


def test_optional_fields_default() -> None:
    minimal = wire()
    for key in ("batching", "apiKeySha256", "maxBodyBytes", "runtimeGuard"):
        minimal.pop(key)
    args = parse_model_args(minimal)
    assert args.batching is None and args.api_key_sha256 is None
    assert args.runtime_guard is True and args.max_body_bytes == 1048576


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"modelSha256": "xyz"}, "modelSha256"),
        ({"modelSha256": "A" * 64}, "modelSha256"),
        ({"component": "chatbot"}, "component"),
        ({"deployment": "no-namespace"}, "deployment"),
        ({"apiKeySha256": "short"}, "apiKeySha256"),
        ({"batching": {"maxBatchSize": 0}}, "batching.maxBatchSize"),
        ({"maxBodyBytes": 10}, "maxBodyBytes"),
        ({"constitution": {"name": "x", "hash": "nothex", "principles": []}}, "constitution.hash"),
        ({"replicas": 3}, "replicas"),  # unknown fields are refused
    ],
)
def test_bad_args_name_the_field(override: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidAppArgs) as info:
        parse_model_args(wire(**override))
    assert field in str(info.value)


def test_missing_required_field() -> None:
    args = wire()
    args.pop("modelSha256")
    with pytest.raises(InvalidAppArgs, match="modelSha256: Field required"):
        parse_model_args(args)


def test_platform_args() -> None:
    parse_platform_args({})
    parse_platform_args(None)
    with pytest.raises(InvalidAppArgs, match="extra"):
        parse_platform_args({"extra": 1})


def test_key_digest_matches_operator_side() -> None:
    assert key_sha256("k") == hashlib.sha256(b"k").hexdigest()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"authorization", b"Bearer abc")], b"abc"),
        ([(b"Authorization", b"bearer   abc  ")], b"abc"),
        ([(b"x-api-key", b"abc")], b"abc"),
        ([(b"X-API-Key", b"abc"), (b"authorization", b"Bearer xyz")], b"xyz"),  # Bearer wins
        ([(b"authorization", b"Basic abc")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([(b"x-api-key", b"")], None),
        ([], None),
    ],
)
def test_presented_key(headers: list[tuple[bytes, bytes]], expected: bytes | None) -> None:
    assert presented_key(headers) == expected


def test_key_matches_constant_time_digest() -> None:
    digest = key_sha256("right")
    assert key_matches(b"right", digest)
    assert key_matches(b"right", digest.upper())
    assert not key_matches(b"wrong", digest)
    assert not key_matches(None, digest)
    assert not key_matches(b"", digest)


def test_authorized() -> None:
    digest = key_sha256("right")
    assert authorized([], None)  # auth off
    assert not authorized([], digest)
    assert authorized([(b"authorization", b"Bearer right")], digest)
    assert not authorized([(b"authorization", b"Bearer wrong")], digest)
    # non-ASCII keys are compared as the UTF-8 bytes the client sent
    assert authorized([(b"x-api-key", "cl\u00e9".encode())], key_sha256("cl\u00e9"))
