"""Reports: HTML and PDF for people, FHIR and DICOM (SR, Secondary Capture) for hospital systems."""

from sahay.reports.export import FORMATS, RenderedFile, export_report, render

__all__ = ["FORMATS", "RenderedFile", "export_report", "render"]
