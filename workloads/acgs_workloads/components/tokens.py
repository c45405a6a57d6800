"""Requests in plain words as token-id sequences (transformer-efficiency, wina-optimization).

A sequence is ``CLS``, the request's structured context tokens (``ctx:consent=1``, ``s:healthcare``: the same
strings the text classifier reads, see :func:`~acgs_workloads.components.text_governance.context_tokens`), then
the request's words in order, ``PAD`` to the model's ``sequenceLength`` (longer requests are cut). A word's id
is a stable CRC32 hash into :data:`VOCAB` buckets: nothing is downloaded or trained for the tokenizer, and a
word never seen in training lands on a bucket the model has (almost) never updated, which reads as "nothing".
Word order is kept, so "with consent" and "without consent" differ by position as well as by word.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from acgs_workloads.components.vectors import word_hash

PAD, CLS = 0, 1
RESERVED = 2  # ids below this are PAD and CLS
VOCAB = 1 << 14
MIN_LENGTH = 16  # CLS, a few context tokens and the first words of a request
_WORD = re.compile(r"[a-z0-9']+")


def token_id(token: str) -> int:
    """The id of one word or context token (``RESERVED`` .. ``VOCAB - 1``)."""
    return RESERVED + zlib.crc32(token.encode()) % (VOCAB - RESERVED)


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order."""
    return _WORD.findall(text.lower())


def encode(texts: Sequence[str], extras: Sequence[Sequence[str]] | None, length: int) -> np.ndarray:
    """Token ids [n, length]: ``CLS``, ``extras[i]``, the words of ``texts[i]``, then ``PAD``."""
    if length < MIN_LENGTH:
        raise ValueError(f"model.sequenceLength must be at least {MIN_LENGTH} for the transformer components, "
                         f"got {length}")
    out = np.full((len(texts), length), PAD, dtype=np.int64)
    cache: dict[str, int] = {}
    for i, text in enumerate(texts):
        tokens = [*(extras[i] if extras is not None else ()), *words(text)][: length - 1]
        ids = [CLS]
        for token in tokens:
            found = cache.get(token)
            if found is None:
                found = cache[token] = token_id(token)
            ids.append(found)
        out[i, : len(ids)] = ids
    return out


def encode_words(texts: Sequence[str], extras: Sequence[Sequence[str]] | None, length: int) -> np.ndarray:
    """The pretrained-vector keys of :func:`encode`'s positions [n, length]: each word's
    :func:`~acgs_workloads.components.vectors.word_hash`, 0 for ``CLS``, context tokens and padding."""
    out = np.zeros((len(texts), length), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, text in enumerate(texts):
        skip = 1 + len(extras[i] if extras is not None else ())
        for j, word in enumerate(words(text)[: max(length - skip, 0)]):
            found = cache.get(word)
            if found is None:
                found = cache[word] = word_hash(word)
            out[i, skip + j] = found
    return out


def full_lengths(texts: Sequence[str], extras: Sequence[Sequence[str]] | None) -> np.ndarray:
    """Tokens per request before any cut (``CLS``, context tokens, words)."""
    return np.array([1 + len(extras[i] if extras is not None else ()) + len(words(text))
                     for i, text in enumerate(texts)], dtype=np.int64)


def lengths(tokens: np.ndarray) -> np.ndarray:
    """Tokens per row before the padding."""
    return np.asarray((np.asarray(tokens) != PAD).sum(axis=1))
