"""The registry of dataset layouts: the one list of the ways a labelled dataset can lie on disk.

Light on purpose (no numpy, no pydantic): help text and the capabilities endpoint read it. A layout
is one module with ``detect(source) -> bool`` and ``load(source, options) -> LabelledDataset``,
plus one entry below; the module is imported when a dataset is detected or loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sahay.datasets.dataset import LabelledDataset, LoadOptions


@dataclass(frozen=True)
class DatasetLayout:
    """One way a labelled dataset can lie on disk; an entry of ``LAYOUTS``.

    ``detect(source)`` says whether ``source`` (a file or folder) is in this layout, cheaply and
    without raising; ``load(source, options)`` reads its labels and splits, raising BadInput for what
    is wrong. The dataset ``load`` returns has ``layout == name`` and ``layout_title == title``.
    """

    name: str
    description: str
    """One line for help text."""
    title: str
    """How ``LabelledDataset.summary`` names such a dataset, e.g. "CSV label table"."""
    module: str
    """The module that defines ``detect`` and ``load``."""

    def detect(self, source: Path) -> bool:
        detected: bool = import_module(self.module).detect(source)
        return detected

    def load(self, source: Path, options: LoadOptions) -> LabelledDataset:
        loaded: LabelledDataset = import_module(self.module).load(source, options)
        return loaded


LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout
    for layout in (
        DatasetLayout(
            "imagefolder",
            "<class>/ folders, or train/ and test/ (or valid/, train_dataset/ ...) of <class>/ folders",
            "Image-folder dataset",
            "sahay.datasets.imagefolder",
        ),
        DatasetLayout(
            "csv",
            "a .csv label table: one row per image, one 0/1 column per label (blank or -1 uncertain)",
            "CSV label table",
            "sahay.datasets.csv_table",
        ),
    )
}
