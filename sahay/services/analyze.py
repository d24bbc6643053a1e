"""Analyse one image: read it, pick and run the model, read the note, explain, and write the result.

The CLI, the API, ``sahay pacs analyze`` and the library all come through ``run_analysis``.
Heavy libraries load inside it, after the request has been checked, so that a wrong path or
an unknown method is refused at once.

Example:
    >>> analysis = analyze("chest.dcm", out_dir="out")      # doctest: +SKIP
    >>> [f.label for f in analysis.positive_findings]      # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahay.errors import BadInput, OutOfDomain
from sahay.explain.methods import get_method
from sahay.explain.options import DEFAULT_METHOD, DEFAULT_OPACITY, DEFAULT_TOP_K, Budget, ExplainOptions
from sahay.fileio import atomic_write_text, check_writable_folder
from sahay.imaging.header import check_image_file
from sahay.progress import Progress, counter, report
from sahay.statement import FORCED_PREFIX

if TYPE_CHECKING:
    from sahay.analysis import Analysis, Finding, NoteReading
    from sahay.config import Settings
    from sahay.explain.explainer import ExplanationSet
    from sahay.imaging import LoadedImage
    from sahay.models.bundle import Bundle
    from sahay.models.predictor import Prediction, Predictor

HEATMAP_DIR = "heatmaps"
MAPS_FILE = "maps.npz"
"""Every explained finding's raw map, compressed in one file (one .npy each took a quarter of the output)."""
SIDE_BY_SIDE_SUFFIX = ".side-by-side"
ANALYSIS_FILE = "analysis.json"

OVERLAY_MAX_SIDE = 1024
"""Overlays are written at display size (the image's long side at most this) unless full resolution is
asked for: PNG-encoding full-resolution overlays of a 2k film took a third of an analysis."""

MIN_IMAGE_SIDE = 16
"""Smaller images hold too little to classify; models would still answer, confidently."""
DEFAULT_OUT_ROOT = Path("sahay-out")

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_OPACITY",
    "DEFAULT_TOP_K",
    "AnalyzeRequest",
    "Budget",
    "ExplainOptions",
    "analyze",
    "classify",
    "default_out_dir",
    "load_model",
    "run_analysis",
]

LoadPredictor = Callable[["Bundle"], "Predictor"]
"""Turns the chosen bundle into a predictor; a long-lived caller passes its cache."""


@dataclass(frozen=True)
class AnalyzeRequest:
    """What to analyse and how. ``out_dir`` None: classify only, write nothing, explain nothing."""

    image: Path
    model: str | None = None
    """An installed model's name or a bundle folder; None picks one from the image."""
    out_dir: Path | None = None
    notes: str | None = None
    """The clinical note that came with the image; it is read and fused with the findings."""
    heatmaps: bool = True
    explain: ExplainOptions = field(default_factory=ExplainOptions)
    keep_identifiers: bool = False
    force: bool = False
    """Analyse an image the model was not made for, with a warning, instead of refusing it."""
    full_resolution: bool = False
    """Write overlays at the image's own resolution instead of display size."""
    side_by_side: bool = False
    """Also write each overlay next to the original: twice an overlay's pixels, so only on request."""

    def check(self) -> None:
        """Refuse what can be refused before anything heavy loads: the method, the file, the folder."""
        get_method(self.explain.method)
        check_image_file(self.image)  # the path and the file's first bytes, before NumPy or torch
        if self.out_dir is not None:
            check_writable_folder(self.out_dir)


def analyze(
    image: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    load_predictor: LoadPredictor | None = None,
    **options: Any,
) -> Analysis:
    """Analyse one image; ``options`` are ``AnalyzeRequest``'s fields (model, out_dir, notes, ...)."""
    if options.get("out_dir") is not None:
        options["out_dir"] = Path(options["out_dir"])
    request = AnalyzeRequest(Path(image), **options)
    return run_analysis(request, settings=settings, progress=progress, load_predictor=load_predictor)


