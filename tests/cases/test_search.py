"""The blend of signals, on an in-memory index with vectors whose similarities are known."""

from __future__ import annotations

import numpy as np
import pytest

from sahay.cases.search import QueryVectors, Weights, rank, signal_collection
from sahay.errors import BadInput
from sahay.search.vectors import VectorIndex

SPACE, TEXT_SPACE = "model@1", "minilm"
A, B, C = "a" * 32, "b" * 32, "c" * 32


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index() -> VectorIndex:
    index = VectorIndex.in_memory()
    stored = {
        "image": {A: _unit(1, 0), B: _unit(0, 1), C: _unit(1, 1)},
        "findings": {A: _unit(1, 0, 0), B: _unit(1, 0, 0), C: _unit(0, 1, 0)},
        "text": {B: _unit(0, 0, 1), C: _unit(1, 0, 0)},  # A has no words
    }
    for signal, vectors in stored.items():
        collection = signal_collection(signal, SPACE, TEXT_SPACE)  # type: ignore[arg-type]
        index.ensure(collection, len(next(iter(vectors.values()))))
        modalities = [{"modality": "CR" if case != C else "DX"} for case in vectors]
        index.upsert(collection, list(vectors), np.stack(list(vectors.values())), modalities)
    return index


def _query() -> QueryVectors:
    return QueryVectors(
        image=_unit(1, 0),
        findings=_unit(1, 0, 0),
        text=_unit(0, 0, 1),
        model_space=SPACE,
        text_space=TEXT_SPACE,
    )


def test_the_blend_is_the_weighted_mean_of_the_signals(index: VectorIndex) -> None:
    ranked = {r.id: r for r in rank(index, _query(), k=3)}
    # Case A: image 1, findings 1, text 0 (it has none).
    assert ranked[A].signals == {"image": pytest.approx(1.0), "text": 0.0, "findings": pytest.approx(1.0)}
    assert ranked[A].similarity == pytest.approx(0.6 * 1 + 0.2 * 0 + 0.2 * 1)
    # Case B: image 0, findings 1, text 1.
    assert ranked[B].similarity == pytest.approx(0.6 * 0 + 0.2 * 1 + 0.2 * 1)
    # Case C: image cos 45 degrees, findings 0, text 0.
    assert ranked[C].similarity == pytest.approx(0.6 * np.sqrt(0.5), abs=1e-5)
    assert [r.id for r in rank(index, _query(), k=3)] == [A, C, B]


def test_single_signal_modes_ignore_the_others(index: VectorIndex) -> None:
    image_only = rank(index, _query(), k=3, mode="image")
    assert [r.id for r in image_only] == [A, C, B]
    assert all(r.signals["text"] is None and r.signals["findings"] is None for r in image_only)
    text_only = rank(index, _query(), k=3, mode="text")
    assert text_only[0].id == B and text_only[0].similarity == pytest.approx(1.0)
    findings_only = rank(index, _query(), k=2, mode="findings")
    assert {r.id for r in findings_only} == {A, B}


def test_weights_change_the_order(index: VectorIndex) -> None:
    text_heavy = rank(index, _query(), k=1, weights=Weights(image=0.1, text=0.8, findings=0.1))
    assert text_heavy[0].id == B


def test_modality_filter_and_exclusion(index: VectorIndex) -> None:
    assert {r.id for r in rank(index, _query(), k=3, where={"modality": "DX"})} == {C}
    assert A not in {r.id for r in rank(index, _query(), k=3, exclude=[A])}


def test_vector_spaces_are_never_mixed(index: VectorIndex) -> None:
    other_model = QueryVectors(image=_unit(1, 0), model_space="other-model@1")
    assert rank(index, other_model, k=3) == []


def test_weights_parse_and_refuse_nonsense() -> None:
    assert Weights.parse("image=0.5, text=0.5") == Weights(image=0.5, text=0.5, findings=0.2)
    for bad, message in [
        ("colour=1", "unknown signal 'colour'"),
        ("image=x", "needs numbers"),
        ("image=-1", "0 or more"),
        ("image=0,text=0,findings=0", "positive sum"),
    ]:
        with pytest.raises(BadInput, match=message):
            Weights.parse(bad)


def test_bad_queries_name_the_problem(index: VectorIndex) -> None:
    with pytest.raises(BadInput, match="k must be at least 1"):
        rank(index, _query(), k=0)
    with pytest.raises(BadInput, match="unknown search mode 'fuzzy'"):
        rank(index, _query(), k=1, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="no text signal"):
        rank(index, QueryVectors(image=_unit(1, 0), model_space=SPACE), k=1, mode="text")
    with pytest.raises(BadInput, match="nothing to search with"):
        rank(index, QueryVectors(), k=1)
