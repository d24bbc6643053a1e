"""The report as PDF: the HTML page laid out by WeasyPrint (A4, running header, page numbers)."""

from __future__ import annotations

import logging

from sahay.reports.formats import RenderJob
from sahay.reports.html import render_html
from sahay.reports.model import Report


def render(job: RenderJob) -> bytes:
    return render_pdf(job.report())


def render_pdf(report: Report) -> bytes:
    from PIL import ImageFile
    from weasyprint import HTML

    # Importing WeasyPrint makes Pillow accept truncated images process-wide; Sahay refuses them.
    ImageFile.LOAD_TRUNCATED_IMAGES = False

    # WeasyPrint logs every unsupported CSS property at WARNING; they are not the user's problem.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = HTML(string=render_html(report)).write_pdf()
    assert pdf is not None  # write_pdf returns bytes when no target is given
    return pdf
