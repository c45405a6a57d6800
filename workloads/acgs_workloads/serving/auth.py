"""API-key authentication: the operator passes only the sha256 of the key; requests carry the key itself."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

Headers = Iterable[tuple[bytes, bytes]]


def key_sha256(key: str) -> str:
    """The hex sha256 of an API key (what the operator puts in ``apiKeySha256``)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def presented_key(headers: Headers) -> bytes | None:
    """The key bytes of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (raw ASGI headers), if any."""
    bearer: bytes | None = None
    api_key: bytes | None = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
        elif lowered == b"x-api-key" and value.strip():
            api_key = value.strip()
    return bearer if bearer is not None else api_key


def key_matches(key: bytes | None, expected_sha256: str) -> bool:
    """Constant-time comparison of the key's sha256 with the expected digest."""
    if key is None:
        return False
    actual = hashlib.sha256(key).hexdigest()
    return hmac.compare_digest(actual.encode(), expected_sha256.lower().encode())


def authorized(headers: Headers, expected_sha256: str | None) -> bool:
    """True when auth is off (``expected_sha256`` is None) or the request presents the right key."""
    if expected_sha256 is None:
        return True
    return key_matches(presented_key(headers), expected_sha256)
