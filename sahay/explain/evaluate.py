"""Which explanation method is faithful for this model? Mean deletion/insertion scores on a dataset.

For each image the model's most probable finding is explained by every method, and each map
is scored by ``deletion_insertion``. A smooth random map is scored the same way, as the
reference a useful method must clearly beat.

Example:
    >>> report = evaluate_explanations("my-model", Path("DATA"), limit=20)   # doctest: +SKIP
    >>> report.rows[0].method, report.rows[0].mean_score                     # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sahay.config import Settings, get_settings
from sahay.datasets import SPLITS, load_dataset
from sahay.errors import BadInput, SahayError
from sahay.explain.faithfulness import deletion_insertion, random_map
from sahay.explain.methods import METHODS, Budget, MethodInput, get_method
from sahay.explain.options import DEFAULT_STEPS
from sahay.fileio import atomic_write_text, check_writable_folder
from sahay.imaging import read_image
from sahay.models.predictor import Predictor
from sahay.models.providers import get_provider
from sahay.models.registry import find_bundle

RANDOM_REFERENCE = "random"
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class MethodScore:
    method: str
    title: str
    images: int
    mean_score: float | None
    """None when no map of this method could be scored (all were empty)."""
    sd_score: float | None
    mean_deletion: float | None
    mean_insertion: float | None
    evaluations_per_image: float
    """Forward passes of the method itself (faithfulness scoring not counted)."""


@dataclass(frozen=True)
class ExplanationEvaluation:
    model: str
    data: str
    split: str
    images: int
    skipped: list[str] = field(default_factory=list)
    rows: list[MethodScore] = field(default_factory=list)
    """Best mean score first; the random reference is among them."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_explanations(
    bundle_ref: str,
    data: Path,
    *,
    methods: Sequence[str] | None = None,
    split: str = "test",
    limit: int = DEFAULT_LIMIT,
    budget: Budget | None = None,
    steps: int = DEFAULT_STEPS,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    json_out: Path | None = None,
    **dataset_options: Any,
) -> ExplanationEvaluation:
    """Score ``methods`` (default: all) on up to ``limit`` images of one split of ``data``.

    ``json_out``, when given, receives the report as JSON; it is checked before any work.
    """
    settings = settings or get_settings()
    if json_out is not None:
        if json_out.is_dir():
            raise BadInput(f"--out {json_out} is a folder; give a file name for the JSON report")
        check_writable_folder(json_out.parent)
    chosen = [get_method(name) for name in (methods or list(METHODS))]
    if split not in SPLITS:
        raise BadInput(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if limit < 1:
        raise BadInput(f"--limit must be at least 1, got {limit}")
    bundle = find_bundle(bundle_ref, settings)
    manifest = bundle.manifest
    dataset = load_dataset(data, task=manifest.task, **dataset_options)
    samples = dataset.splits.get(split, [])[:limit]
    if not samples:
        raise BadInput(f"the {split} split of {data} has no images; choose another with --split")
    predictor = Predictor(bundle)
    layer = get_provider(manifest.architecture).cam_layer
    budget = budget or Budget()

    def to_probability(logits: Any) -> Any:
        return manifest.probabilities(logits)

    scores: dict[str, list[tuple[float, float, float, int]]] = {m.name: [] for m in chosen}
    scores[RANDOM_REFERENCE] = []
    skipped: list[str] = []
    for number, sample in enumerate(samples):
        try:
            image = read_image(sample.path, settings=settings)
        except SahayError as exc:
            skipped.append(f"{sample.path.name}: {exc}")
            continue
        prediction = predictor.predict([image.pixels])[0]
        target = int(np.argmax([f.probability for f in prediction.findings]))
        tensor = prediction.input_tensor
        maps: dict[str, tuple[np.ndarray, int]] = {
            RANDOM_REFERENCE: (random_map((tensor.shape[-2], tensor.shape[-1]), seed=number), 0)
        }
        for method in chosen:
            result = method.run(
                MethodInput(
                    predictor.model, tensor, [target], layer, budget, class_maps=prediction.class_maps
                )
            )
            maps[method.name] = (result.maps[0], result.evaluations)
        names = list(maps)
        faithful = deletion_insertion(
            predictor.model,
            tensor,
            [target] * len(names),
            [maps[name][0] for name in names],
            to_probability,
            steps=steps,
            batch_size=budget.batch_size,
        )
        for name, score in zip(names, faithful, strict=True):
            if score is not None:  # an all-zero map ranks nothing
                scores[name].append((score.score, score.deletion_auc, score.insertion_auc, maps[name][1]))
        if progress is not None:
            progress(number + 1, len(samples))
    if len(skipped) == len(samples):
        raise BadInput(f"none of the {len(samples)} images could be read: {skipped[0]}")
    titles = {m.name: m.title for m in chosen} | {RANDOM_REFERENCE: "Random map (reference)"}
    rows = [_row(name, titles[name], values) for name, values in scores.items()]
    rows.sort(key=lambda row: -np.inf if row.mean_score is None else row.mean_score, reverse=True)
    report = ExplanationEvaluation(
        model=f"{manifest.name} {manifest.version}",
        data=str(data),
        split=split,
        images=len(samples) - len(skipped),
        skipped=skipped,
        rows=rows,
    )
    if json_out is not None:
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise BadInput(f"cannot write {json_out} ({exc.strerror or exc})") from exc
    return report


def _row(name: str, title: str, values: list[tuple[float, float, float, int]]) -> MethodScore:
    if not values:
        return MethodScore(name, title, 0, None, None, None, None, 0.0)
    table = np.asarray(values, dtype=np.float64)
    return MethodScore(
        method=name,
        title=title,
        images=len(values),
        mean_score=float(table[:, 0].mean()),
        sd_score=float(table[:, 0].std(ddof=1)) if len(values) > 1 else 0.0,
        mean_deletion=float(table[:, 1].mean()),
        mean_insertion=float(table[:, 2].mean()),
        evaluations_per_image=float(table[:, 3].mean()),
    )
