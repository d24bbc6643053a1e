"""The case library: analysed images with their notes, confirmed diagnosis, report and tags.

A case keeps a de-identified copy of the analysed image (the displayed pixels as a PNG, so no
DICOM header travels with it; text burned into the pixels is not removed), a thumbnail, the
Analysis without identifiers, and three vectors in the vector index (``sahay.cases.search``).
Rows live in the database (``sahay.store``), images in the content-addressed blob store.

Example:
    >>> library = CaseLibrary()                                            # doctest: +SKIP
    >>> case = library.add_analysis(Path("out/analysis.json"), diagnosis="pneumonia")  # doctest: +SKIP
    >>> library.search(QueryVectors(...), k=5)                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from sahay.analysis import Analysis, load_analysis
from sahay.cases.search import (
    COLLECTION_PREFIX,
    SIGNALS,
    Mode,
    QueryVectors,
    Ranked,
    Weights,
    normalised,
    rank,
    signal_collection,
)
from sahay.config import Settings, get_settings
from sahay.errors import BadInput, ModelUnavailable
from sahay.fileio import sha256_file
from sahay.imaging import LoadedImage, read_image
from sahay.imaging.raster import png_bytes
from sahay.models.bundle import Bundle
from sahay.models.predictor import Prediction, Predictor
from sahay.models.registry import find_bundle
from sahay.search.vectors import UsesVectorIndex, VectorIndex
from sahay.store import BlobStore, CaseRecord, session_scope

THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class CaseSummary:
    id: str
    created_at: datetime
    modality: str | None
    model: str
    diagnosis: str | None
    tags: list[str]
    positive_findings: list[str]
    thumbnail: Path


@dataclass(frozen=True)
class CaseDetail(CaseSummary):
    analysis: Analysis
    notes: str | None
    comment: str | None
    report: str | None
    image: Path
    source: str | None


@dataclass(frozen=True)
class SearchResult:
    case: CaseSummary
    similarity: float
    signals: dict[str, float | None]


@dataclass
class ImportReport:
    added: int = 0
    already_in_library: int = 0
    refused: list[str] = field(default_factory=list)
    """Images that could not be read or that the model refused, with the reason."""


def model_space(name: str, version: str) -> str:
    return f"{name}@{version}"


def case_text(
    diagnosis: str | None,
    comment: str | None,
    notes: str | None,
    positive_findings: Sequence[str],
    tags: Sequence[str],
) -> str:
    """The words a case is found by in text search; empty when it has none."""
    parts = [diagnosis, comment, notes]
    if positive_findings:
        parts.append("Findings: " + ", ".join(positive_findings))
    if tags:
        parts.append("Tags: " + ", ".join(tags))
    return ". ".join(p.strip() for p in parts if p and p.strip())


def prediction_vectors(prediction: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """The image vector (pooled features) and the findings vector (probabilities), normalised."""
    probabilities = np.array([f.probability for f in prediction.findings], dtype=np.float32)
    return normalised(prediction.features), normalised(probabilities)


class CaseLibrary(UsesVectorIndex):
    """Cases in the database, their files in the blob store, their vectors in the vector index."""

    def __init__(self, settings: Settings | None = None, index: VectorIndex | None = None) -> None:
        self.settings = settings or get_settings()
        self.blobs = BlobStore(self.settings.blobs_dir)
        self._index = index

    # Adding -------------------------------------------------------------------------------

    def add_analysis(
        self,
        analysis_path: Path,
        *,
        image_path: Path | None = None,
        diagnosis: str | None = None,
        comment: str | None = None,
        notes: str | None = None,
        tags: Sequence[str] = (),
        report: str | None = None,
        model: str | None = None,
    ) -> CaseDetail:
        """Add the case of an ``analysis.json``; its image is ``image_path`` or found beside it by
        name, and ``model`` the bundle folder that made it when it is not installed."""
        analysis = load_analysis(analysis_path)
        image_file = locate_image(analysis, analysis_path, image_path)
        image = read_image(image_file, settings=self.settings)
        predictor = predictor_for(analysis, self.settings, model=model)
        prediction = predictor.predict([image.pixels])[0]
        case_id = self._store(analysis, image, prediction, diagnosis, comment, notes, tags, report, None)
        return self.get(case_id)

    def add_prediction(
        self,
        analysis: Analysis,
        image: LoadedImage,
        prediction: Prediction,
        *,
        diagnosis: str | None = None,
        notes: str | None = None,
        tags: Sequence[str] = (),
        source: str | None = None,
    ) -> str:
        """Add a case from an analysis made in this process (``sahay.services.analyze.classify``)."""
        return self._store(analysis, image, prediction, diagnosis, None, notes, tags, None, source)

    def _store(
        self,
        analysis: Analysis,
        image: LoadedImage,
        prediction: Prediction,
        diagnosis: str | None,
        comment: str | None,
        notes: str | None,
        tags: Sequence[str],
        report: str | None,
        source: str | None,
    ) -> str:
        model = analysis.model
        with session_scope(self.settings) as session:
            existing = session.scalar(
                select(CaseRecord.id).where(
                    CaseRecord.image_sha256 == analysis.image.sha256,
                    CaseRecord.model_name == model.name,
                    CaseRecord.model_version == model.version,
                )
            )
        if existing is not None:
            raise BadInput(
                f"this image is already case {existing} (analysed with {model.name} {model.version})"
            )
        record = CaseRecord(
            modality=analysis.image.modality,
            body_part=analysis.image.body_part,
            image_sha256=analysis.image.sha256,
            model_name=model.name,
            model_version=model.version,
            labels=[f.label for f in analysis.findings],
            probabilities=[f.probability for f in analysis.findings],
            notes=notes,
            diagnosis=diagnosis,
            comment=comment,
            report=report,
            tags=sorted(set(tags)),
            source=source,
        )
        record.id = record.id or _new_id()
        record.analysis_json = _deidentified(analysis, record.id).to_json()
        record.image_blob = self.blobs.put_bytes(png_bytes(image.pixels, bits=16), ".png")
        record.thumbnail_blob = self.blobs.put_bytes(png_bytes(_thumbnail(image.pixels)), ".png")
        positives = [f.label for f in analysis.positive_findings]
        text = case_text(diagnosis, comment, notes, positives, record.tags)
        self._write_vectors(record, prediction, text)
        try:
            with session_scope(self.settings) as session:
                session.add(record)
        except IntegrityError as exc:  # another process added the same image meanwhile
            self._delete_vectors([record.id])
            raise BadInput(
                f"this image is already in the case library ({model.name} {model.version})"
            ) from exc
        except Exception:
            self._delete_vectors([record.id])
            raise
        return record.id

    def _write_vectors(self, record: CaseRecord, prediction: Prediction, text: str) -> None:
        image_vector, findings_vector = prediction_vectors(prediction)
        space = model_space(record.model_name, record.model_version)
        payload = {"modality": record.modality or "", "model": space}
        vectors: dict[str, np.ndarray] = {"image": image_vector, "findings": findings_vector}
        text_space = None
        if text:
            embedder = self.text_embedder()
            vectors["text"] = embedder.embed([text])[0]
            text_space = embedder.name
        for signal, vector in vectors.items():
            collection = signal_collection(signal, space, text_space)  # type: ignore[arg-type]
            self.index.ensure(collection, int(vector.shape[0]))
            self.index.upsert(collection, [record.id], vector[None, :], [payload])

    def text_embedder(self) -> Any:
        from sahay.search.embeddings import text_embedder  # loaded once per process, on first use

        return text_embedder(self.settings)

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Write every case's vectors again into the configured index, from the stored image and fields.

        For moving a library to a Qdrant server (``SAHAY_QDRANT_URL``), or rebuilding a lost index.
        The models the cases were embedded with must be installed (same name and version).
        """
        with session_scope(self.settings) as session:
            records = list(session.scalars(select(CaseRecord).order_by(CaseRecord.created_at)))
        predictors: dict[str, Predictor] = {}
        for number, record in enumerate(records, start=1):
            space = model_space(record.model_name, record.model_version)
            if space not in predictors:
                bundle = find_bundle(record.model_name, self.settings)
                if bundle.manifest.version != record.model_version:
                    raise BadInput(
                        f"case {record.id} was embedded with {space}, and the installed {record.model_name} "
                        f"is version {bundle.manifest.version}; install that version to reindex"
                    )
                predictors[space] = Predictor(bundle)
            pixels = read_image(self.blobs.path(record.image_blob), settings=self.settings).pixels
            prediction = predictors[space].predict([pixels])[0]
            analysis = Analysis.model_validate_json(record.analysis_json)
            positives = [f.label for f in analysis.positive_findings]
            text = case_text(record.diagnosis, record.comment, record.notes, positives, record.tags or [])
            self._write_vectors(record, prediction, text)
            if progress is not None:
                progress(number, len(records))
        return len(records)

    # Reading ------------------------------------------------------------------------------

    def count(self) -> int:
        with session_scope(self.settings) as session:
            return int(session.scalar(select(func.count()).select_from(CaseRecord)) or 0)

    def list_cases(
        self, *, limit: int = 50, modality: str | None = None, tag: str | None = None
    ) -> list[CaseSummary]:
        with session_scope(self.settings) as session:
            query = select(CaseRecord).order_by(CaseRecord.created_at.desc())
            if modality:
                query = query.where(CaseRecord.modality == modality)
            records = list(session.scalars(query))
        if tag:
            records = [r for r in records if tag in (r.tags or [])]
        return [self._summary(r) for r in records[:limit]]

    def get(self, case_id: str) -> CaseDetail:
        with session_scope(self.settings) as session:
            record = session.get(CaseRecord, case_id)
        if record is None:
            raise BadInput(f"no case {case_id!r} in the library; `sahay cases list` shows the cases")
        summary = self._summary(record)
        return CaseDetail(
            **vars(summary),
            analysis=Analysis.model_validate_json(record.analysis_json),
            notes=record.notes,
            comment=record.comment,
            report=record.report,
            image=self.blobs.path(record.image_blob),
            source=record.source,
        )

    def remove(self, case_id: str) -> None:
        """Delete a case, its vectors, and its files unless another case shares them."""
        with session_scope(self.settings) as session:
            record = session.get(CaseRecord, case_id)
            if record is None:
                raise BadInput(f"no case {case_id!r} in the library; `sahay cases list` shows the cases")
            blobs = {record.image_blob, record.thumbnail_blob}
            session.execute(delete(CaseRecord).where(CaseRecord.id == case_id))
        self._delete_vectors([case_id])
        with session_scope(self.settings) as session:
            images = session.scalars(select(CaseRecord.image_blob).where(CaseRecord.image_blob.in_(blobs)))
            thumbnails = session.scalars(
                select(CaseRecord.thumbnail_blob).where(CaseRecord.thumbnail_blob.in_(blobs))
            )
            shared = set(images) | set(thumbnails)
        for blob in blobs - shared:
            self.blobs.delete(blob)

    def _delete_vectors(self, ids: Sequence[str]) -> None:
        for collection in self.index.collections(prefix=f"{COLLECTION_PREFIX}-"):
            self.index.delete(collection, ids)

    def modalities(self) -> set[str]:
        with session_scope(self.settings) as session:
            return {m for m in session.scalars(select(CaseRecord.modality).distinct()) if m}

    def model_spaces(self) -> dict[str, int]:
        """``name@version`` of the models the cases were embedded with, and how many cases each."""
        with session_scope(self.settings) as session:
            rows = session.execute(
                select(CaseRecord.model_name, CaseRecord.model_version, func.count()).group_by(
                    CaseRecord.model_name, CaseRecord.model_version
                )
            )
            return {model_space(name, version): int(n) for name, version, n in rows}

    # Searching ----------------------------------------------------------------------------

    def search(
        self,
        query: QueryVectors,
        *,
        k: int = 5,
        mode: Mode = "blend",
        weights: Weights | None = None,
        modality: str | None = None,
        query_modality: str | None = None,
    ) -> list[SearchResult]:
        """The ``k`` most similar cases to ``query``; ``modality`` restricts the cases searched."""
        if self.count() == 0:
            raise BadInput(
                "the case library is empty",
                hints={"cli": "Add cases with `sahay cases add` or `sahay cases import`."},
            )
        held = self.modalities()
        if query_modality and held and query_modality not in held:
            raise BadInput(
                f"the query image is {query_modality}, and the library holds "
                f"{', '.join(sorted(held))} cases; search a library of the same modality"
            )
        if query.model_space is not None and (query.image is not None or query.findings is not None):
            spaces = self.model_spaces()
            if query.model_space not in spaces and mode != "text":
                raise BadInput(
                    f"no case in the library was embedded with model {query.model_space}; its models are "
                    f"{', '.join(sorted(spaces))}.",
                    hints={
                        "cli": "Search with --model set to one of them.",
                        "api": "Analyse the image with one of them to search the library.",
                    },
                )
        where = {"modality": modality} if modality else None
        ranked = rank(self.index, query, k=k, mode=mode, weights=weights, where=where)
        return [self._result(r) for r in ranked]

    def _result(self, ranked: Ranked) -> SearchResult:
        with session_scope(self.settings) as session:
            record = session.get(CaseRecord, ranked.id)
        if record is None:  # a vector whose row is gone (removed meanwhile)
            raise BadInput(f"case {ranked.id} was removed during the search; search again")
        return SearchResult(self._summary(record), ranked.similarity, ranked.signals)

    def _summary(self, record: CaseRecord) -> CaseSummary:
        analysis = Analysis.model_validate_json(record.analysis_json)
        return CaseSummary(
            id=record.id,
            created_at=record.created_at,
            modality=record.modality,
            model=model_space(record.model_name, record.model_version),
            diagnosis=record.diagnosis,
            tags=list(record.tags or []),
            positive_findings=[f.label for f in analysis.positive_findings],
            thumbnail=self.blobs.path(record.thumbnail_blob),
        )


