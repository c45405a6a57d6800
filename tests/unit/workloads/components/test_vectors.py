"""Pretrained word vectors: the table, the keys of a request, and the models that read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from acgs_workloads.components import get
from acgs_workloads.components import vectors as vec
from acgs_workloads.components.models import TextClassifier, WordVectorTable
from acgs_workloads.contract import ModelSpec

pytestmark = pytest.mark.unit
SPEC = ModelSpec(hidden_size=16, layers=1, sequence_length=24, heads=2)


def small_table() -> vec.WordVectors:
    words = ["records", "medical", "newsletter", "consent"]
    vectors = np.eye(len(words), vec.DIMENSIONS, dtype=np.float32)
    return vec.WordVectors.from_words(words, vectors)


def test_a_request_becomes_the_hashes_of_its_words() -> None:
    keys = vec.word_hashes(["Send the MEDICAL records", ""], length=6)
    assert keys.shape == (2, 6) and keys.dtype == np.int64
    assert keys[0, 2] == vec.word_hash("medical") and keys[0, 3] == vec.word_hash("records")
    assert (keys[0, 4:] == 0).all() and (keys[1] == 0).all()  # padding
    assert vec.words_of("don't e-mail it!") == ["don't", "e-mail", "it"]


def test_the_table_finds_its_words_and_nothing_else() -> None:
    table = small_table()
    assert (np.diff(table.hashes) > 0).all()  # sorted, no duplicates
    found = table.lookup(["medical", "unheard-of"])
    assert found[0].argmax() == 1 and found[0].max() == 1.0  # "medical" was the second word
    assert not found[1].any()


def test_a_missing_table_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vec.PATH_ENV, str(tmp_path / "absent.npz"))
    vec.load_word_vectors.cache_clear()
    try:
        with pytest.raises(vec.WordVectorsMissing, match="make venv"):
            vec.load_word_vectors()
        small_table().save(tmp_path / "t.npz")
        monkeypatch.setenv(vec.PATH_ENV, str(tmp_path / "t.npz"))
        vec.load_word_vectors.cache_clear()
        assert len(vec.load_word_vectors().hashes) == 4
    finally:
        vec.load_word_vectors.cache_clear()


def test_the_module_table_travels_in_the_state_dict() -> None:
    table = small_table()
    module = WordVectorTable(vec.DIMENSIONS)
    keys = torch.as_tensor(vec.word_hashes(["medical records", "newsletter"], length=3))
    out, found = module(keys)
    assert not found.any() and not out.any()  # empty until filled
    module.fill(table.hashes, table.vectors)
    out, found = module(keys)
    assert found.tolist() == [[True, True, False], [True, False, False]]
    fresh = WordVectorTable(vec.DIMENSIONS)  # what serving builds before it loads an artifact
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh(keys)[0], out)


def test_the_text_classifier_reads_a_word_it_only_knows_from_its_vector() -> None:
    torch.manual_seed(0)
    model = TextClassifier(64, 4, 5, SPEC, (1, 1, 3), ngrams=2, word_dimensions=vec.DIMENSIONS)
    table = small_table()
    model.set_word_vectors(table.hashes, table.vectors)
    model.eval()
    no_ngrams = np.zeros((2, 2), dtype=np.int64)  # no n-gram the model has an embedding for
    x = torch.as_tensor(np.concatenate([no_ngrams, vec.word_hashes(["medical", "zzz"], length=4)], axis=1))
    with torch.no_grad():
        out = model(x)
    assert not torch.allclose(out[0], out[1])  # the vector of "medical" moved the output; an unknown word did not
    with pytest.raises(ValueError, match="without word vectors"):
        TextClassifier(64, 4, 5, SPEC, None).set_word_vectors(table.hashes, table.vectors)


def test_training_starts_from_the_built_table_and_the_artifact_carries_it() -> None:
    component = get("constitutional-ai")
    trained = component.build_trainable(SPEC)
    state = trained.state_dict()
    assert state["words.vectors"].shape == (len(vec.load_word_vectors().hashes), vec.DIMENSIONS)
    served = component.build_model(SPEC)  # no file needed: the state dict brings the table
    served.load_state_dict(state)
    assert torch.equal(served.state_dict()["words.hashes"], state["words.hashes"])


def test_the_built_table_puts_related_words_together() -> None:
    table = vec.load_word_vectors()
    pacemaker, defibrillator, newsletter = table.lookup(["pacemaker", "defibrillator", "newsletter"])

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(pacemaker, defibrillator) > 0.5 > cosine(pacemaker, newsletter)
