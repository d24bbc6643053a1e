"""Reports in every format, from real analyses, checked by the validators hospitals use:
fhir.resources for FHIR, dciodvfy (dicom3tools) for DICOM, pdftoppm/pdftotext (poppler) for PDF."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from sahay.analysis import Analysis
from sahay.config import Settings
from sahay.errors import BadInput
from sahay.reports.codes import FINDING_CODES
from sahay.reports.export import export_report, render
from sahay.reports.model import build_report
from sahay.services.analyze import analyze
from tests.chat.conftest import chest_analysis
from tests.e2e.test_cli_analyze import DEMO, run_cli
from tests.system import require_program

CT_SMALL = Path(get_testdata_file("CT_small.dcm", download=False))
NOTE = "Cough for 3 weeks. No pleural effusion. Former smoker, 20 pack-years."


def _tool(name: str) -> str:
    return require_program(name)


@pytest.fixture
def ct_analysis(demo_installed: Settings, tmp_path: Path) -> Path:
    """pydicom's CT_small analysed by the demo model, identifiers kept, with a note."""
    out = tmp_path / "ct"
    analyze(CT_SMALL, model=DEMO, out_dir=out, keep_identifiers=True, force=True, notes=NOTE)
    return out / "analysis.json"


def _dciodvfy_errors(path: Path) -> list[str]:
    result = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def test_html_report_is_deidentified_unless_asked(ct_analysis: Path, tmp_path: Path) -> None:
    analysis = Analysis.from_json_file(ct_analysis)
    html = export_report(ct_analysis, "html", tmp_path / "r.html")[0].read_text(encoding="utf-8")
    source = pydicom.dcmread(CT_SMALL)
    assert analysis.disclaimer in html
    assert "DEMONSTRATION MODEL" in html
    assert str(source.PatientName) not in html and str(source.StudyInstanceUID) not in html
    assert "Removed (de-identified report)" in html
    assert html.count("data:image/jpeg;base64,") == len(analysis.positive_findings)
    for finding in analysis.findings:
        assert f"{finding.probability * 100:.1f}%" in html
    named = export_report(ct_analysis, "html", tmp_path / "n.html", include_identifiers=True)[0]
    text = named.read_text(encoding="utf-8")
    assert str(source.PatientName) in text and "Study instance UID" in text


def test_report_figures_are_embedded_at_display_size(tmp_path: Path) -> None:
    import io

    from sahay.reports.html import FIGURE_MAX_SIDE, _display_copy

    overlay = tmp_path / "overlay.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (2048, 1536, 3), dtype=np.uint8)).save(overlay)
    copy = Image.open(io.BytesIO(_display_copy(overlay)))
    assert copy.format == "JPEG" and max(copy.size) == FIGURE_MAX_SIDE and copy.size == (768, 1024)


def test_identifiers_cannot_be_printed_when_the_analysis_dropped_them(
    demo_installed: Settings, tmp_path: Path
) -> None:
    analyze(CT_SMALL, model=DEMO, out_dir=tmp_path / "a", force=True)
    with pytest.raises(BadInput, match="--keep-identifiers"):
        export_report(tmp_path / "a" / "analysis.json", "html", tmp_path / "r.html", include_identifiers=True)


def test_findings_are_ordered_positives_first_with_note_assessment(ct_analysis: Path) -> None:
    report = build_report(Analysis.from_json_file(ct_analysis), ct_analysis.parent)
    flags = [f.positive for f in report.findings]
    assert flags == sorted(flags, reverse=True)
    assert report.notes_summary, "the note's entities and risk factors are summarised"
    assert any("pack-years 20" in line for line in report.notes_summary)
    assert all(f.note_assessment for f in report.findings)


def test_recommendations_quote_the_knowledge_base_with_its_sources() -> None:
    analysis = chest_analysis(Effusion=0.91, Pneumothorax=0.7)
    report = build_report(analysis)
    findings = {r.finding for r in report.recommendations}
    assert findings == {"Pleural effusion", "Pneumothorax"}
    numbers = {ref.number for ref in report.references}
    assert numbers == set(range(1, len(report.references) + 1))
    for recommendation in report.recommendations:
        assert recommendation.references and set(recommendation.references) <= numbers
        assert "[" not in recommendation.text and " ." not in recommendation.text
    assert {r.heading for r in report.recommendations} == {"Usual next steps", "Which specialist"}
    negative = build_report(chest_analysis())
    assert negative.recommendations == [] and "none of its findings" in negative.impression[0]