def load_model(name: str, settings: Settings | None = None) -> Predictor:
    """An installed model (by name) or a bundle folder, loaded and ready to ``predict``."""
    from sahay.config import get_settings
    from sahay.models.predictor import Predictor
    from sahay.models.registry import find_bundle

    return Predictor(find_bundle(name, settings or get_settings()))


def run_analysis(
    request: AnalyzeRequest,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    load_predictor: LoadPredictor | None = None,
) -> Analysis:
    """Analyse one image and, when ``request.out_dir`` is given, write ``analysis.json`` and overlays.

    Bad input raises a ``SahayError`` before anything is written. An image the model was not
    made for raises ``OutOfDomain`` unless ``request.force``.
    """
    request.check()
    from sahay.config import get_settings
    from sahay.imaging import read_image
    from sahay.models.predictor import Predictor
    from sahay.models.registry import resolve

    settings = settings or get_settings()
    reading = None
    if request.notes is not None:
        from sahay.notes import read_note  # spaCy loads only when a note comes with the image

        report(progress, "reading the note")
        reading = read_note(request.notes)
    report(progress, "reading image")
    image = read_image(request.image, keep_identifiers=request.keep_identifiers, settings=settings)
    if min(image.info.rows, image.info.columns) < MIN_IMAGE_SIDE:
        raise BadInput(
            f"{image.info.filename} is {image.info.columns}x{image.info.rows} pixels; Sahay needs at least "
            f"{MIN_IMAGE_SIDE} pixels on each side to analyse an image."
        )
    report(progress, "loading model")
    bundle, model_choice = resolve(
        request.model, image.info, settings, progress=counter(progress, "downloading", unit="bytes")
    )
    predictor = (load_predictor or Predictor)(bundle)
    report(progress, f"running {predictor.manifest.name}")
    analysis, prediction = classify(
        image, predictor, force=request.force, notes=reading, model_choice=model_choice
    )
    if request.out_dir is None:
        return analysis
    options = request.explain
    explained = None
    if request.heatmaps:
        from sahay.explain.explainer import explain_prediction

        report(progress, f"explaining ({options.method})")
        explained = explain_prediction(
            predictor,
            prediction,
            image,
            heatmap_targets(analysis.findings, options.top_k),
            options,
            counter(progress, f"explaining ({options.method})", unit="evaluations"),
        )
    max_side = None if request.full_resolution else OVERLAY_MAX_SIDE
    _write_outputs(
        analysis,
        image,
        explained,
        predictor,
        request.out_dir,
        options.opacity,
        max_side,
        request.side_by_side,
    )
    return analysis


