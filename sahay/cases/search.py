"""Rank cases by a blend of image, text and findings similarity.

Three signals, each a cosine similarity in [-1, 1] between the query's vector and a case's:

* **image**: the model's pooled features of the last spatial layer (the penultimate layer's
  input), from the same model (name and version) as the case's;
* **text**: an all-MiniLM-L6-v2 embedding of the case's words: diagnosis, comment, notes,
  positive findings and tags (``case_text``);
* **findings**: the vector of the model's finding probabilities.

The blended similarity is ``sum(w_s * sim_s) / sum(w_s)`` over the signals in use: those the
query has, or the one signal ``mode`` names. A case without a signal's vector (no words, for
example) scores 0 on that signal. Default weights: image 0.6, text 0.2, findings 0.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sahay.errors import BadInput
from sahay.search.vectors import VectorIndex, collection_name

Signal = Literal["image", "text", "findings"]
SIGNALS: tuple[Signal, ...] = ("image", "text", "findings")
Mode = Literal["blend", "image", "text", "findings"]
MODES: tuple[Mode, ...] = ("blend", "image", "text", "findings")
COLLECTION_PREFIX = "cases"


@dataclass(frozen=True)
class Weights:
    image: float = 0.6
    text: float = 0.2
    findings: float = 0.2

    def __post_init__(self) -> None:
        values = {"image": self.image, "text": self.text, "findings": self.findings}
        if any(v < 0 for v in values.values()) or sum(values.values()) <= 0:
            raise BadInput(f"weights must be 0 or more with a positive sum, got {values}")

    @classmethod
    def parse(cls, text: str) -> Weights:
        """``"image=0.5,text=0.3,findings=0.2"``; signals left out keep their default."""
        given: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in SIGNALS:
                raise BadInput(f"unknown signal {name.strip()!r} in --weights; use {', '.join(SIGNALS)}")
            try:
                given[name.strip()] = float(value)
            except ValueError:
                raise BadInput(f"--weights needs numbers, got {part!r}") from None
        return cls(**given)

    def of(self, signal: Signal) -> float:
        return float(getattr(self, signal))


@dataclass
class QueryVectors:
    """What a query brings; a missing signal is None. Vectors are L2-normalised."""

    image: np.ndarray | None = None
    findings: np.ndarray | None = None
    text: np.ndarray | None = None
    model_space: str | None = None
    """``name@version`` of the model that made the image and findings vectors."""
    text_space: str | None = None

    def vector(self, signal: Signal) -> np.ndarray | None:
        return {"image": self.image, "text": self.text, "findings": self.findings}[signal]


@dataclass(frozen=True)
class Ranked:
    id: str
    similarity: float
    signals: dict[str, float | None] = field(default_factory=dict)
    """Per-signal cosine similarity; None for signals not used."""


def signal_collection(signal: Signal, model_space: str | None, text_space: str | None) -> str:
    space = text_space if signal == "text" else model_space
    if space is None:
        raise BadInput(f"no vector space for the {signal} signal")
    return collection_name(f"{COLLECTION_PREFIX}-{signal}", space)


def normalised(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def rank(
    index: VectorIndex,
    query: QueryVectors,
    *,
    k: int,
    mode: Mode = "blend",
    weights: Weights | None = None,
    where: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
) -> list[Ranked]:
    """The ``k`` most similar cases, best first."""
    if k < 1:
        raise BadInput(f"k must be at least 1, got {k}")
    if mode not in MODES:
        raise BadInput(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    weights = weights or Weights()
    wanted = SIGNALS if mode == "blend" else (mode,)
    used = [s for s in wanted if query.vector(s) is not None and (mode != "blend" or weights.of(s) > 0)]
    if not used:
        raise BadInput(
            f"the query has no {mode} signal to search with"
            if mode != "blend"
            else "the query has nothing to search with (no image, findings or text)"
        )
    pool = max(50, 10 * k)
    scores: dict[str, dict[str, float]] = {}
    for signal in used:
        collection = signal_collection(signal, query.model_space, query.text_space)
        vector = query.vector(signal)
        assert vector is not None
        for hit in index.search(collection, vector, pool, where=where, exclude=exclude):
            scores.setdefault(hit.id, {})[signal] = hit.score
    for signal in used:  # candidates found by another signal: score them on this one too
        missing = [case for case, found in scores.items() if signal not in found]
        collection = signal_collection(signal, query.model_space, query.text_space)
        stored = index.vectors(collection, missing)
        vector = query.vector(signal)
        assert vector is not None
        for case in missing:
            scores[case][signal] = float(normalised(stored[case]) @ vector) if case in stored else 0.0
    weight = {s: (weights.of(s) if mode == "blend" else 1.0) for s in used}
    total = sum(weight.values())
    ranked = [
        Ranked(
            id=case,
            similarity=sum(weight[s] * found[s] for s in used) / total,
            signals={s: (found[s] if s in used else None) for s in SIGNALS},
        )
        for case, found in scores.items()
    ]
    ranked.sort(key=lambda r: r.similarity, reverse=True)
    return ranked[:k]