# Helpers shared by the CLI's add and search -----------------------------------------------


def locate_image(analysis: Analysis, analysis_path: Path, given: Path | None) -> Path:
    """The analysed image: ``given``, or a file of the recorded name beside the analysis or here.

    Its sha256 must match the one the analysis recorded.
    """
    name = analysis.image.filename
    candidates = (
        [given] if given else [analysis_path.parent / name, analysis_path.parent.parent / name, Path(name)]
    )
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            if sha256_file(candidate) != analysis.image.sha256:
                raise BadInput(
                    f"{candidate} is not the image {analysis_path} was made from (its sha256 differs)"
                )
            return candidate
    if given:
        raise BadInput(f"{given} does not exist")
    raise BadInput(
        f"cannot find {name}, the image of {analysis_path}; give it with --image "
        "(analysis.json records only the image's name and sha256)"
    )


def embedding_bundle(name_or_path: str, settings: Settings) -> Bundle:
    """The model that embeds case images, by installed name or bundle folder. A model that was
    used from a folder and never installed is named with the two ways to fix it."""
    try:
        return find_bundle(name_or_path, settings)
    except ModelUnavailable as exc:
        raise ModelUnavailable(
            f"model {name_or_path!r} is not installed (it was probably used from a bundle folder): "
            "install it with `sahay models import FOLDER`, or give the folder with --model FOLDER"
        ) from exc


