"""Each user's stored analyses in the web service: analyse an upload, list, view, images and
heatmaps, delete; and the state the service's chat and case search share (one vector index).
Chat, reports and similar cases about a stored analysis are in ``services.chat``,
``services.reports`` and ``services.cases``. The API routes are thin calls into these.

Visibility is decided in one place, :meth:`Workspace.get`: owners see their analyses, admins see
all, and everyone else gets the same ``NotFound`` as for an id that does not exist.
Files live under ``$SAHAY_HOME/analyses/<id>/``; the upload itself is a content-addressed blob.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from sahay.analysis import Analysis, Explanation
from sahay.config import Settings
from sahay.errors import BadInput, InputTooLarge, NotFound, ServiceUnavailable
from sahay.explain.methods import get_method
from sahay.explain.options import ExplainOptions
from sahay.imaging.raster import png_bytes
from sahay.models.predictor import PredictorCache
from sahay.progress import Progress
from sahay.services.analyze import AnalyzeRequest, run_analysis
from sahay.services.models import check_installed
from sahay.statement import Statement, state
from sahay.store import audit
from sahay.store.blobs import BlobStore
from sahay.store.db import session_scope
from sahay.store.records import AnalysisRecord, CaseRecord, UserRecord

MAX_NOTES_CHARS = 20_000
ORPHAN_GRACE_S = 60.0
_CHUNK = 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """An uploaded image, already spooled to ``path`` (a file the workspace owns and removes)."""

    filename: str
    path: Path
    notes: str | None = None
    model: str | None = None
    explain: ExplainOptions = field(default_factory=ExplainOptions)
    force: bool = False

    def check(self) -> None:
        """What can be refused before any work (the file itself is checked by ``Workspace.create``)."""
        get_method(self.explain.method)


class AnalysisOut(Analysis):
    """The Analysis, with what the service keeps beside it, and its statement: the decisions with
    their rule and every notice, as every other output words them (``sahay.statement``)."""

    owner: str
    notes_text: str | None = None
    source_format: str
    statement: Statement

    @classmethod
    def of(cls, record: AnalysisRecord, analysis: Analysis, owner: str) -> AnalysisOut:
        return cls.of_analysis(analysis, owner, record.source_format, record.notes_text)

    @classmethod
    def of_analysis(
        cls, analysis: Analysis, owner: str, source_format: str, notes_text: str | None = None
    ) -> AnalysisOut:
        return cls(
            **analysis.model_dump(),
            owner=owner,
            notes_text=notes_text,
            source_format=source_format,
            statement=state(analysis),
        )


class AnalysisSummary(BaseModel):
    id: str
    created_at: datetime
    filename: str
    model: str
    modality: str | None
    positives: list[str]
    owner: str
    """The username of whoever uploaded the image (an administrator's history lists everyone's)."""

    @classmethod
    def of(cls, record: AnalysisRecord, owner: str) -> AnalysisSummary:
        return cls(
            id=record.id,
            created_at=record.created_at,
            filename=record.filename,
            model=record.model_name,
            modality=record.modality,
            positives=list(record.positives),
            owner=owner,
        )


class AnalysisPage(BaseModel):
    items: list[AnalysisSummary]
    total: int
    limit: int
    offset: int


def runs_in_background(explain: ExplainOptions) -> bool:
    """Perturbation methods take many model evaluations: the service runs them as jobs."""
    return get_method(explain.method).family == "perturbation"


class Workspace:
    def __init__(self, settings: Settings, predictors: PredictorCache | None = None) -> None:
        self.settings = settings
        self.predictors = predictors or PredictorCache()
        self.blobs = BlobStore(settings.blobs_dir)
        self.root = settings.home_dir / "analyses"
        self._index: Any = None
        self._knowledge: Any = None
        self._cases: Any = None
        self.search_lock = threading.Lock()
        # Storing an upload's blob with its row, and deleting a blob no row uses, must not interleave.
        self._blob_lock = threading.Lock()
        self._staging: set[Path] = set()  # uploads in progress; the sweep leaves these alone
        self._staging_lock = threading.Lock()

    # Creating ------------------------------------------------------------------------------

    def spool(self, filename: str, stream: BinaryIO) -> Upload:
        """Copy an upload's stream to a staging folder on disk (never whole into memory)."""
        staging = self._new_staging()
        source = staging / _safe_filename(filename)
        try:
            with source.open("wb") as handle:
                copied = 0
                while chunk := stream.read(_CHUNK):
                    copied += len(chunk)
                    if copied > self.settings.max_file_bytes:
                        raise self._too_large(filename, copied)
                    handle.write(chunk)
        except BaseException:
            self.discard(source)
            raise
        return Upload(filename=filename, path=source)

    def _too_large(self, filename: str, size: int) -> InputTooLarge:
        return InputTooLarge(
            f"{filename} is at least {size / 1e6:.1f} MB; the limit is "
            f"{self.settings.max_file_mb:g} MB (SAHAY_MAX_FILE_MB)"
        )

    def discard(self, path: Path) -> None:
        """Remove a spooled upload's staging folder (a refused or finished upload)."""
        with self._staging_lock:
            self._staging.discard(path.parent)
        shutil.rmtree(path.parent, ignore_errors=True)

    def _new_staging(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._staging_lock:
            staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.root))
            self._staging.add(staging)
        return staging

    def create(
        self, owner: UserRecord, upload: Upload, progress: Progress | None = None
    ) -> tuple[AnalysisRecord, Analysis]:
        """Analyse a spooled upload and store it. On any failure nothing is left behind."""
        try:
            size = upload.path.stat().st_size
            if size > self.settings.max_file_bytes:
                raise self._too_large(upload.filename, size)
            if not size:
                raise BadInput(f"{upload.filename or 'the upload'} is empty")
            notes = _clean_notes(upload.notes)
            if upload.model is not None:
                check_installed(upload.model, self.settings)
            source = upload.path
            out = source.parent / "analysis"
            request = AnalyzeRequest(
                source,
                model=upload.model,
                out_dir=out,
                notes=notes,
                explain=upload.explain,
                force=upload.force,
            )
            analysis = run_analysis(
                request, settings=self.settings, progress=progress, load_predictor=self.predictors
            )
            with self._blob_lock:
                return self._store(owner, analysis, source, out, notes)
        finally:
            self.discard(upload.path)

    def _store(
        self, owner: UserRecord, analysis: Analysis, source: Path, out: Path, notes: str | None
    ) -> tuple[AnalysisRecord, Analysis]:
        blob = self.blobs.put_file(source)
        final = self.root / analysis.id
        out.rename(final)
        try:
            with session_scope(self.settings) as session:
                record = AnalysisRecord(
                    id=analysis.id,
                    owner_id=owner.id,
                    created_at=analysis.created_at,
                    filename=analysis.image.filename[:255],
                    source_format=analysis.image.format,
                    modality=analysis.image.modality,
                    model_name=analysis.model.name,
                    positives=[f.label for f in analysis.positive_findings],
                    image_blob=blob,
                    notes_text=notes,
                )
                session.add(record)
                details: dict[str, object] = {"model": analysis.model.name}
                if analysis.quality is not None and analysis.quality.forced:
                    details["override"] = "analysed past the model's input checks at the user's request"
                audit.record(session, owner, "create", "analysis", analysis.id, details)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            with session_scope(self.settings) as session:
                if not _blob_in_use(session, blob):
                    self.blobs.delete(blob)
            raise
        return record, analysis

    def sweep(self, older_than_s: float = ORPHAN_GRACE_S) -> int:
        """Remove what an interrupted upload left (a crash, a killed process): staging folders no
        upload of this process owns, and analysis folders with no row older than ``older_than_s``
        (a younger one may be between its move and its row). Returns how many were removed.
        The service runs this at start-up and then every ``SAHAY_SWEEP_INTERVAL_S``."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        with session_scope(self.settings) as session:
            known = set(session.scalars(select(AnalysisRecord.id)))
        with self._staging_lock:
            in_progress = set(self._staging)
        removed = 0
        for folder in self.root.iterdir():
            if folder.name.startswith(".upload-"):
                orphan = folder not in in_progress
            else:
                orphan = _looks_like_id(folder.name) and folder.name not in known
                orphan = orphan and folder.stat().st_mtime < cutoff
            if orphan and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    # Reading -------------------------------------------------------------------------------

    def get(self, session: Session, user: UserRecord, analysis_id: str) -> AnalysisRecord:
        record = session.get(AnalysisRecord, analysis_id) if _looks_like_id(analysis_id) else None
        if record is None or (record.owner_id != user.id and user.role != "admin"):
            raise NotFound(f"no analysis {analysis_id!r}")
        return record

    def page(self, user: UserRecord, *, limit: int = 20, offset: int = 0) -> AnalysisPage:
        """The user's analyses (an admin's: everyone's), newest first."""
        with session_scope(self.settings) as session:
            query = select(AnalysisRecord, UserRecord.username).join(
                UserRecord, UserRecord.id == AnalysisRecord.owner_id
            )
            if user.role != "admin":
                query = query.where(AnalysisRecord.owner_id == user.id)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(
                query.order_by(AnalysisRecord.created_at.desc(), AnalysisRecord.id)
                .limit(limit)
                .offset(offset)
            )
            items = [AnalysisSummary.of(record, owner) for record, owner in rows]
        return AnalysisPage(items=items, total=int(total), limit=limit, offset=offset)

    def view(self, user: UserRecord, analysis_id: str) -> AnalysisOut:
        """An analysis for its reader, with what the service keeps beside it; audited as viewed."""
        with session_scope(self.settings) as session:
            record = self.get(session, user, analysis_id)
            analysis = self.load(record)
            owner = user if record.owner_id == user.id else session.get(UserRecord, record.owner_id)
            audit.record(session, user, "view", "analysis", record.id)
            return AnalysisOut.of(record, analysis, owner.username if owner else "unknown")

    def describe(self, user: UserRecord, record: AnalysisRecord, analysis: Analysis) -> AnalysisOut:
        """A just-created analysis as its owner sees it."""
        return AnalysisOut.of(record, analysis, user.username)

    def folder(self, record: AnalysisRecord) -> Path:
        return self.root / record.id

    def load(self, record: AnalysisRecord) -> Analysis:
        path = self.folder(record) / "analysis.json"
        if not path.is_file():
            raise NotFound(f"the files of analysis {record.id} are missing from {self.root}")
        return Analysis.from_json_file(path)

    def _visible(self, user: UserRecord, analysis_id: str) -> AnalysisRecord:
        with session_scope(self.settings) as session:
            return self.get(session, user, analysis_id)

    def image_png(
        self, user: UserRecord, analysis_id: str, window: tuple[float, float] | None = None
    ) -> bytes:
        """The analysed image as an 8-bit PNG, with a viewer's window/level for greyscale DICOM."""
        from sahay.imaging import read_image

        record = self._visible(user, analysis_id)
        image = read_image(self.blobs.path(record.image_blob), settings=self.settings, window=window)
        return png_bytes(image.pixels)

    def heatmap_overlay(self, user: UserRecord, analysis_id: str, label: str) -> Path:
        record = self._visible(user, analysis_id)
        return self.folder(record) / _explanation(self.load(record), label).overlay_png

    def heatmap_layer(self, user: UserRecord, analysis_id: str, label: str) -> bytes:
        """The map as an RGBA cividis layer at the image's size; alpha is the attribution's square root."""
        from matplotlib import colormaps

        from sahay.explain.overlay import COLORMAP

        record = self._visible(user, analysis_id)
        analysis = self.load(record)
        values = _explanation(analysis, label).load_map(self.folder(record))
        size = (analysis.image.columns, analysis.image.rows)
        resized = np.asarray(
            Image.fromarray(values.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
        )
        clipped = np.clip(resized, 0, 1)
        rgba = colormaps[COLORMAP](clipped)
        # Alpha rises faster than the value, so mid-level attribution is visible, not faint.
        rgba[..., 3] = np.sqrt(clipped)
        return png_bytes(rgba)

    # Changing ------------------------------------------------------------------------------

    def delete(self, user: UserRecord, analysis_id: str) -> None:
        """Delete an analysis: the row first (committed), then its files, so a failure never leaves
        a row without files. The upload goes too unless another analysis or a case holds it."""
        with self._blob_lock:
            with session_scope(self.settings) as session:
                record = self.get(session, user, analysis_id)
                blob = record.image_blob
                session.delete(record)
                audit.record(session, user, "delete", "analysis", analysis_id)
            shutil.rmtree(self.root / analysis_id, ignore_errors=True)
            with session_scope(self.settings) as session:
                if not _blob_in_use(session, blob):
                    self.blobs.delete(blob)

    # Shared search state ---------------------------------------------------------------

    def knowledge(self) -> Any:
        """One knowledge base for the service, indexed on first use."""
        with self.search_lock:
            if self._knowledge is None:
                from sahay.knowledge.index import KnowledgeBase

                self._knowledge = KnowledgeBase(self.settings, index=self._vector_index())
            return self._knowledge

    def _vector_index(self) -> Any:
        """The one vector index the knowledge base and the case library share (embedded Qdrant
        allows one client per folder)."""
        if self._index is None:
            try:
                from sahay.search.vectors import VectorIndex

                self._index = VectorIndex.open(self.settings)
            except ImportError as exc:
                raise ServiceUnavailable("chat and similar cases need: pip install 'sahay[search]'") from exc
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def case_library(self) -> Any:
        """The service's one case library (it shares the vector index with the knowledge base)."""
        with self.search_lock:
            if self._cases is None:
                from sahay.cases.library import CaseLibrary

                self._cases = CaseLibrary(self.settings, index=self._vector_index())
            return self._cases


def _blob_in_use(session: Session, blob: str) -> bool:
    """Whether another analysis or a case (its image or thumbnail) holds the same content."""
    analyses = select(func.count()).where(AnalysisRecord.image_blob == blob)
    cases = select(func.count()).where(or_(CaseRecord.image_blob == blob, CaseRecord.thumbnail_blob == blob))
    return bool(session.scalar(analyses)) or bool(session.scalar(cases))


def _explanation(analysis: Analysis, label: str) -> Explanation:
    finding = next((f for f in analysis.findings if f.label == label), None)
    if finding is None:
        raise NotFound(f"the analysis has no finding {label!r}")
    if finding.explanation is None:
        raise NotFound(f"the finding {label!r} has no heatmap (only explained findings have one)")
    return finding.explanation


def _looks_like_id(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{32}", text))


def _safe_filename(name: str) -> str:
    """The upload's base name, with anything a file system could misread replaced."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip("._") or "upload"
    return cleaned[:120] if cleaned != "analysis" else f"upload-{uuid.uuid4().hex[:8]}"


def _clean_notes(notes: str | None) -> str | None:
    if notes is None or not notes.strip():
        return None
    if len(notes) > MAX_NOTES_CHARS:
        raise BadInput(f"the notes have {len(notes)} characters; the limit is {MAX_NOTES_CHARS}")
    return notes
