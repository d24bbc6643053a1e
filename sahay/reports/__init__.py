"""Reports: HTML and PDF for people, FHIR and DICOM (SR, Secondary Capture) for hospital systems."""

from sahay.reports.formats import FORMATS, RenderedFile, ReportFormat, get_format

__all__ = ["FORMATS", "RenderedFile", "ReportFormat", "get_format"]