def predictor_for(
    analysis: Analysis,
    settings: Settings,
    load_predictor: Callable[[Bundle], Predictor] = Predictor,
    model: str | None = None,
) -> Predictor:
    """The model that made ``analysis`` (installed, or the bundle folder ``model``): same name,
    version and weights. ``load_predictor`` lets a long-lived caller reuse loaded models."""
    card = analysis.model
    bundle = embedding_bundle(model or card.name, settings)
    if bundle.manifest.name != card.name:
        raise BadInput(f"the analysis was made with model {card.name}, not {bundle.manifest.name}")
    if (bundle.manifest.version, bundle.manifest.weights.sha256) != (card.version, card.weights_sha256):
        raise BadInput(
            f"the installed {card.name} is version {bundle.manifest.version}, and the analysis was made with "
            f"version {card.version} (or other weights); its image vectors would not be comparable"
        )
    return load_predictor(bundle)


def _deidentified(analysis: Analysis, case_id: str) -> Analysis:
    image = analysis.image.model_copy(update={"identifiers": None, "filename": f"case-{case_id}.png"})
    return analysis.model_copy(update={"image": image})


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def diagnosis_from_target(target: np.ndarray, labels: Sequence[str]) -> str:
    present = [label for label, value in zip(labels, target, strict=True) if value == 1]
    return ", ".join(present) if present else "no finding"


def relative_source(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _new_id() -> str:
    from sahay.store.records import new_id

    return new_id()


__all__ = ["SIGNALS", "CaseDetail", "CaseLibrary", "CaseSummary", "ImportReport", "SearchResult"]