def classify(
    image: LoadedImage,
    predictor: Predictor,
    *,
    force: bool = False,
    notes: NoteReading | None = None,
    model_choice: list[str] | None = None,
    prediction: Prediction | None = None,
) -> tuple[Analysis, Prediction]:
    """Check that the image suits the model, predict, and build the Analysis (no files, no explanations).

    Raises ``OutOfDomain`` for an image the model was not made for, unless ``force``.
    ``model_choice`` holds the sentences that explain how the model was picked. ``prediction`` is
    the image's prediction when the caller made it already (in a batch).
    """
    from sahay.analysis import DEMONSTRATION_NOTICE, Analysis, FieldOfView
    from sahay.models.domain import assess, metadata_problems
    from sahay.notes.fusion import fuse

    manifest = predictor.manifest
    problems = metadata_problems(image.info, manifest, predictor.ood)
    if problems and not force:
        raise _refusal(image.info.filename, problems)
    prediction = prediction or predictor.predict([image.pixels])[0]
    quality = assess(image.info, manifest, predictor.ood, prediction.features, problems)
    if quality.in_domain is False and not force:
        raise _refusal(image.info.filename, quality.checks)
    quality.forced = force and quality.in_domain is False

    warnings = [*image.warnings, *(model_choice or [])]
    if quality.forced:
        warnings.append(f"{FORCED_PREFIX}: {'; '.join(quality.checks)}. The findings may mean nothing.")
    if predictor.ood is None:
        warnings.append(
            f"Model {manifest.name} has no out-of-domain reference, so unsuitable images are not detected; "
            "an administrator can fit one from the model's training images (docs/models.md)."
        )
    warnings += manifest.limitations
    if manifest.weights.unverified:
        warnings.append(manifest.weights.unverified_notice(manifest.name))
    if manifest.calibration.method == "none":
        warnings.append(
            f"Model {manifest.name} has no fitted calibration: "
            "its probabilities are the network's raw scores."
        )
    analysis = Analysis(
        image=image.info,
        model=manifest.card(),
        findings=prediction.findings,
        quality=quality,
        field_of_view=FieldOfView(
            left=prediction.crop.left,
            top=prediction.crop.top,
            width=prediction.crop.width,
            height=prediction.crop.height,
        ),
        notes=notes,
        fusion=fuse(prediction.findings, notes) if notes is not None else None,
        warnings=warnings,
        demonstration_notice=DEMONSTRATION_NOTICE if manifest.demonstration else None,
    )
    return analysis, prediction


def _refusal(filename: str, problems: list[str]) -> OutOfDomain:
    return OutOfDomain(
        f"{filename} does not look like an image this model was made for: {'; '.join(problems)}.",
        hints={
            "cli": "Choose another model with --model, or analyse it anyway with --force.",
            "api": "Choose another model (the model field), or analyse it anyway (force=true).",
        },
    )


def default_out_dir(image_path: str | os.PathLike[str]) -> Path:
    """Where results go when the caller names no folder: ``sahay-out/<image name>``."""
    return DEFAULT_OUT_ROOT / Path(image_path).stem


def heatmap_targets(findings: list[Finding], top_k: int = DEFAULT_TOP_K) -> list[int]:
    """Indices of the ``top_k`` most probable positive findings, or of the ``top_k`` most probable
    findings when none is positive; in the model's label order, so files and tests are stable."""
    ranked = sorted(range(len(findings)), key=lambda i: findings[i].probability, reverse=True)
    positive = [i for i in ranked if findings[i].positive]
    return sorted((positive or ranked)[:top_k])


