"""The report as one self-contained, print-friendly HTML page (figures embedded as data URIs)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from sahay.reports.formats import RenderJob
from sahay.reports.model import Report


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
            src="data:image/png;base64," + base64.b64encode(f.path.read_bytes()).decode("ascii"),
        )
        for f in report.figures
    ]
    return environment.get_template("report.html.j2").render(report=report, figures=figures)


def _keyword_words(keyword: str) -> str:
    """A DICOM keyword in words: 'StudyInstanceUID' -> 'Study instance UID'."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", keyword).split()
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])
