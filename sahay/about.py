"""The version, and the decision-support disclaimer that every output carries."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sahay")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

DISCLAIMER = (
    "Sahay is a decision-support tool, not a diagnosis. Its outputs are model estimates "
    "that a qualified clinician must review together with the full clinical picture."
)
