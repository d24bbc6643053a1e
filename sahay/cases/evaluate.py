"""How well does similar-case search retrieve cases of the same diagnosis? Leave-one-out precision@k.

Every image of a labelled dataset becomes a case in a throw-away in-memory index (the user's
library is not touched). Each case in turn is the query, with itself left out, and
precision@k is the share of its top k whose diagnosis (the label, or the set of labels of a
multi-label row) equals its own. The text signal is the dataset's ``text_column`` (never the
label, which would give the answer away).

Example:
    >>> result = evaluate_cases(Path("DATA"), model="my-model", k=5)   # doctest: +SKIP
    >>> round(result.precision_at_k, 3)                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sahay.cases.library import diagnosis_from_target, model_space, prediction_vectors
from sahay.cases.search import Mode, QueryVectors, Weights, rank, signal_collection
from sahay.config import Settings, get_settings
from sahay.datasets import SPLITS, load_dataset
from sahay.errors import BadInput, SahayError
from sahay.imaging import read_image
from sahay.models.predictor import Predictor
from sahay.models.registry import find_bundle
from sahay.search.vectors import VectorIndex
from sahay.store.records import new_id


@dataclass(frozen=True)
class CaseEvaluation:
    k: int
    mode: Mode
    cases: int
    precision_at_k: float
    per_diagnosis: dict[str, float]
    """Mean precision@k of the queries of each diagnosis."""
    skipped: list[str] = field(default_factory=list)


def evaluate_cases(
    data: Path,
    *,
    model: str,
    k: int = 5,
    mode: Mode = "blend",
    weights: Weights | None = None,
    split: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    **dataset_options: Any,
) -> CaseEvaluation:
    """Leave-one-out precision@``k`` of ``mode`` search over ``data``; see ``evaluate_modes``."""
    return evaluate_modes(
        data,
        model=model,
        k=k,
        modes=[mode],
        weights=weights,
        split=split,
        settings=settings,
        progress=progress,
        **dataset_options,
    )[0]


def evaluate_modes(
    data: Path,
    *,
    model: str,
    k: int = 5,
    modes: Sequence[Mode] = ("blend",),
    weights: Weights | None = None,
    split: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    **dataset_options: Any,
) -> list[CaseEvaluation]:
    """Embed every image of ``data`` once, then score each of ``modes``."""
    settings = settings or get_settings()
    if k < 1:
        raise BadInput(f"--k must be at least 1, got {k}")
    if split is not None and split not in SPLITS:
        raise BadInput(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    predictor = Predictor(find_bundle(model, settings))
    dataset = load_dataset(data, **dataset_options)
    samples = [s for name in SPLITS if split in (None, name) for s in dataset.splits.get(name, [])]
    if len(samples) <= k:
        raise BadInput(f"{data} has {len(samples)} images; leave-one-out precision@{k} needs more than {k}")
    space = model_space(predictor.manifest.name, predictor.manifest.version)
    ids, diagnoses, image_vectors, findings_vectors, texts, skipped = [], [], [], [], [], []
    batch_size = 16
    for start in range(0, len(samples), batch_size):
        readable = []
        for sample in samples[start : start + batch_size]:
            try:
                readable.append((sample, read_image(sample.path, settings=settings).pixels))
            except SahayError as exc:
                skipped.append(f"{sample.path.name}: {exc}")
        predictions = predictor.predict([pixels for _, pixels in readable], batch_size=batch_size)
        for (sample, _), prediction in zip(readable, predictions, strict=True):
            image_vector, findings_vector = prediction_vectors(prediction)
            ids.append(new_id())
            diagnoses.append(diagnosis_from_target(sample.target, dataset.labels))
            image_vectors.append(image_vector)
            findings_vectors.append(findings_vector)
            texts.append(sample.text or "")
        if progress is not None:
            progress(min(start + batch_size, len(samples)), len(samples))
    if len(ids) <= k:
        raise BadInput(f"only {len(ids)} images of {data} could be read; precision@{k} needs more than {k}")
    text_vectors, text_space = _text_vectors(texts, modes, settings)
    with VectorIndex.in_memory() as index:
        signals = {"image": np.stack(image_vectors), "findings": np.stack(findings_vectors)}
        for signal, vectors in signals.items():
            collection = signal_collection(signal, space, None)  # type: ignore[arg-type]
            index.ensure(collection, vectors.shape[1])
            index.upsert(collection, ids, vectors, [{}] * len(ids))
        with_text = [i for i, text in enumerate(texts) if text]
        if text_vectors is not None and with_text:
            collection = signal_collection("text", None, text_space)
            index.ensure(collection, text_vectors.shape[1])
            index.upsert(
                collection, [ids[i] for i in with_text], text_vectors[with_text], [{}] * len(with_text)
            )
        position = {case: n for n, case in enumerate(ids)}
        results = []
        for mode in modes:
            precisions = []
            for i, case in enumerate(ids):
                query = QueryVectors(
                    image=signals["image"][i],
                    findings=signals["findings"][i],
                    text=text_vectors[i] if text_vectors is not None and texts[i] else None,
                    model_space=space,
                    text_space=text_space,
                )
                top = rank(index, query, k=k, mode=mode, weights=weights, exclude=[case])
                precisions.append(sum(diagnoses[position[r.id]] == diagnoses[i] for r in top) / k)
            per_diagnosis = {
                name: float(np.mean([p for p, d in zip(precisions, diagnoses, strict=True) if d == name]))
                for name in sorted(set(diagnoses))
            }
            results.append(
                CaseEvaluation(k, mode, len(ids), float(np.mean(precisions)), per_diagnosis, skipped)
            )
    return results


def _text_vectors(
    texts: list[str], modes: Sequence[Mode], settings: Settings
) -> tuple[np.ndarray | None, str | None]:
    if not any(texts):
        if "text" in modes:
            raise BadInput(
                "text mode needs words for each image: name the dataset's text column (--text-column)"
            )
        return None, None
    from sahay.search.embeddings import text_embedder

    embedder = text_embedder(settings)
    return embedder.embed([t or " " for t in texts]), embedder.name
