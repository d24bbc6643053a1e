"""The report as a FHIR R4B Bundle: a DiagnosticReport, one Observation per finding, the ImagingStudy.

R4B (4.3) is the FHIR R4 release line that ``fhir.resources`` validates; DiagnosticReport,
Observation, ImagingStudy and Patient are unchanged from R4 (4.0.1) in every element used here.
Without opted-in identifiers the Patient is an empty placeholder, because ImagingStudy needs a subject.
"""

from __future__ import annotations

import uuid
from typing import Any

from sahay.analysis import Analysis
from sahay.reports.codes import (
    DICOM_FHIR,
    LOINC,
    REPORT_TYPE,
    SAHAY_FINDINGS,
    SNOMED,
    finding_code,
)
from sahay.reports.formats import RenderJob
from sahay.reports.model import Report

_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
_UCUM = "http://unitsofmeasure.org"


def render(job: RenderJob) -> bytes:
    return render_fhir(job.report(), job.analysis).encode("utf-8")


def render_fhir(report: Report, analysis: Analysis) -> str:
    """The Bundle as FHIR JSON, validated by ``fhir.resources`` before it is returned."""
    from fhir.resources.R4B.bundle import Bundle

    ids = _Ids(analysis.id)
    patient = _patient(report, ids)
    study = _imaging_study(report, analysis, ids)
    observations = [_observation(report, finding, ids) for finding in report.findings]
    diagnostic_report = _diagnostic_report(report, analysis, ids, observations)
    entries = [diagnostic_report, *observations, study, patient]
    bundle = {
        "resourceType": "Bundle",
        "id": analysis.id,
        "type": "collection",
        "timestamp": report.generated_at.isoformat(),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries],
    }
    return Bundle.model_validate(bundle).model_dump_json(indent=2, exclude_none=True)


class _Ids:
    """Stable resource ids derived from the analysis id, so re-export gives the same Bundle."""

    def __init__(self, analysis_id: str) -> None:
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"sahay:analysis:{analysis_id}")

    def __call__(self, name: str) -> str:
        return str(uuid.uuid5(self._namespace, name))


def _ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _patient(report: Report, ids: _Ids) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": ids("patient")}
    identifiers = report.identifiers or {}
    if identifiers.get("PatientID"):
        patient["identifier"] = [{"value": identifiers["PatientID"]}]
    if identifiers.get("PatientName"):
        family, _, given = identifiers["PatientName"].partition("^")
        name: dict[str, Any] = {"family": family}
        if given:
            name["given"] = given.split("^")
        patient["name"] = [name]
    return patient


def _imaging_study(report: Report, analysis: Analysis, ids: _Ids) -> dict[str, Any]:
    image = analysis.image
    identifiers = report.identifiers or {}
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": ids("study"),
        "status": "available",
        "subject": {"reference": f"urn:uuid:{ids('patient')}"},
        "numberOfSeries": 1,
        "numberOfInstances": 1,
    }
    if image.modality:
        study["modality"] = [{"system": DICOM_FHIR, "code": image.modality}]
    if identifiers.get("StudyInstanceUID"):
        study["identifier"] = [
            {"system": "urn:dicom:uid", "value": f"urn:oid:{identifiers['StudyInstanceUID']}"}
        ]
    if identifiers.get("SeriesInstanceUID"):
        series: dict[str, Any] = {
            "uid": identifiers["SeriesInstanceUID"],
            "modality": {"system": DICOM_FHIR, "code": image.modality or "OT"},
            "numberOfInstances": 1,
        }
        if identifiers.get("SOPInstanceUID") and identifiers.get("SOPClassUID"):
            series["instance"] = [
                {
                    "uid": identifiers["SOPInstanceUID"],
                    "sopClass": {
                        "system": "urn:ietf:rfc:3986",
                        "code": f"urn:oid:{identifiers['SOPClassUID']}",
                    },
                }
            ]
        study["series"] = [series]
    return study


def _finding_concept(label: str) -> dict[str, Any]:
    code = finding_code(label)
    coding = [{"system": SAHAY_FINDINGS, "code": code.sahay, "display": code.display}]
    if code.snomed:
        coding.insert(
            0, {"system": SNOMED, "code": code.snomed, "display": code.snomed_display or code.display}
        )
    return {"coding": coding, "text": code.display}


def _observation(report: Report, finding: Any, ids: _Ids) -> dict[str, Any]:
    interpretation = ("POS", "Positive") if finding.positive else ("NEG", "Negative")
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": ids(f"finding:{finding.label}"),
        "status": "preliminary",
        "category": [{"coding": [{"system": _CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "code": _finding_concept(finding.label),
        "subject": {"reference": f"urn:uuid:{ids('patient')}"},
        "effectiveDateTime": report.analysed_at.isoformat(),
        "issued": report.generated_at.isoformat(),
        "valueQuantity": {
            "value": round(finding.probability, 4),
            "unit": "probability",
            "system": _UCUM,
            "code": "1",
        },
        "interpretation": [
            {"coding": [{"system": _INTERPRETATION, "code": interpretation[0], "display": interpretation[1]}]}
        ],
        "method": {
            "text": f"{report.technique.model_name} {report.technique.model_version}, "
            + ("calibrated probability" if report.technique.calibrated else "uncalibrated model score")
        },
        "derivedFrom": [{"reference": f"urn:uuid:{ids('study')}"}],
        "referenceRange": [
            {
                "text": "positive when it is the most probable class"
                if finding.threshold is None
                else f"positive at or above {finding.threshold:.4g}"
            }
        ],
        "note": [{"text": report.disclaimer}],
    }
    if finding.location:
        observation["bodySite"] = {"text": finding.location}
    return observation


def _diagnostic_report(
    report: Report, analysis: Analysis, ids: _Ids, observations: list[dict[str, Any]]
) -> dict[str, Any]:
    conclusion = " ".join([*report.notices, *report.impression])
    coded = [_finding_concept(f.label) for f in report.positive_findings]
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": ids("report"),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{ids('report')}"}],
        "status": "preliminary",
        "category": [{"coding": [{"system": _REPORT_CATEGORY, "code": "RAD", "display": "Radiology"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": REPORT_TYPE[0], "display": REPORT_TYPE[1]}],
            "text": report.title,
        },
        "subject": {"reference": f"urn:uuid:{ids('patient')}"},
        "effectiveDateTime": report.analysed_at.isoformat(),
        "issued": report.generated_at.isoformat(),
        "imagingStudy": [{"reference": f"urn:uuid:{ids('study')}"}],
        "result": [_ref(o) for o in observations],
        "conclusion": f"{conclusion} {report.disclaimer}",
    }
    if coded:
        resource["conclusionCode"] = coded
    return resource
