"""Turn what the user searches with (an image, an analysis, or words) into query vectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sahay.analysis import load_analysis
from sahay.cases.library import (
    CaseLibrary,
    case_text,
    embedding_bundle,
    locate_image,
    model_space,
    prediction_vectors,
    predictor_for,
)
from sahay.cases.search import QueryVectors, normalised
from sahay.errors import BadInput
from sahay.imaging import read_image
from sahay.models.bundle import Bundle
from sahay.models.predictor import Predictor


def image_query(
    path: Path, library: CaseLibrary, model: str | None = None
) -> tuple[QueryVectors, str | None]:
    """Vectors of an image, made by ``model`` or by the model the library's cases were embedded with.

    Returns the vectors and the image's modality (None for PNG, JPEG and TIFF).
    """
    image = read_image(path, settings=library.settings)
    predictor = Predictor(embedding_bundle(model or _library_model(library), library.settings))
    image_vector, findings_vector = prediction_vectors(predictor.predict([image.pixels])[0])
    manifest = predictor.manifest
    space = model_space(manifest.name, manifest.version)
    return QueryVectors(image=image_vector, findings=findings_vector, model_space=space), image.info.modality


def analysis_query(
    analysis_path: Path,
    library: CaseLibrary,
    image_path: Path | None = None,
    load_predictor: Callable[[Bundle], Predictor] = Predictor,
) -> tuple[QueryVectors, str | None]:
    """Vectors of an ``analysis.json``: its findings, its words, and its image when it can be found."""
    analysis = load_analysis(analysis_path)
    card = analysis.model
    probabilities = np.array([f.probability for f in analysis.findings], dtype=np.float32)
    query = QueryVectors(findings=normalised(probabilities), model_space=model_space(card.name, card.version))
    try:
        image_file = locate_image(analysis, analysis_path, image_path)
    except BadInput:
        if image_path is not None:
            raise
        image_file = None  # the findings and words still search; the image signal is left out
    if image_file is not None:
        image = read_image(image_file, settings=library.settings)
        prediction = predictor_for(analysis, library.settings, load_predictor).predict([image.pixels])[0]
        query.image = prediction_vectors(prediction)[0]
    mentioned = sorted(analysis.notes.concepts()) if analysis.notes else []
    words = case_text(None, None, ", ".join(mentioned), [f.label for f in analysis.positive_findings], [])
    if words:
        embedder = library.text_embedder()
        query.text, query.text_space = embedder.embed([words])[0], embedder.name
    return query, analysis.image.modality


def text_query(text: str, library: CaseLibrary) -> QueryVectors:
    if not text.strip():
        raise BadInput("the search text is empty; give words to search for with --text")
    embedder = library.text_embedder()
    return QueryVectors(text=embedder.embed([text.strip()])[0], text_space=embedder.name)


def _library_model(library: CaseLibrary) -> str:
    spaces = library.model_spaces()
    if not spaces:
        raise BadInput(
            "the case library is empty",
            hints={"cli": "Add cases with `sahay cases add` or `sahay cases import`."},
        )
    if len(spaces) > 1:
        raise BadInput(
            f"the library's cases were embedded with several models ({', '.join(sorted(spaces))})",
            hints={"cli": "Choose one with --model."},
        )
    return next(iter(spaces)).rsplit("@", 1)[0]
