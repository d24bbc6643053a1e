"""Out-of-domain detection: is this image like the ones the model was trained on?

Each bundle may carry a reference set of its training images' feature vectors (the pooled
output of the provider's ``cam_layer``), L2-normalised. An image's score is its mean cosine
distance to its ``k`` nearest reference vectors.

The threshold comes from held-out scores: validation images scored against the reference,
and each fifth of the reference scored against the other four fifths (which adds samples on
small datasets). It is the chosen percentile of those scores plus ``margin`` times that
percentile's distance from their median. The margin is there because a few dozen held-out
images underestimate the tail of the distribution, and a fine-tuned network places its own
training images closer together than new ones; without it, a small dataset's own kind of
image is refused more often than the percentile promises.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

OOD_FILE = "ood.npz"
MAX_REFERENCE = 2000


class OodSpec(BaseModel):
    """The ``ood`` entry of ``bundle.json``; the vectors themselves live in ``file``."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(default=OOD_FILE, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    method: Literal["knn-cosine"] = "knn-cosine"
    k: int = Field(default=5, ge=1)
    threshold: float = Field(ge=0.0)
    percentile: float = Field(default=99.0, gt=0.0, le=100.0)
    margin: float = Field(default=1.0, ge=0.0)
    fitted_on: str
    reference_size: int = Field(ge=1)
    expects_greyscale: bool = Field(description="all reference images were greyscale")


@dataclass(frozen=True)
class OodReference:
    vectors: np.ndarray  # (M, D) float32, L2-normalised
    spec: OodSpec

    def scores(self, features: np.ndarray) -> np.ndarray:
        return knn_scores(self.vectors, normalise(features), self.spec.k)


def normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_scores(
    reference: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = False
) -> np.ndarray:
    """Mean cosine distance of each (normalised) query to its k nearest reference vectors."""
    distances = 1.0 - queries @ reference.T
    if exclude_self:
        np.fill_diagonal(distances, np.inf)
    k = min(k, reference.shape[0] - (1 if exclude_self else 0))
    if k < 1:
        raise ValueError("the out-of-domain reference needs at least 2 images")
    nearest = np.partition(distances, k - 1, axis=1)[:, :k]
    return np.asarray(nearest.mean(axis=1), dtype=np.float32)


def fit_reference(
    reference_features: np.ndarray,
    heldout_features: np.ndarray,
    *,
    fitted_on: str,
    expects_greyscale: bool,
    k: int = 5,
    percentile: float = 99.0,
    margin: float = 1.0,
    seed: int = 0,
) -> OodReference:
    """Build the reference from training features and set the threshold from held-out ones."""
    rng = np.random.default_rng(seed)
    vectors = normalise(reference_features)
    if vectors.shape[0] > MAX_REFERENCE:
        vectors = vectors[np.sort(rng.choice(vectors.shape[0], MAX_REFERENCE, replace=False))]
    if vectors.shape[0] < 2 * k:
        raise ValueError(f"the out-of-domain reference needs at least {2 * k} images, got {vectors.shape[0]}")
    heldout = knn_scores(vectors, normalise(heldout_features), k) if len(heldout_features) else np.empty(0)
    scores = np.concatenate([heldout, _cross_fold_scores(vectors, k, rng)])
    base = float(np.percentile(scores, percentile))
    threshold = base + margin * max(0.0, base - float(np.median(scores)))
    spec = OodSpec(
        k=k,
        threshold=threshold,
        percentile=percentile,
        margin=margin,
        fitted_on=fitted_on,
        reference_size=int(vectors.shape[0]),
        expects_greyscale=expects_greyscale,
    )
    return OodReference(vectors=vectors, spec=spec)


def _cross_fold_scores(vectors: np.ndarray, k: int, rng: np.random.Generator, folds: int = 5) -> np.ndarray:
    """Score each fold of the reference against the others: held-out-like scores for training images."""
    assignment = rng.permutation(vectors.shape[0]) % folds
    scores = np.empty(vectors.shape[0], dtype=np.float32)
    for fold in range(folds):
        inside = assignment == fold
        scores[inside] = knn_scores(vectors[~inside], vectors[inside], k)
    return scores


def to_bytes(reference: OodReference) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, vectors=reference.vectors.astype(np.float16))
    return buffer.getvalue()


def from_bytes(data: bytes, spec: OodSpec) -> OodReference:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        vectors = archive["vectors"].astype(np.float32)
    return OodReference(vectors=normalise(vectors), spec=spec)
