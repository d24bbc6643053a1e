"""Analyse a study in the archive: pull it, analyse each image, push an SR and heatmap captures back.

The results join the same study as new series: a DICOM Structured Report and Secondary Captures
of the heatmaps. Searching, pulling and pushing on their own are ``sahay.pacs.client.Archive``'s.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Literal

import pydicom
from pydantic import BaseModel, Field
from pydicom.dataset import Dataset

from sahay.config import Settings, get_settings
from sahay.errors import BadInput, OutOfDomain
from sahay.fileio import atomic_write_bytes
from sahay.imaging.reader import read_dicom_dataset
from sahay.pacs.client import Archive, StoreResult, check_uid, default_pull_dir, dicom_values
from sahay.progress import Progress, report

DEFAULT_ANALYSIS_ROOT = Path("sahay-out")
RESULTS_DIR = "dicom"

__all__ = [
    "Archive",
    "StudyAnalysis",
    "analyze_study",
    "default_analysis_dir",
    "default_pull_dir",
    "open_archive",
]


def open_archive(settings: Settings | None = None) -> Archive:
    """The archive that settings name (``SAHAY_PACS_URL``); users never give a URL."""
    return Archive.from_settings(settings or get_settings())


class InstanceOutcome(BaseModel):
    """What ``analyze_study`` did with one instance of the study."""

    sop_instance_uid: str
    series_uid: str | None = None
    status: Literal["analysed", "skipped", "refused"]
    reason: str | None = None
    positive_findings: list[str] = Field(default_factory=list)
    analysis_dir: Path | None = None
    results: list[str] = Field(
        default_factory=list, description="SOPInstanceUIDs of the SR and Secondary Captures made from it"
    )


class StudyAnalysis(BaseModel):
    """The result of ``analyze_study``: one outcome per instance, and what was pushed back."""

    study_uid: str
    out_dir: Path
    instances: list[InstanceOutcome]
    stored: StoreResult

    @property
    def analysed(self) -> list[InstanceOutcome]:
        return [i for i in self.instances if i.status == "analysed"]


def analyze_study(
    archive: Archive,
    study_uid: str,
    *,
    out_dir: Path,
    series_uid: str | None = None,
    model: str | None = None,
    force: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> StudyAnalysis:
    """Pull a study, analyse each image in it, and push an SR and heatmap Secondary Captures back.

    The results join the same study as new series, so the archive's viewers show them beside
    the images. Instances without pixel data (reports, for example) and Sahay's own earlier
    results are skipped; an image the model refuses (out of domain, unreadable) is reported
    and the others go on. Everything is also kept under ``out_dir``: the pulled instances in
    ``source/``, and per instance ``<SOPInstanceUID>/`` with ``analysis.json``, ``heatmaps/`` and
    ``dicom/`` (copies of what was pushed).
    """
    from sahay.models.predictor import PredictorCache
    from sahay.models.registry import resolve
    from sahay.reports.dicom import secondary_captures, structured_report
    from sahay.services.analyze import analyze

    settings = settings or get_settings()
    # Each model is loaded once for the whole study; a wrong name fails before the pull.
    predictors = PredictorCache()
    if model:
        predictors(resolve(model, None, settings)[0])
    report(progress, f"pulling study {study_uid}")
    paths = archive.retrieve(study_uid, series_uid, dest=out_dir / "source")
    outcomes: list[InstanceOutcome] = []
    outgoing: list[Path] = []  # files, not datasets: a large study's captures need not fit in memory
    for number, path in enumerate(sorted(paths), start=1):
        try:
            source = read_dicom_dataset(path, settings=settings)
        except BadInput as exc:  # a hostile or corrupt instance is reported; the study goes on
            outcomes.append(InstanceOutcome(sop_instance_uid=path.stem, status="refused", reason=str(exc)))
            continue
        outcome = InstanceOutcome(
            sop_instance_uid=path.stem,
            series_uid=str(source.get("SeriesInstanceUID", "")) or None,
            status="skipped",
        )
        outcomes.append(outcome)
        skip = _reason_to_skip(source)
        if skip:
            outcome.reason = skip
            continue
        report(progress, f"analysing instance {number} of {len(paths)}")
        analysis_dir = out_dir / path.stem
        try:
            analysis = analyze(
                path,
                model=model,
                load_predictor=predictors,
                out_dir=analysis_dir,
                keep_identifiers=True,
                force=force,
                settings=settings,
            )
            results = [structured_report(analysis, source, analysis_dir=analysis_dir)]
            results += secondary_captures(analysis, source, analysis_dir)
        except (OutOfDomain, BadInput) as exc:
            outcome.status = "refused"
            outcome.reason = str(exc)
            continue
        outgoing += _keep_copies(results, analysis_dir)
        outcome.status = "analysed"
        outcome.analysis_dir = analysis_dir
        outcome.positive_findings = [f.label for f in analysis.positive_findings]
        outcome.results = [str(r.SOPInstanceUID) for r in results]
    stored = StoreResult()
    if outgoing:
        report(progress, f"pushing {len(outgoing)} results to the archive")
        stored = archive.store(outgoing)
    return StudyAnalysis(study_uid=study_uid, out_dir=out_dir, instances=outcomes, stored=stored)


def _reason_to_skip(source: Dataset) -> str | None:
    if "PixelData" not in source and "FloatPixelData" not in source and "DoubleFloatPixelData" not in source:
        return f"no pixel data ({source.get('Modality', 'no modality')}, e.g. a report)"
    if _made_by_sahay(source):
        return "a result Sahay made earlier"
    return None


def _made_by_sahay(source: Dataset) -> bool:
    """Sahay's own Secondary Captures carry its name as manufacturer or software; never re-analyse them."""
    names = [
        str(source.get("Manufacturer", "")),
        *[str(v) for v in dicom_values(source.get("SoftwareVersions"))],
    ]
    return any(name.lower().startswith("sahay") for name in names)


def _keep_copies(results: list[Dataset], folder: Path) -> list[Path]:
    """Keep what is pushed beside the analysis (``dicom/``), so the local record matches the archive's.

    The folder is replaced as a whole, like the heatmaps: a re-run leaves no older results beside new ones.
    """
    shutil.rmtree(folder / RESULTS_DIR, ignore_errors=True)
    paths = []
    for dataset in results:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        path = folder / RESULTS_DIR / f"{str(dataset.Modality).lower()}-{dataset.SOPInstanceUID}.dcm"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def default_analysis_dir(study_uid: str) -> Path:
    """Where ``sahay pacs analyze`` keeps its work when no folder is named: ``sahay-out/<study UID>``."""
    return DEFAULT_ANALYSIS_ROOT / check_uid(study_uid, "study UID")
