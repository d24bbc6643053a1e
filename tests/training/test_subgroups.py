"""Subgroup values from CSV rows and DICOM headers, age bands, and the Wilson interval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sahay.config import Settings
from sahay.datasets import Sample
from sahay.errors import BadInput
from sahay.training.subgroups import NOT_RECORDED, _band, _wilson, subgroup_values
from sahay.training.train import TrainResult
from tests.factories import write_dicom, write_png


def _sample(path: Path, row: dict[str, str] | None = None) -> Sample:
    return Sample(path=path, target=np.zeros(1, dtype=np.float32), row=row)


def test_values_come_from_the_csv_row_or_the_dicom_header(settings: Settings, tmp_path: Path) -> None:
    dicom = write_dicom(tmp_path / "a.dcm", np.zeros((8, 8), dtype=np.uint16), view_position="AP")
    png = write_png(tmp_path / "b.png", np.zeros((8, 8), dtype=np.uint8))
    samples = [_sample(dicom), _sample(png), _sample(png, {"Patient Gender": "M", "Patient Age": "67"})]
    assert subgroup_values(samples, "sex", settings) == ["F", NOT_RECORDED, "M"]  # the factory writes F
    assert subgroup_values(samples, "view", settings) == ["AP", NOT_RECORDED, NOT_RECORDED]
    assert subgroup_values(samples, "age", settings)[2] == "60-79"
    with pytest.raises(BadInput, match="--by scanner"):
        subgroup_values(samples, "scanner", settings)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        ("045Y", "40-59"),
        ("6M", "under 18"),
        ("17", "under 18"),
        ("80", "80 and over"),
        ("unknown", NOT_RECORDED),
    ],
)
def test_ages_become_bands(age: str, band: str) -> None:
    assert _band(age) == band


def test_the_wilson_interval_holds_the_proportion_and_narrows_with_n() -> None:
    low, high = _wilson(0.8, 10)
    assert low < 0.8 < high
    wide, narrow = high - low, np.subtract(*reversed(_wilson(0.8, 1000)))
    assert narrow < wide
    assert _wilson(1.0, 5)[1] == 1.0


def test_calibrate_refuses_a_multiclass_model(
    trained: TrainResult, settings: Settings, tmp_path: Path
) -> None:
    from sahay.training.recalibrate import calibrate

    with pytest.raises(BadInput, match="needs a multilabel model"):
        calibrate(str(trained.bundle.path), tmp_path / "any.csv", as_name="x", settings=settings)
