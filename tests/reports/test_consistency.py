"""Every output tells the same truth: the same positive findings, the same decision rule and every
notice, in the CLI table, the HTML and PDF report, FHIR, the DICOM SR and SC, the chat's facts and
the API's JSON. The browser's DOM is checked against the API's JSON in tests/web/test_browser.py.

Two analyses: a real one (the demonstration model, forced past its input checks on a CT, with a
note), and a multiclass one, whose decision is the most probable class and whose thresholds of 1.0
must never be shown as the rule.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from sahay.analysis import Analysis, Finding, ModelCard
from sahay.chat.context import analysis_facts
from sahay.cli.analyze import print_analysis
from sahay.config import Settings
from sahay.reports.dicom import report_statements
from sahay.reports.export import export_report
from sahay.reports.fhir import render_fhir
from sahay.reports.html import render_html
from sahay.reports.model import build_report
from sahay.services.analyze import analyze
from sahay.services.workspace import AnalysisOut
from sahay.statement import state
from tests.chat.conftest import image_info
from tests.e2e.test_cli_analyze import DEMO

CT_SMALL = Path(get_testdata_file("CT_small.dcm", download=False))


def _words(text: str) -> str:
    """Text as a reader sees it: entities decoded, table rules, line wrapping and hyphens gone
    (pdftotext drops the hyphen where a line breaks in "out-of-domain")."""
    text = re.sub(r"[│┃┏┓┗┛━─┡┩└┘┌┐╇╈┼╭╮╰╯]", " ", html.unescape(text))
    return " ".join(text.replace("-", "").split())


def multiclass_analysis() -> Analysis:
    card = ModelCard(
        name="site-pneumonia",
        version="1",
        task="multiclass",
        modalities=["CR"],
        body_part="chest",
        intended_use="Chest radiographs of adults.",
        license="internal",
        weights_sha256="1" * 64,
        training_data="a site's folder of two classes",
        calibration_temperature=1.0,
    )
    findings = [  # what a 2-class bundle gives: the argmax is positive, thresholds are not the rule
        Finding(label="PNEUMONIA", probability=0.501, threshold=1.0, positive=True),
        Finding(label="NORMAL", probability=0.499, threshold=1.0, positive=False),
    ]
    return Analysis(
        image=image_info(modality="CR", body_part="CHEST"),
        model=card,
        findings=findings,
        warnings=[  # as the analysis service words it for a model without calibration
            "Model site-pneumonia has no fitted calibration: its probabilities are the network's raw scores."
        ],
    )


@pytest.fixture
def forced_demo(demo_installed: Settings, tmp_path: Path) -> Path:
    out = tmp_path / "ct"
    analyze(CT_SMALL, model=DEMO, out_dir=out, force=True, notes="No pleural effusion. Cough for a week.")
    return out / "analysis.json"


def _outputs(
    analysis: Analysis, analysis_dir: Path | None, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    print_analysis(analysis, None)
    report = build_report(analysis, analysis_dir)
    fhir = json.loads(render_fhir(report, analysis))
    conclusion = next(r for r in fhir["entry"] if r["resource"]["resourceType"] == "DiagnosticReport")
    return {
        "cli": _words(capsys.readouterr().out),
        "html": _words(render_html(report)),
        "fhir": _words(conclusion["resource"]["conclusion"]),
        "dicom statements": _words(" ".join(report_statements(analysis))),
        "chat facts": _words(" ".join(fact.text for fact in analysis_facts(analysis))),
        # What the web service answers, and the browser renders (the statement's own words).
        "api json": _words(AnalysisOut.of_analysis(analysis, "dr.rao", "dicom").statement.model_dump_json()),
    }


def _assert_same_truth(analysis: Analysis, outputs: dict[str, str]) -> None:
    statement = state(analysis)
    assert statement.notices, "these analyses carry notices"
    for name, text in outputs.items():
        for decision in statement.positives:
            named = decision.display.lower() in text.lower() or decision.label.lower() in text.lower()
            assert named, f"{name} omits {decision.label}"
        for notice in statement.notices:
            assert _words(notice.text) in text, f"{name} omits the {notice.kind} notice: {text[:1500]}"


def test_a_forced_demonstration_analysis_says_the_same_everywhere(
    forced_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    analysis = Analysis.from_json_file(forced_demo)
    outputs = _outputs(analysis, forced_demo.parent, capsys)
    sr = pydicom.dcmread(export_report(forced_demo, "dicom-sr", tmp_path / "sr.dcm", image=CT_SMALL)[0])
    outputs["dicom sr"] = _words(" ".join(str(e.value) for e in sr.iterall() if e.keyword == "TextValue"))
    pdf = export_report(forced_demo, "pdf", tmp_path / "r.pdf")[0]
    outputs["pdf"] = _words(_pdf_text(pdf))

    _assert_same_truth(analysis, outputs)
    kinds = [notice.kind for notice in state(analysis).notices]
    assert kinds[:2] == ["demonstration", "forced"]
    for name in ("cli", "html", "fhir", "dicom sr"):
        assert "Analysed at the user's request although" in outputs[name], name


def test_a_multiclass_result_is_stated_as_the_most_probable_class(capsys: pytest.CaptureFixture[str]) -> None:
    analysis = multiclass_analysis()
    outputs = _outputs(analysis, None, capsys)

    _assert_same_truth(analysis, outputs)
    for name, text in outputs.items():
        assert "most probable" in text, name
        assert "threshold 1.00" not in text and "threshold 100%" not in text, f"{name}: a threshold as rule"
        assert "100%</td>" not in text.replace(" ", ""), f"{name} shows the threshold 100% in a table"
    assert "top class" in outputs["cli"] and "top class" in outputs["html"]
    assert (
        "uncalibrated model score" in json.dumps(render_fhir(build_report(analysis), analysis))
        or "not calibrated" in outputs["html"]
    )


def _pdf_text(path: Path) -> str:
    import subprocess

    from tests.system import require_program

    result = subprocess.run(
        [require_program("pdftotext"), str(path), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout
