"""Leave-one-out precision@k on generated datasets, and what each search mode listens to."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahay.cases.evaluate import evaluate_modes
from sahay.config import Settings
from sahay.errors import BadInput, ModelUnavailable
from tests.factories import write_case_dataset

DEMO = "sahay-demo-synthetic"
OPTIONS = {"label_columns": ["round", "striped"], "text_column": "notes"}


def _precisions(demo_installed: Settings, table: Path) -> dict[str, float]:
    results = evaluate_modes(table, model=DEMO, k=5, modes=["blend", "image", "text", "findings"], **OPTIONS)
    return {result.mode: result.precision_at_k for result in results}


def test_distinct_images_with_misleading_words(demo_installed: Settings, tmp_path: Path) -> None:
    scores = _precisions(demo_installed, write_case_dataset(tmp_path, images_tell=True, words_tell=False))
    assert scores["image"] >= 0.9
    assert scores["blend"] >= 0.9  # the image weighs most, so neutral words do not spoil it
    assert scores["text"] <= 0.75  # words say nothing about the class: near chance (0.5)


def test_identical_looking_images_with_telling_words(demo_installed: Settings, tmp_path: Path) -> None:
    scores = _precisions(demo_installed, write_case_dataset(tmp_path, images_tell=False, words_tell=True))
    assert scores["text"] >= 0.9
    assert scores["image"] <= 0.75  # the images carry no class: near chance
    assert scores["blend"] > scores["image"]  # the words lift the blend


def test_evaluation_refuses_bad_input(demo_installed: Settings, tmp_path: Path) -> None:
    table = write_case_dataset(tmp_path, per_class=2)
    with pytest.raises(BadInput, match="needs more than 5"):
        evaluate_modes(table, model=DEMO, k=5, **OPTIONS)
    with pytest.raises(ModelUnavailable, match="no installed model named 'nope'"):
        evaluate_modes(table, model="nope", k=1, **OPTIONS)
    with pytest.raises(BadInput, match="--text-column"):
        evaluate_modes(table, model=DEMO, k=1, modes=["text"], label_columns=["round", "striped"])