def _write_outputs(
    analysis: Analysis,
    image: LoadedImage,
    explained: ExplanationSet | None,
    predictor: Predictor,
    out: Path,
    opacity: float,
    max_side: int | None = OVERLAY_MAX_SIDE,
    side_by_side: bool = False,
) -> None:
    """Stage every file first and move them in last, so a failure leaves nothing half-written.

    A previous result in the same folder is replaced as a whole: its heatmaps never stay
    beside a new ``analysis.json``.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))
    except OSError as exc:
        raise BadInput(f"cannot write results to {out} ({exc.strerror or exc}).") from exc
    try:
        if explained is not None:
            _stage_explanations(
                analysis, image, explained, predictor, staging, opacity, max_side, side_by_side
            )
        (out / ANALYSIS_FILE).unlink(missing_ok=True)
        shutil.rmtree(out / HEATMAP_DIR, ignore_errors=True)
        if explained is not None:
            (staging / HEATMAP_DIR).rename(out / HEATMAP_DIR)
        atomic_write_text(out / ANALYSIS_FILE, analysis.to_json() + "\n")
    except OSError as exc:
        raise BadInput(f"cannot write results to {out} ({exc.strerror or exc}).") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage_explanations(
    analysis: Analysis,
    image: LoadedImage,
    explained: ExplanationSet,
    predictor: Predictor,
    staging: Path,
    opacity: float,
    max_side: int | None,
    side_by_side: bool,
) -> None:
    import numpy as np

    from sahay.analysis import DEMONSTRATION_BANNER, Explanation
    from sahay.explain.overlay import render_overlay, render_side_by_side

    manifest = predictor.manifest
    method = explained.method
    folder = staging / HEATMAP_DIR
    folder.mkdir()
    banner = DEMONSTRATION_BANNER if manifest.demonstration else None
    stems = _file_stems([analysis.findings[item.index].label for item in explained.findings])
    pixels, scale = _display_size(image.pixels, max_side)
    maps = {}
    pictures = []
    for item, stem in zip(explained.findings, stems, strict=True):
        finding = analysis.findings[item.index]
        maps[stem] = item.heatmap.astype(np.float16)  # 3 decimals suffice for a map; a third the bytes
        caption = f"{finding.label}: p={finding.probability:.2f} (threshold {finding.threshold:.2f})"
        regions = [_scaled(region, scale) for region in item.regions]
        kinds = [(render_overlay, "")] + (
            [(render_side_by_side, SIDE_BY_SIDE_SUFFIX)] if side_by_side else []
        )
        for render, suffix in kinds:
            pictures.append(
                (render, item.heatmap, f"{caption} - {method.title}", regions, f"{stem}{suffix}.png")
            )

    def draw(render: Any, heatmap: Any, caption: str, regions: list[Any], name: str) -> None:
        picture = render(pixels, heatmap, caption=caption, banner=banner, opacity=opacity, regions=regions)
        # zlib level 3: 7 % smaller than level 1 for 0.04 s; level 6 doubled the time of each picture.
        picture.save(folder / name, compress_level=3)

    # PNG encoding is most of the heatmaps' cost and Pillow releases the GIL while it encodes.
    with ThreadPoolExecutor(max_workers=min(len(pictures), os.cpu_count() or 1) or 1) as pool:
        for done in [pool.submit(draw, *picture) for picture in pictures]:
            done.result()
    for item, stem in zip(explained.findings, stems, strict=True):
        finding = analysis.findings[item.index]
        finding.explanation = Explanation(
            method=method.name,
            method_title=method.title,
            class_specific=method.class_specific,
            target_layer=explained.target_layer,
            model_evaluations=explained.evaluations,
            overlay_png=f"{HEATMAP_DIR}/{stem}.png",
            side_by_side_png=f"{HEATMAP_DIR}/{stem}{SIDE_BY_SIDE_SUFFIX}.png" if side_by_side else None,
            array_npz=f"{HEATMAP_DIR}/{MAPS_FILE}",
            array_key=stem,
            array_shape=(int(item.heatmap.shape[0]), int(item.heatmap.shape[1])),
            regions=item.regions,
            lung_fields=explained.lung_fields,
            summary=item.summary,
            faithfulness=item.faithfulness,
        )
    with open(folder / MAPS_FILE, "wb") as handle:
        np.savez_compressed(handle, **maps)


def _display_size(pixels: Any, max_side: int | None) -> tuple[Any, float]:
    """The image at display size (long side at most ``max_side``) and the scale applied."""
    import cv2

    longest = max(pixels.shape[:2])
    if max_side is None or longest <= max_side:
        return pixels, 1.0
    scale = max_side / longest
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), scale


def _scaled(region: Any, scale: float) -> Any:
    """A region's box drawn on the display-size overlay; analysis.json keeps the original pixels."""
    if scale == 1.0:
        return region
    x, y, width, height = region.box
    box = (round(x * scale), round(y * scale), max(1, round(width * scale)), max(1, round(height * scale)))
    return region.model_copy(update={"box": box})


def _file_stems(labels: list[str]) -> list[str]:
    """Safe, distinct file names for labels ("a b" and "a_b" must not share a file)."""
    stems: list[str] = []
    for label in labels:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "finding"
        stem, n = base, 1
        while stem.lower() in {s.lower() for s in stems}:
            n += 1
            stem = f"{base}-{n}"
        stems.append(stem)
    return stems
