"""The version, and the decision-support disclaimer that every output carries."""

__version__ = "0.1.0"
"""The one place the version is written; pyproject.toml reads it from here (no metadata look-up
at start-up)."""

DISCLAIMER = (
    "Sahay is a decision-support tool, not a diagnosis. Its outputs are model estimates "
    "that a qualified clinician must review together with the full clinical picture."
)
