"""Labelled image datasets on disk (image folders, CSV tables): read once, used by training,
evaluation, the case library and explanation evaluation.

* ``registry``: ``LAYOUTS``, the registry of dataset layouts (light: help text reads it);
* ``layouts``: ``load_dataset`` and ``detect_layout``;
* ``imagefolder``, ``csv_table``: one module per layout;
* ``splits``: split names and the carving of missing splits (by class or by patient);
* ``dataset``: ``Sample``, ``LabelledDataset`` and the types every layout shares;
* ``scan``: ``scan_images`` and the dataset manifest;
* ``torch_data``: ``ImageDataset``, ``Augment`` and ``class_weights``, the only part that needs torch.

Names are imported from their module on first use, so ``from sahay.datasets import LAYOUTS``
imports neither torch nor OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sahay.datasets.dataset import (
        LabelledDataset,
        LoadOptions,
        Sample,
        UncertainPolicy,
    )
    from sahay.datasets.layouts import detect_layout, load_dataset
    from sahay.datasets.registry import LAYOUTS, DatasetLayout
    from sahay.datasets.scan import ScanReport, scan_images, write_manifest
    from sahay.datasets.splits import SPLITS
    from sahay.datasets.torch_data import Augment, ImageDataset, class_weights

_HOMES = {
    "DatasetLayout": "registry",
    "LabelledDataset": "dataset",
    "LoadOptions": "dataset",
    "Sample": "dataset",
    "UncertainPolicy": "dataset",
    "LAYOUTS": "registry",
    "detect_layout": "layouts",
    "load_dataset": "layouts",
    "ScanReport": "scan",
    "scan_images": "scan",
    "write_manifest": "scan",
    "SPLITS": "splits",
    "Augment": "torch_data",
    "ImageDataset": "torch_data",
    "class_weights": "torch_data",
}

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "Augment",
    "DatasetLayout",
    "ImageDataset",
    "LabelledDataset",
    "LoadOptions",
    "Sample",
    "ScanReport",
    "UncertainPolicy",
    "class_weights",
    "detect_layout",
    "load_dataset",
    "scan_images",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
