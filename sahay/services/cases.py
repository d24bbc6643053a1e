"""The case library as use cases: add, import, list, show, remove, reindex, search and evaluate.

The CLI and the web service call these; the library itself (storage, vectors) is ``sahay.cases``.
``CaseOut`` and ``SimilarCaseOut`` are the one JSON form of a case, for ``--json`` and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from sahay.cases.library import CaseDetail, CaseLibrary, CaseSummary, ImportReport, SearchResult
from sahay.cases.search import MODES, Weights
from sahay.config import Settings
from sahay.errors import BadInput, SahayError
from sahay.progress import Progress, counter

if TYPE_CHECKING:
    from sahay.services.workspace import Workspace
    from sahay.store.records import UserRecord

__all__ = [
    "CaseDetailOut",
    "CaseLibrary",
    "CaseOut",
    "CaseSearch",
    "CaseSummary",
    "SimilarCaseOut",
    "case_detail",
    "case_thumbnail",
    "evaluate",
    "import_dataset",
    "open_library",
    "reindex",
    "search",
    "similar",
]


class CaseOut(BaseModel):
    """A case as the CLI's ``--json`` and the API show it (de-identified; no notes or paths)."""

    id: str
    created_at: datetime
    modality: str | None
    model: str
    diagnosis: str | None
    positive_findings: list[str]
    tags: list[str]

    @classmethod
    def of(cls, case: CaseSummary) -> CaseOut:
        return cls(
            id=case.id,
            created_at=case.created_at,
            modality=case.modality,
            model=case.model,
            diagnosis=case.diagnosis,
            positive_findings=list(case.positive_findings),
            tags=list(case.tags),
        )


class SimilarCaseOut(CaseOut):
    similarity: float
    signals: dict[str, float | None]
    """Each signal's own similarity (image, text, findings); None where the query lacked it."""

    @classmethod
    def of_result(cls, result: SearchResult) -> SimilarCaseOut:
        return cls(
            **CaseOut.of(result.case).model_dump(), similarity=result.similarity, signals=result.signals
        )


def open_library(settings: Settings | None = None) -> CaseLibrary:
    """The case library (close it, or use it in a ``with`` block)."""
    return CaseLibrary(settings)


@dataclass(frozen=True)
class CaseSearch:
    """Search with exactly one of an image, an analysis.json or words."""

    image: Path | None = None
    analysis: Path | None = None
    text: str | None = None
    k: int = 5
    modality: str | None = None
    mode: str = "blend"
    weights: str | None = None
    """Blend weights as written on the command line, e.g. ``image=0.6,text=0.2,findings=0.2``."""
    model: str | None = None
    """The model that embeds a query image (default: the one the library's cases used)."""

    def check(self) -> Weights:
        if sum(bool(value) for value in (self.image, self.analysis, self.text)) != 1:
            raise BadInput("give exactly one of --image, --analysis or --text")
        return parse_blend(self.mode, self.weights)


def parse_blend(mode: str, weights: str | None) -> Weights:
    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    return Weights.parse(weights) if weights else Weights()


def search(library: CaseLibrary, request: CaseSearch) -> list[SearchResult]:
    """The cases most similar to the query, best first."""
    from sahay.cases.query import analysis_query, image_query, text_query

    blend = request.check()
    query_modality = None
    if request.image is not None:
        query, query_modality = image_query(request.image, library, request.model)
    elif request.analysis is not None:
        query, query_modality = analysis_query(request.analysis, library)
    else:
        query = text_query(request.text or "", library)
    return library.search(
        query,
        k=request.k,
        mode=request.mode,  # type: ignore[arg-type]  # checked above
        weights=blend,
        modality=request.modality,
        query_modality=query_modality,
    )


def reindex(library: CaseLibrary, progress: Progress | None = None) -> int:
    """Write every case's vectors into the configured index again; returns how many."""
    return library.reindex(progress=counter(progress, "re-embedding cases", unit="cases"))


