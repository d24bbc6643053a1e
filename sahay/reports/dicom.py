"""The report as DICOM, through highdicom: a Comprehensive 3D SR (TID 1500 measurement report) and
Secondary Capture images of the heatmap overlays.

Both go into the source image's study as new series and copy its patient and study modules, so
an SR made from a de-identified image carries only the de-identified attributes.
"""

from __future__ import annotations

import copy
import hashlib
import io
from pathlib import Path

import numpy as np
from highdicom.sr import CodedConcept
from PIL import Image
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sahay.about import __version__
from sahay.analysis import Analysis
from sahay.errors import BadInput
from sahay.reports.codes import ABSENT, PRESENT, REPORT_TYPE, SAHAY_DICOM_SCHEME, finding_code

MANUFACTURER = "Sahay"
SR_SERIES_NUMBER = 9701
SC_SERIES_NUMBER = 9702
"""High series numbers keep derived series after the acquired ones in viewers' lists."""


def structured_report(analysis: Analysis, source: Dataset, *, analysis_dir: Path | None = None) -> Dataset:
    """A TID 1500 report of every finding: present/absent, with its calibrated probability."""
    import highdicom as hd

    _check_source(analysis, source)
    source = _with_type2_attributes(source)
    algorithm = hd.sr.AlgorithmIdentification(
        name=analysis.model.name, version=analysis.model.version, parameters=None
    )
    source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(source)
    groups = []
    for finding in analysis.findings:
        concept = _finding_concept(finding.label)
        result = PRESENT if finding.positive else ABSENT
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{finding.label} ({analysis.model.name})"
                ),
                finding_type=concept,
                algorithm_id=algorithm,
                source_images=[source_image],
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.Probability,
                        value=round(float(finding.probability), 4),
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    )
                ],
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=concept, value=hd.sr.CodedConcept(result[0], "SCT", result[1])
                    )
                ],
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_device_uid(analysis),
            name=f"Sahay {__version__}",
            manufacturer_name=MANUFACTURER,
            model_name=f"{analysis.model.name} {analysis.model.version}",
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=hd.sr.CodedConcept(REPORT_TYPE[0], "LN", REPORT_TYPE[1]),
        imaging_measurements=groups,
    )
    report[0].ContentSequence.append(_statements(analysis))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = "Sahay AI findings (decision support, not a diagnosis)"
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    sr.SoftwareVersions = __version__
    _carry_deidentification(source, sr)
    return sr


def report_statements(analysis: Analysis) -> list[str]:
    """What every DICOM object states in words, notices first: the same notices, decision rule,
    note discordances and disclaimer as the HTML, PDF and FHIR reports (``sahay.statement``)."""
    from sahay.statement import state

    statement = state(analysis)
    lines = [notice.text for notice in statement.notices]
    lines.append(statement.rule_text)
    lines += [f"{d.display}: {d.reason}." for d in statement.positives]
    if analysis.fusion is not None:
        lines += [f"Note and image disagree: {text}" for text in analysis.fusion.discordances]
    lines.append(analysis.disclaimer)
    return lines


def _statements(analysis: Analysis) -> Dataset:
    """TID 1500's Qualitative Evaluations container, holding ``report_statements`` as Comments."""
    import highdicom as hd

    container = hd.sr.ContainerContentItem(
        name=CodedConcept("126010", "DCM", "Qualitative Evaluations"),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=codes.DCM.Comment,
                value=line[:10240],  # UT would allow more; viewers show a paragraph
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
            for line in report_statements(analysis)
        ]
    )
    return container


def secondary_captures(analysis: Analysis, source: Dataset, analysis_dir: Path) -> list[Dataset]:
    """One Secondary Capture per finding with an explanation overlay, in one new series."""
    import highdicom as hd

    _check_source(analysis, source)
    source = _with_type2_attributes(source)
    series_uid = generate_uid()
    images: list[Dataset] = []
    explained = [f for f in analysis.findings if f.explanation is not None]
    for number, finding in enumerate(sorted(explained, key=lambda f: -f.probability), start=1):
        assert finding.explanation is not None
        path = analysis_dir / finding.explanation.overlay_png
        if not path.is_file():
            raise BadInput(f"the overlay {path} named in the analysis is missing; re-run the analysis")
        with Image.open(path) as overlay:
            pixels = np.asarray(overlay.convert("RGB"))
        orientation = _patient_orientation(source)
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=pixels,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=series_uid,
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=number,
            manufacturer=MANUFACTURER,
            patient_orientation=orientation or ("L", "F"),  # highdicom wants a value; emptied below
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
        image.SeriesDescription = "Sahay heatmap overlays (decision support, not a diagnosis)"
        image.ImageComments = " ".join(
            [
                f"{finding.label}: {finding.explanation.method_title}. {finding.explanation.summary}",
                *report_statements(analysis),
            ]
        )[:10240]
        if orientation is None:
            image[0x00200020].value = None  # Patient Orientation, type 2: empty means unknown, as it is
        if "Laterality" not in image and "ImageLaterality" not in image:
            image.add_new(
                0x00200060, "CS", None
            )  # Laterality, type 2C: present and empty when no side applies
        image.BurnedInAnnotation = "YES"  # the legend and region numbers are drawn into the pixels
        image.DerivationDescription = f"Heatmap overlay by Sahay {__version__} ({analysis.model.name})"
        image.SoftwareVersions = __version__
        _carry_deidentification(source, image)
        images.append(image)
    if not images:
        raise BadInput("the analysis has no heatmap overlays to capture: analyse the image with heatmaps on")
    return images