def test_pdf_has_pages_with_content_and_page_numbers(ct_analysis: Path, tmp_path: Path) -> None:
    pdf = export_report(ct_analysis, "pdf", tmp_path / "r.pdf")[0]
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run([_tool("pdftoppm"), "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    for page in pages:
        grey = np.asarray(Image.open(page).convert("L"), dtype=np.float32)
        assert (grey < 128).mean() > 0.01, f"{page.name} is blank"
    text = subprocess.run(
        [_tool("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Page 1 of {len(pages)}" in text and f"Page {len(pages)} of {len(pages)}" in text
    assert "Decision support, not a diagnosis" in text and "Findings" in text


def test_fhir_bundle_validates_and_codes_each_finding(tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    analysis = chest_analysis(Effusion=0.91)
    rendered = render(analysis, "fhir")[0]
    bundle = Bundle.model_validate_json(rendered.data)  # raises if it is not valid FHIR
    resources = [entry.resource for entry in bundle.entry]
    kinds = [r.get_resource_type() for r in resources]
    assert kinds.count("DiagnosticReport") == 1 and kinds.count("ImagingStudy") == 1
    observations = [r for r in resources if r.get_resource_type() == "Observation"]
    assert len(observations) == len(analysis.findings)
    report = next(r for r in resources if r.get_resource_type() == "DiagnosticReport")
    assert report.code.coding[0].system == "http://loinc.org" and report.code.coding[0].code == "18748-4"
    assert len(report.result) == len(observations)
    assert "not a diagnosis" in report.conclusion
    by_label = {o.code.text: o for o in observations}
    effusion = by_label["Pleural effusion"]
    assert effusion.code.coding[0].code == FINDING_CODES["effusion"].snomed == "60046008"
    assert effusion.interpretation[0].coding[0].code == "POS"
    assert float(effusion.valueQuantity.value) == pytest.approx(0.91)
    assert by_label["Pneumothorax"].interpretation[0].coding[0].code == "NEG"
    patient = next(r for r in resources if r.get_resource_type() == "Patient")
    assert patient.name is None and patient.identifier is None


def test_fhir_carries_study_uid_only_with_identifiers(ct_analysis: Path, tmp_path: Path) -> None:
    source = pydicom.dcmread(CT_SMALL)
    plain = export_report(ct_analysis, "fhir", tmp_path / "a.json")[0].read_text(encoding="utf-8")
    assert str(source.StudyInstanceUID) not in plain and str(source.PatientID) not in plain
    named = json.loads(
        export_report(ct_analysis, "fhir", tmp_path / "b.json", include_identifiers=True)[0].read_text()
    )
    study = next(e["resource"] for e in named["entry"] if e["resource"]["resourceType"] == "ImagingStudy")
    assert study["identifier"][0]["value"] == f"urn:oid:{source.StudyInstanceUID}"
    instance = study["series"][0]["instance"][0]
    assert instance["uid"] == source.SOPInstanceUID
    assert instance["sopClass"]["code"] == f"urn:oid:{source.SOPClassUID}"  # CT Image Storage, as read


def _content_items(dataset: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in dataset.get("ContentSequence", []):
        items.append(item)
        items.extend(_content_items(item))
    return items


def test_dicom_sr_references_the_source_and_passes_dciodvfy(ct_analysis: Path, tmp_path: Path) -> None:
    analysis = Analysis.from_json_file(ct_analysis)
    path = export_report(ct_analysis, "dicom-sr", tmp_path / "sr.dcm", image=CT_SMALL)[0]
    assert _dciodvfy_errors(path) == []
    sr, source = pydicom.dcmread(path), pydicom.dcmread(CT_SMALL)
    assert sr.Modality == "SR" and sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    items = _content_items(sr)
    probabilities = [float(i.MeasuredValueSequence[0].NumericValue) for i in items if i.ValueType == "NUM"]
    assert probabilities == pytest.approx([round(f.probability, 4) for f in analysis.findings], abs=1e-4)
    results = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in items
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning.startswith("synthetic")
    ]
    assert results == ["Present" if f.positive else "Absent" for f in analysis.findings]
    # The notices lead the SR's statements as they lead every other format.
    comments = [
        i.TextValue
        for i in items
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == "Comment"
    ]
    assert analysis.demonstration_notice is not None and comments[0] == analysis.demonstration_notice
    assert any(c.startswith("Analysed at the user's request") for c in comments)
    assert analysis.disclaimer in comments


def test_dicom_sc_overlays_join_the_study(ct_analysis: Path, tmp_path: Path) -> None:
    analysis = Analysis.from_json_file(ct_analysis)
    written = export_report(ct_analysis, "dicom-sc", tmp_path / "sc", image=CT_SMALL)
    explained = [f for f in analysis.findings if f.explanation]
    assert len(written) == len(explained) >= 1
    source = pydicom.dcmread(CT_SMALL)
    series = set()
    for path in written:
        assert _dciodvfy_errors(path) == []
        sc = pydicom.dcmread(path)
        assert sc.StudyInstanceUID == source.StudyInstanceUID and sc.BurnedInAnnotation == "YES"
        assert list(sc.PatientOrientation) == ["L", "P"]  # from CT_small's Image Orientation (Patient)
        series.add(sc.SeriesInstanceUID)
        label = sc.ImageComments.split(":")[0]
        assert analysis.demonstration_notice in sc.ImageComments
        assert "Analysed at the user's request" in sc.ImageComments
        finding = next(f for f in explained if f.label == label)
        assert finding.explanation is not None
        overlay = np.asarray(Image.open(ct_analysis.parent / finding.explanation.overlay_png).convert("RGB"))
        assert np.array_equal(sc.pixel_array, overlay)
    assert len(series) == 1 and source.SeriesInstanceUID not in series


def test_dicom_formats_refuse_the_wrong_source(
    ct_analysis: Path, demo_installed: Settings, tmp_path: Path
) -> None:
    other = Path(get_testdata_file("MR_small.dcm", download=False))
    with pytest.raises(BadInput, match="not the image this analysis was made from"):
        export_report(ct_analysis, "dicom-sr", tmp_path / "sr.dcm", image=other)
    with pytest.raises(BadInput, match="needs the source DICOM"):
        export_report(ct_analysis, "dicom-sr", tmp_path / "sr.dcm")
    png = DEMO_PNG(tmp_path)
    analyze(png, model=DEMO, out_dir=tmp_path / "png", force=True)
    with pytest.raises(BadInput, match="PNG"):
        export_report(tmp_path / "png" / "analysis.json", "dicom-sr", tmp_path / "x.dcm", image=CT_SMALL)
    assert not (tmp_path / "sr.dcm").exists() and not (tmp_path / "x.dcm").exists()


def DEMO_PNG(folder: Path) -> Path:
    from tests.factories import write_png

    rng = np.random.default_rng(1)
    return write_png(folder / "grey.png", (rng.random((96, 96)) * 255).astype(np.uint8))


def test_cli_writes_each_format_and_rejects_bad_input(
    ct_analysis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt, name in (("html", "r.html"), ("fhir", "r.json"), ("dicom-sr", "sr.dcm")):
        code, out, _ = run_cli(
            capsys, "report", ct_analysis, "--format", fmt, "--out", tmp_path / name, "--image", CT_SMALL
        )
        assert code == 0 and (tmp_path / name).stat().st_size > 0 and "Wrote" in out
    code, _, err = run_cli(capsys, "report", ct_analysis, "--format", "docx", "--out", tmp_path / "r.docx")
    assert code == 2 and "unknown report format 'docx'" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli(capsys, "report", broken, "--out", tmp_path / "b.html")
    assert code == 2 and "not a Sahay analysis.json" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "report", ct_analysis, "--out", tmp_path / "missing" / "r.html")
    assert code == 2 and "does not exist" in err


def test_reports_from_deidentified_input_carry_no_identifiers(
    demo_installed: Settings, tmp_path: Path
) -> None:
    from sahay.imaging.deid import deidentify_path

    clean = tmp_path / "clean.dcm"
    deidentify_path(CT_SMALL, clean)
    out = tmp_path / "a"
    analyze(clean, model=DEMO, out_dir=out, keep_identifiers=True, force=True)
    original = pydicom.dcmread(CT_SMALL)
    secrets = {
        str(original.PatientName),
        str(original.PatientID),
        str(original.StudyInstanceUID),
        str(original.SeriesInstanceUID),
        str(original.SOPInstanceUID),
        str(original.InstitutionName),
    }
    sr = export_report(out / "analysis.json", "dicom-sr", tmp_path / "sr.dcm", image=clean)[0]
    sc = export_report(out / "analysis.json", "dicom-sc", tmp_path / "sc", image=clean)
    fhir = export_report(out / "analysis.json", "fhir", tmp_path / "r.json", include_identifiers=True)[0]
    html = export_report(out / "analysis.json", "html", tmp_path / "r.html", include_identifiers=True)[0]
    for path in (sr, *sc):
        values = {str(element.value) for element in pydicom.dcmread(path).iterall()}
        assert not any(secret in value for secret in secrets for value in values), path.name
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    for path in (fhir, html):
        text = path.read_text(encoding="utf-8")
        assert not any(secret in text for secret in secrets), path.name


def test_dicom_results_accept_a_source_without_optional_study_attributes(
    demo_installed: Settings, tmp_path: Path
) -> None:
    """Real archives hold images without Study ID or Study Time (Type 2); results must still build."""

    source = pydicom.dcmread(CT_SMALL)
    for keyword in (
        "StudyID",
        "StudyTime",
        "ReferringPhysicianName",
        "AccessionNumber",
        "ImageOrientationPatient",
    ):
        if keyword in source:
            delattr(source, keyword)
    bare = tmp_path / "bare.dcm"
    source.save_as(bare)
    analyze(bare, model=DEMO, out_dir=tmp_path / "a", force=True)
    sr = export_report(tmp_path / "a" / "analysis.json", "dicom-sr", tmp_path / "sr.dcm", image=bare)[0]
    sc = export_report(tmp_path / "a" / "analysis.json", "dicom-sc", tmp_path / "sc", image=bare)
    for path in (sr, *sc):
        assert _dciodvfy_errors(path) == []
        assert pydicom.dcmread(path).StudyID == ""
    assert all(
        pydicom.dcmread(path).PatientOrientation in ("", None, []) for path in sc
    )  # unknown, not invented


def test_rendering_a_pdf_leaves_truncated_images_refused(ct_analysis: Path, tmp_path: Path) -> None:
    """WeasyPrint sets Pillow's LOAD_TRUNCATED_IMAGES on import; later uploads must still be refused."""
    from PIL import ImageFile

    export_report(ct_analysis, "pdf", tmp_path / "r.pdf")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_private_codes_stay_unique_within_sixteen_characters() -> None:
    from sahay.reports.dicom import _private_code_value

    long_labels = ["Enlarged Cardiomediastinum", "Enlarged Cardiac Silhouette"]
    values = [_private_code_value(label) for label in long_labels]
    assert len(set(values)) == 2 and all(len(v) <= 16 for v in values)
    assert _private_code_value("Nodule") == "Nodule"


@pytest.mark.parametrize(
    ("cosines", "letters"),
    [((1, 0, 0), "L"), ((-1, 0, 0), "R"), ((0, 1, 0), "P"), ((0, 0, -1), "F"), ((0.8, 0, -0.6), "LF")],
)
def test_directions_in_patient_terms(cosines: tuple[float, float, float], letters: str) -> None:
    from sahay.reports.dicom import _direction

    assert _direction(list(cosines)) == letters


def test_a_destination_ending_in_a_slash_or_an_existing_folder_gets_a_folder(
    ct_analysis: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "overlays"
    written = export_report(ct_analysis, "dicom-sc", f"{folder}/", image=CT_SMALL)
    assert folder.is_dir() and written and all(path.parent == folder for path in written)

    existing = tmp_path / "reports"
    existing.mkdir()
    [html_path] = export_report(ct_analysis, "html", existing)
    assert html_path.parent == existing and html_path.suffix == ".html"
    [single] = export_report(ct_analysis, "html", tmp_path / "one.html")
    assert single == tmp_path / "one.html" and single.is_file()
