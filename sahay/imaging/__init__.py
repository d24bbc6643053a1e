"""Reading medical and ordinary images into display-ready pixels: ``read_image`` -> ``LoadedImage``.

Names load on first use, so that ``sahay.imaging.header`` (the early file check) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sahay.imaging.reader import LoadedImage, read_image

__all__ = ["LoadedImage", "read_image"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("sahay.imaging.reader"), name)
    raise AttributeError(f"module 'sahay.imaging' has no attribute {name!r}")
