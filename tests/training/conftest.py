from __future__ import annotations

from pathlib import Path

import pytest

from sahay.config import reload_settings
from sahay.training.train import TrainOptions, TrainResult, train
from tests.factories import write_shapes_dataset

FAST = TrainOptions(epochs=2, image_size=64, batch_size=16, seed=0)


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), train=40, test=20)


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-home")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, shapes_data: Path, trained_home: Path) -> TrainResult:
    """One bundle trained in the session (about 15 s), with its own SAHAY_HOME for MLflow."""
    home = trained_home
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAHAY_HOME", str(home))
        result = train(
            shapes_data, tmp_path_factory.mktemp("out") / "shapes-model", FAST, settings=reload_settings()
        )
    reload_settings()
    return result
