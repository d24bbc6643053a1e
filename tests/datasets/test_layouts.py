"""The registry of dataset layouts, and how ``load_dataset`` picks one."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import sahay.datasets
from sahay.datasets import LAYOUTS, SPLITS, LoadOptions, detect_layout, load_dataset
from sahay.datasets.dataset import CsvColumns
from sahay.datasets.splits import split_plan
from sahay.errors import BadInput
from tests.factories import write_case_dataset, write_shapes_dataset

WRITERS: dict[str, Callable[[Path], Path]] = {
    "imagefolder": lambda root: write_shapes_dataset(root / "shapes", train=6, test=2, size=32),
    "csv": lambda root: write_case_dataset(root / "cases", per_class=6),
}
"""A small dataset in each layout; a new layout adds its writer here."""


def test_each_layout_has_a_writer_and_a_one_line_description() -> None:
    assert list(WRITERS) == list(LAYOUTS) == ["imagefolder", "csv"]
    for name, layout in LAYOUTS.items():
        assert layout.name == name
        assert layout.description and "\n" not in layout.description and len(layout.description) <= 100
        assert layout.title


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_layout_loads_its_dataset_and_load_dataset_picks_it(tmp_path: Path, name: str) -> None:
    layout = LAYOUTS[name]
    source = WRITERS[name](tmp_path)

    dataset = load_dataset(source)
    direct = layout.load(source, LoadOptions(None, "ignore", CsvColumns(), split_plan(0.15, 0.15, 0)))

    assert detect_layout(source) is layout
    assert dataset.layout == direct.layout == name
    assert len(dataset.labels) == 2 and list(dataset.splits) == list(SPLITS)
    assert all(dataset.splits[split] for split in SPLITS)
    for split in SPLITS:
        assert [s.path for s in dataset.splits[split]] == [s.path for s in direct.splits[split]]
        assert all(s.path.is_file() for s in dataset.splits[split])
    assert dataset.summary().startswith(f"{layout.title} {source.name} (")


def test_no_layout_claims_a_missing_path_or_another_kind_of_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="nowhere does not exist"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "labels.txt").write_text("path,A\nx.png,1\n")
    with pytest.raises(BadInput, match=r"labels\.txt is not a \.csv file"):
        detect_layout(tmp_path / "labels.txt")


def test_options_are_checked_before_the_layout_is_picked(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="task='segmentation'"):
        load_dataset(tmp_path / "nowhere", task="segmentation")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="uncertain='maybe'"):
        load_dataset(tmp_path / "nowhere", uncertain="maybe")  # type: ignore[arg-type]


def test_the_package_exports_each_name_from_its_home() -> None:
    assert sorted(sahay.datasets.__all__) == sorted(sahay.datasets._HOMES)
    for name, home in sahay.datasets._HOMES.items():
        module = importlib.import_module(f"sahay.datasets.{home}")
        assert getattr(sahay.datasets, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = sahay.datasets.nothing


def test_importing_the_registry_loads_neither_torch_nor_opencv() -> None:
    code = (
        "import sys; from sahay.datasets import LAYOUTS; "
        "print(sorted(m for m in ('torch', 'cv2', 'PIL', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
