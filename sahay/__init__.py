"""Sahay: a medical image analysis assistant. Decision support, not a diagnosis.

The public Python API. Names load on first use, so ``import sahay`` stays fast.

Example:
    >>> import sahay
    >>> analysis = sahay.analyze("chest.dcm", out_dir="out")      # doctest: +SKIP
    >>> [f.label for f in analysis.positive_findings]            # doctest: +SKIP
    >>> model = sahay.load_model("xrv-densenet121-res224-all")   # doctest: +SKIP
    >>> image = sahay.read_image("chest.dcm")                    # doctest: +SKIP
    >>> model.predict([image.pixels])[0].findings                # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sahay.about import DISCLAIMER, __version__

if TYPE_CHECKING:
    from sahay.analysis import Analysis, load_analysis
    from sahay.imaging import read_image
    from sahay.services.analyze import analyze, load_model

_PUBLIC = {
    "analyze": "sahay.services.analyze",
    "load_model": "sahay.services.analyze",
    "read_image": "sahay.imaging",
    "Analysis": "sahay.analysis",
    "load_analysis": "sahay.analysis",
}

__all__ = ["DISCLAIMER", "Analysis", "__version__", "analyze", "load_analysis", "load_model", "read_image"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sahay' has no attribute {name!r}")
