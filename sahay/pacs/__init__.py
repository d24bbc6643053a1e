"""The hospital archive over DICOMweb (QIDO-RS, WADO-RS, STOW-RS)."""
