"""The DICOM Secondary Capture renderer: one capture per heatmap overlay; see ``dicom``."""

from __future__ import annotations

import re

from sahay.errors import BadInput
from sahay.reports.dicom import dicom_bytes, secondary_captures
from sahay.reports.formats import RenderJob


def render(job: RenderJob) -> list[tuple[str, bytes]]:
    assert job.source is not None  # checked by render_with: needs_dicom
    if job.analysis_dir is None:
        raise BadInput("dicom-sc needs the folder that holds the analysis's overlays")
    captures = secondary_captures(job.analysis, job.source, job.analysis_dir)
    return [
        (f"{job.stem}-{_slug(str(ds.get('ImageComments', 'overlay')).split(':', 1)[0])}.dcm", dicom_bytes(ds))
        for ds in captures
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "overlay"
