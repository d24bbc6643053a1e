"""The report as one self-contained, print-friendly HTML page (figures embedded as data URIs)."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path

from sahay.reports.formats import RenderJob
from sahay.reports.model import Report

FIGURE_MAX_SIDE = 1024
"""Figures are embedded at display size: a 2k overlay per finding made reports of tens of MB."""
FIGURE_JPEG_QUALITY = 88


@dataclass(frozen=True)
class _EmbeddedFigure:
    label: str
    caption: str
    src: str


def render(job: RenderJob) -> bytes:
    return render_html(job.report()).encode("utf-8")


def render_html(report: Report) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("sahay.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=False,
    )
    environment.filters["words"] = _keyword_words
    figures = [
        _EmbeddedFigure(
            label=f.label,
            caption=f.caption,
            src="data:image/jpeg;base64," + base64.b64encode(_display_copy(f.path)).decode("ascii"),
        )
        for f in report.figures
    ]
    return environment.get_template("report.html.j2").render(report=report, figures=figures)


def _display_copy(path: Path) -> bytes:
    """The overlay at display size as JPEG; the full-resolution PNG stays in the analysis folder."""
    from PIL import Image

    with Image.open(path) as image:
        copy = image.convert("RGB")
    copy.thumbnail((FIGURE_MAX_SIDE, FIGURE_MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=FIGURE_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def _keyword_words(keyword: str) -> str:
    """A DICOM keyword in words: 'StudyInstanceUID' -> 'Study instance UID'."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", keyword).split()
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])
