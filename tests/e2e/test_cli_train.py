"""`sahay train`, `evaluate`, `models fit-ood` and `runs list` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sahay.config import Settings
from tests.e2e.test_cli_analyze import run_cli
from tests.factories import write_shapes_dataset


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_shapes_dataset(tmp_path / "data", train=24, test=8)


def test_train_evaluate_analyze_and_list_runs(settings: Settings, data: Path, tmp_path: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    code, stdout, stderr = run_cli(
        capsys, "train", data, "--out", bundle, "--epochs", "1", "--image-size", "64", "--batch-size", "8"
    )
    assert code == 0, stderr
    assert "val_auroc_macro" in stdout and "epoch 1 (head)" in stderr
    assert (bundle / "bundle.json").is_file() and (bundle / "ood.npz").is_file()

    code, stdout, stderr = run_cli(capsys, "evaluate", bundle, data, "--out", tmp_path / "eval")
    assert code == 0, stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n_samples"] == 16
    assert "AUROC (95% CI)" in stdout

    image = next((data / "test" / "disc").iterdir())
    code, stdout, stderr = run_cli(capsys, "analyze", image, "--model", bundle, "--json", "--no-heatmaps")
    assert code == 0, stderr
    assert json.loads(stdout)["quality"]["in_domain"] is True

    code, stdout, _ = run_cli(capsys, "models", "fit-ood", bundle, data, "--percentile", "95")
    assert code == 0 and "95th percentile" in stdout

    code, stdout, _ = run_cli(capsys, "runs", "list")
    assert code == 0 and "train" in stdout and "evaluate" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{tmp}/absent", "--out", "{tmp}/b"], "does not exist"),
        (["train", "{data}", "--out", "{tmp}/b", "--backbone", "resnet9000"], "unknown model architecture"),
        (["train", "{data}", "--out", "{tmp}/b", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "{data}", "--out", "{tmp}/b", "--resume"], "no checkpoint to resume"),
        (["train", "{tmp}/labels.csv", "--out", "{tmp}/b", "--labels", "Nope"], "Nope"),
        (["evaluate", "{tmp}/missing-bundle", "{data}", "--out", "{tmp}/e"], "no bundle folder at"),
    ],
)
def test_bad_training_input_is_exit_2(
    settings: Settings, data: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    (tmp_path / "labels.csv").write_text("Path,disc\n" + "".join(f"x{i}.png,{i % 2}\n" for i in range(10)))
    filled = [a.format(tmp=tmp_path, data=data) for a in args]
    code, stdout, stderr = run_cli(capsys, *filled)
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr + stdout
