"""Standard codes for report types and findings, in one table that FHIR and DICOM SR both read.

Only codes we are sure of are listed; every finding also carries Sahay's own code, so a label
with no standard code is still unambiguous. The table is printed in docs/reports.md.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DICOM_FHIR = "http://dicom.nema.org/resources/ontology/DCM"
SAHAY_FINDINGS = "https://sahay.dev/fhir/CodeSystem/finding"
SAHAY_DICOM_SCHEME = "99SAHAY"
"""A private DICOM coding scheme designator (PS3.16 8.2: '99' prefixes local schemes)."""

REPORT_TYPE = ("18748-4", "Diagnostic imaging study")
"""LOINC code of the DiagnosticReport: a diagnostic imaging study report."""


@dataclass(frozen=True)
class FindingCode:
    sahay: str
    display: str
    snomed: str | None = None
    snomed_display: str | None = None


# SNOMED CT concepts for the chest labels; labels left without one have no single exact concept.
_CHEST = [
    FindingCode("Atelectasis", "Atelectasis", "46621007", "Atelectasis"),
    FindingCode("Consolidation", "Consolidation", "95436008", "Lung consolidation"),
    FindingCode("Infiltration", "Infiltration", "409609008", "Radiologic infiltrate of lung"),
    FindingCode("Pneumothorax", "Pneumothorax", "36118008", "Pneumothorax"),
    FindingCode("Edema", "Pulmonary edema", "19242006", "Pulmonary edema"),
    FindingCode("Emphysema", "Emphysema", "87433001", "Pulmonary emphysema"),
    FindingCode("Fibrosis", "Pulmonary fibrosis", "51615001", "Fibrosis of lung"),
    FindingCode("Effusion", "Pleural effusion", "60046008", "Pleural effusion"),
    FindingCode("Pneumonia", "Pneumonia", "233604007", "Pneumonia"),
    FindingCode("Cardiomegaly", "Cardiomegaly", "8186001", "Cardiomegaly"),
    FindingCode("Hernia", "Hiatal hernia", "84089009", "Hiatal hernia"),
    FindingCode("Fracture", "Fracture", "125605004", "Fracture of bone"),
    FindingCode("Pleural_Thickening", "Pleural thickening"),
    FindingCode("Nodule", "Lung nodule"),
    FindingCode("Mass", "Lung mass"),
    FindingCode("Lung Lesion", "Lung lesion"),
    FindingCode("Lung Opacity", "Lung opacity"),
    FindingCode("Enlarged Cardiomediastinum", "Enlarged cardiomediastinum"),
]
FINDING_CODES: dict[str, FindingCode] = {code.sahay.lower(): code for code in _CHEST}

PRESENT = ("52101004", "Present")
ABSENT = ("2667000", "Absent")
"""SNOMED CT qualifier values for a finding's result (DICOM CID 1210's Present/Absent)."""


def finding_code(label: str) -> FindingCode:
    """The codes of a model label; labels outside the table get Sahay's code only."""
    return FINDING_CODES.get(label.lower(), FindingCode(label, label.replace("_", " ")))
