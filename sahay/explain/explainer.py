"""Explain a prediction: one method's maps, put on the image, found in words, and scored.

Example:
    >>> prediction = predictor.predict([image.pixels])[0]                # doctest: +SKIP
    >>> options = ExplainOptions("occlusion")                             # doctest: +SKIP
    >>> explained = explain_prediction(predictor, prediction, image, [0], options)  # doctest: +SKIP
    >>> explained.findings[0].summary                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sahay.analysis import Faithfulness, Region
from sahay.explain.faithfulness import score_maps
from sahay.explain.lungs import detect_lung_fields
from sahay.explain.methods import ExplanationMethod, MethodInput, get_method
from sahay.explain.methods.base import EvaluationProgress
from sahay.explain.options import GRADIENT_FALLBACK, ExplainOptions
from sahay.explain.overlay import to_image_geometry
from sahay.explain.regions import describe_regions, find_regions, is_chest_radiograph
from sahay.imaging import LoadedImage
from sahay.models.predictor import Prediction, Predictor
from sahay.models.providers import get_provider


@dataclass(frozen=True)
class ExplainedFinding:
    index: int
    """The finding's position in the model's labels."""
    heatmap: np.ndarray
    """float32 in [0, 1], the image's aspect ratio (see ``to_image_geometry``)."""
    regions: list[Region]
    summary: str
    faithfulness: Faithfulness | None


@dataclass(frozen=True)
class ExplanationSet:
    method: ExplanationMethod
    target_layer: str | None
    evaluations: int
    lung_fields: Literal["detected", "assumed"] | None
    findings: list[ExplainedFinding]


def explain_prediction(
    predictor: Predictor,
    prediction: Prediction,
    image: LoadedImage,
    label_indices: Sequence[int],
    options: ExplainOptions | None = None,
    progress: EvaluationProgress | None = None,
) -> ExplanationSet:
    """Explain the findings at ``label_indices`` of one prediction with ``options.method``."""
    options = options or ExplainOptions()
    method = get_method(options.method)
    if not method.needs_network and prediction.class_maps is None:
        method = get_method(GRADIENT_FALLBACK)  # no GAP-plus-linear head: no one-pass map to read
    manifest = predictor.manifest
    cam_layer = get_provider(manifest.architecture).cam_layer
    # Only the methods that run the network load torch (under ONNX Runtime, on first use).
    request = MethodInput(
        predictor.model if method.needs_network else None,
        prediction.input_tensor if method.needs_network else prediction.input_array,
        label_indices,
        cam_layer,
        options.budget,
        progress,
        class_maps=prediction.class_maps,
    )
    result = method.run(request)
    scores: Sequence[Faithfulness | None] = [None] * len(result.maps)
    if options.faithfulness and result.maps:
        scores = score_maps(
            predictor.probabilities,
            prediction.input_array,
            label_indices,
            result.maps,
            steps=options.faithfulness_steps,
            batch_size=options.budget.batch_size,
        )
    chest = is_chest_radiograph(image.info, manifest.body_part)
    lungs = detect_lung_fields(image.pixels) if chest else None
    shape = (int(image.pixels.shape[0]), int(image.pixels.shape[1]))
    findings = []
    for index, cam, score in zip(label_indices, result.maps, scores, strict=True):
        heatmap = to_image_geometry(cam, prediction.crop, image.pixels.shape)
        regions = find_regions(
            heatmap,
            shape,
            lung_fields=lungs,
            chest=chest,
            patient_orientation=image.info.patient_orientation,
        )
        summary = describe_regions(manifest.labels[index], method.title, regions, empty=not heatmap.any())
        findings.append(ExplainedFinding(index, heatmap, regions, summary, score))
    return ExplanationSet(
        method=method,
        target_layer=cam_layer if method.family == "cam" else None,
        evaluations=result.evaluations,
        lung_fields=("detected" if lungs is not None else "assumed") if chest else None,
        findings=findings,
    )
