"""The DICOM Structured Report renderer (TID 1500, one measurement group per finding); see ``dicom``."""

from __future__ import annotations

from sahay.reports.dicom import dicom_bytes, structured_report
from sahay.reports.formats import RenderJob


def render(job: RenderJob) -> bytes:
    assert job.source is not None  # checked by render_with: needs_dicom
    return dicom_bytes(structured_report(job.analysis, job.source, analysis_dir=job.analysis_dir))