def import_dataset(
    library: CaseLibrary,
    data: Path,
    *,
    model: str,
    split: str | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> ImportReport:
    """Each image of an ImageFolder or CSV dataset becomes a case, its label the confirmed diagnosis.

    Resumable: images already imported from this dataset with this model are skipped without
    being read again. Images the model refuses (out of domain) are listed, not added.
    """
    from sqlalchemy import select

    from sahay.cases.library import diagnosis_from_target, relative_source
    from sahay.datasets import SPLITS, load_dataset
    from sahay.imaging import read_image
    from sahay.models.predictor import Predictor
    from sahay.models.registry import find_bundle
    from sahay.services.analyze import classify
    from sahay.store import CaseRecord, session_scope

    settings = library.settings
    predictor = Predictor(find_bundle(model, settings))
    manifest = predictor.manifest
    dataset = load_dataset(data, **dataset_options)
    if split is not None and split not in SPLITS:
        raise BadInput(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    samples = [s for name in SPLITS if split in (None, name) for s in dataset.splits.get(name, [])]
    base = dataset.image_root or (dataset.root if dataset.root.is_dir() else dataset.root.parent)
    with session_scope(settings) as session:
        done_sources = set(
            session.scalars(
                select(CaseRecord.source).where(
                    CaseRecord.model_name == manifest.name, CaseRecord.model_version == manifest.version
                )
            )
        )
    report = ImportReport()
    count = counter(progress, "importing cases", unit="images")
    for number, sample in enumerate(samples, start=1):
        source = relative_source(sample.path, base)
        if source in done_sources:
            report.already_in_library += 1
        else:
            try:
                image = read_image(sample.path, settings=settings)
                analysis, prediction = classify(image, predictor)
                diagnosis = diagnosis_from_target(sample.target, dataset.labels)
                library.add_prediction(
                    analysis, image, prediction, diagnosis=diagnosis, notes=sample.text, source=source
                )
                report.added += 1
            except SahayError as exc:
                if "already case" in str(exc):
                    report.already_in_library += 1
                else:
                    report.refused.append(f"{source}: {exc}")
        count(number, len(samples))
    return report


def evaluate(
    data: Path,
    *,
    model: str,
    k: int = 5,
    mode: str = "blend",
    weights: str | None = None,
    split: str | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> Any:
    """Leave-one-out precision@k of similar-case search on a labelled dataset."""
    from sahay.cases.evaluate import evaluate_cases

    blend = parse_blend(mode, weights)
    return evaluate_cases(
        data,
        model=model,
        k=k,
        mode=mode,  # type: ignore[arg-type]  # checked by parse_blend
        weights=blend if weights else None,
        split=split,
        progress=counter(progress, "embedding images", unit="images"),
        **dataset_options,
    )


class CaseFindingOut(BaseModel):
    label: str
    probability: float
    positive: bool


class CaseDetailOut(CaseOut):
    """One case opened from the similar-cases list: what the model found and the reader's comment."""

    comment: str | None
    findings: list[CaseFindingOut]


def _library_case(workspace: Workspace, case_id: str) -> CaseDetail:
    from sahay.errors import NotFound

    try:
        return workspace.case_library().get(case_id)
    except BadInput as exc:
        raise NotFound(f"no case {case_id!r} in the library") from exc


def case_detail(workspace: Workspace, user: UserRecord, case_id: str) -> CaseDetailOut:
    """A library case for a signed-in user (audited as viewed); de-identified, with no notes."""
    from sahay.store import audit
    from sahay.store.db import session_scope

    case = _library_case(workspace, case_id)
    with session_scope(workspace.settings) as session:
        audit.record(session, user, "view", "case", case.id)
    findings = [
        CaseFindingOut(label=f.label, probability=f.probability, positive=f.positive)
        for f in sorted(case.analysis.findings, key=lambda f: (not f.positive, -f.probability))
    ]
    return CaseDetailOut(**CaseOut.of(case).model_dump(), comment=case.comment, findings=findings)


def case_thumbnail(workspace: Workspace, case_id: str) -> Path:
    """The case's de-identified thumbnail (a PNG)."""
    return _library_case(workspace, case_id).thumbnail


def similar(workspace: Workspace, user: UserRecord, analysis_id: str, k: int = 5) -> list[SimilarCaseOut]:
    """The library cases most similar to one of a user's analyses (audited as a search)."""
    from sahay.cases.query import analysis_query
    from sahay.store import audit
    from sahay.store.db import session_scope

    with session_scope(workspace.settings) as session:
        record = workspace.get(session, user, analysis_id)
    library = workspace.case_library()
    results: list[SearchResult] = []
    with workspace.search_lock:
        if library.count() > 0:
            query, modality = analysis_query(
                workspace.folder(record) / "analysis.json",
                library,
                image_path=workspace.blobs.path(record.image_blob),
                load_predictor=workspace.predictors,
            )
            results = library.search(query, k=k, query_modality=modality)
    with session_scope(workspace.settings) as session:
        audit.record(session, user, "search", "analysis", record.id, {"k": k, "results": len(results)})
    return [SimilarCaseOut.of_result(r) for r in results]