def _finding_concept(label: str) -> CodedConcept:
    code = finding_code(label)
    if code.snomed:
        return CodedConcept(code.snomed, "SCT", code.snomed_display or code.display)
    return CodedConcept(_private_code_value(code.sahay), SAHAY_DICOM_SCHEME, code.display)


def _private_code_value(label: str) -> str:
    """A Code Value (SH, at most 16 characters) that stays unique when the label is longer."""
    if len(label) <= 16:
        return label
    return f"{label[:7]}~{hashlib.sha256(label.encode()).hexdigest()[:8]}"


_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # +x, +y, +z of the patient (LPS) system


def _patient_orientation(source: Dataset) -> tuple[str, str] | None:
    """The image's row and column directions in patient terms: Patient Orientation when given,
    else derived from Image Orientation (Patient); None when neither says."""
    given = source.get("PatientOrientation")
    if given and len(given) == 2:
        return str(given[0]), str(given[1])
    cosines = source.get("ImageOrientationPatient")
    if cosines and len(cosines) == 6:
        return _direction([float(v) for v in cosines[:3]]), _direction([float(v) for v in cosines[3:]])
    return None


def _direction(vector: list[float]) -> str:
    """Letters for a direction, strongest axis first (e.g. 'LP'), as PS3.3 C.7.6.1.1.1 describes."""
    axes = sorted(range(3), key=lambda axis: -abs(vector[axis]))
    letters = [_AXIS_LETTERS[a][0 if vector[a] > 0 else 1] for a in axes if abs(vector[a]) > 0.25]
    return "".join(letters)


# Type 2 attributes of the Patient and General Study modules that derived objects copy.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _with_type2_attributes(source: Dataset) -> Dataset:
    """The source, with absent Type 2 attributes present and empty, as the standard allows."""
    missing = [keyword for keyword in _TYPE2_COPIED if keyword not in source]
    if not missing:
        return source
    completed = copy.copy(source)  # shallow: only top-level elements are added
    for keyword in missing:
        setattr(completed, keyword, None)
    return completed


_DEIDENTIFICATION_KEYWORDS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def _carry_deidentification(source: Dataset, derived: Dataset) -> None:
    """A result of a de-identified image says so too (PS3.15 E.1)."""
    for keyword in _DEIDENTIFICATION_KEYWORDS:
        if keyword in source:
            setattr(derived, keyword, copy.deepcopy(source[keyword].value))


def _private_scheme() -> Dataset:
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SAHAY_DICOM_SCHEME
    scheme.CodingSchemeName = "Sahay finding labels"
    scheme.CodingSchemeResponsibleOrganization = "Sahay project (model labels with no SNOMED CT concept)"
    return scheme


def _device_uid(analysis: Analysis) -> str:
    return generate_uid(entropy_srcs=["sahay", analysis.model.name, analysis.model.version])


def _check_source(analysis: Analysis, source: Dataset) -> None:
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not source.get(keyword):
            raise BadInput(f"the source DICOM has no {keyword}; DICOM results must reference a DICOM image")
    require_dicom_analysis(analysis)
    kept = analysis.image.identifiers or {}
    if kept.get("SOPInstanceUID") and kept["SOPInstanceUID"] != str(source.SOPInstanceUID):
        raise BadInput(
            f"the source DICOM (SOP Instance UID {source.SOPInstanceUID}) is not the image this analysis "
            f"was made from ({kept['SOPInstanceUID']})"
        )


def require_dicom_analysis(analysis: Analysis) -> None:
    if analysis.image.format != "dicom":
        raise BadInput(
            f"the analysis is of a {analysis.image.format.upper()} file; DICOM SR and Secondary Capture "
            "need the analysis of the DICOM image they refer to"
        )


def dicom_bytes(ds: Dataset) -> bytes:
    """The dataset as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
