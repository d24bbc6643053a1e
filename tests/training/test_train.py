"""The whole loop on generated data: train, evaluate, analyze, resume, out-of-domain refusal."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from sahay.config import Settings, reload_settings
from sahay.errors import BadInput, ModelUnavailable
from sahay.imaging import read_image
from sahay.models.predictor import Predictor
from sahay.services.analyze import analyze
from sahay.training.evaluate import evaluate
from sahay.training.reference import fit_ood
from sahay.training.tracking import list_runs, tracking_uri
from sahay.training.train import TrainEvent, TrainResult, train
from tests.factories import refused_by_ood, write_png, write_shapes_dataset
from tests.training.conftest import FAST

METRIC_KEYS = {"accuracy", "precision", "recall", "sensitivity", "specificity", "f1", "auroc", "auroc_ci95"}


def test_training_writes_a_complete_calibrated_bundle(trained: TrainResult) -> None:
    manifest = trained.bundle.manifest
    assert manifest.labels == ["disc", "stripes"] and manifest.task == "multiclass"
    assert manifest.calibration.method == "temperature-scaling"
    assert manifest.ood is not None and manifest.ood.expects_greyscale
    assert manifest.dataset is not None and manifest.dataset.files == 120
    assert (trained.bundle.path / manifest.dataset.manifest).is_file()
    assert manifest.metrics["test_auroc_macro"] > 0.8  # clearly above chance on held-out images
    assert [r.phase for r in trained.history] == ["head", "full"]
    assert "Image-folder dataset" in manifest.training_data


def test_evaluate_writes_every_metric_and_plot(
    trained: TrainResult, shapes_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    metrics = evaluate(str(trained.bundle.path), shapes_data, out=out, split="test")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_samples"] == 40
    for label in ("disc", "stripes"):
        assert set(saved["per_label"][label]) >= METRIC_KEYS
    assert saved["macro"]["auroc"] > 0.8
    assert {"calibrated", "uncalibrated"} <= set(saved["ece"])
    assert len(saved["confusion_matrix"]["matrix"]) == 2
    for name in ("roc", "pr", "confusion", "calibration"):
        with Image.open(out / f"{name}.png") as image:
            image.verify()
            assert image.format == "PNG"
    client = mlflow.MlflowClient(tracking_uri(reload_settings()))
    assert client.get_run(metrics["mlflow_run_id"]).data.metrics["macro_auroc"] == saved["macro"]["auroc"]


def test_the_new_bundle_works_in_analyze(trained: TrainResult, shapes_data: Path, tmp_path: Path) -> None:
    image = next((shapes_data / "test" / "disc").iterdir())
    analysis = analyze(image, model=str(trained.bundle.path), out_dir=tmp_path / "out")
    assert analysis.quality is not None and analysis.quality.in_domain
    top = max(analysis.findings, key=lambda f: f.probability)
    assert top.label == "disc" and top.positive


def test_the_training_run_is_tracked_in_mlflow(trained: TrainResult, trained_home: Path) -> None:
    client = mlflow.MlflowClient(f"sqlite:///{trained_home / 'mlflow.db'}")
    run = client.get_run(trained.run_id)
    assert run.data.params["backbone"] == "efficientnet-lite0"
    assert "val_auroc" in run.data.metrics and "test_auroc_macro" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "bundle")}
    assert "bundle/bundle.json" in artifacts and "bundle/weights.pt" in artifacts
    history = client.get_metric_history(trained.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]


def test_runs_are_listed(settings: Settings, shapes_data: Path, tmp_path: Path) -> None:
    result = train(shapes_data, tmp_path / "m", replace(FAST, epochs=1), settings=settings)
    (run,) = list_runs(settings)
    assert run.run_id == result.run_id and run.kind == "train" and run.status == "FINISHED"


def test_an_interrupted_run_resumes_to_the_same_weights(
    settings: Settings, shapes_data: Path, tmp_path: Path
) -> None:
    options = replace(FAST, epochs=3, patience=10)

    def interrupt_after_first_epoch(event: TrainEvent) -> None:
        if event.kind == "epoch" and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            shapes_data,
            tmp_path / "resumed",
            options,
            settings=settings,
            progress=interrupt_after_first_epoch,
        )
    assert not (tmp_path / "resumed").exists()
    resumed = train(shapes_data, tmp_path / "resumed", options, resume=True, settings=settings)
    straight = train(shapes_data, tmp_path / "straight", options, settings=settings)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    a, b = resumed.bundle.load_model().state_dict(), straight.bundle.load_model().state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.bundle.manifest.thresholds == straight.bundle.manifest.thresholds


def test_resume_without_a_checkpoint_is_bad_input(
    settings: Settings, shapes_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(BadInput, match="no checkpoint to resume"):
        train(shapes_data, tmp_path / "never", FAST, resume=True, settings=settings)


def test_unknown_backbone_is_model_unavailable(settings: Settings, shapes_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unknown model architecture 'resnet9000'"):
        train(shapes_data, tmp_path / "x", replace(FAST, backbone="resnet9000"), settings=settings)


def test_csv_multilabel_with_uncertain_labels_trains(settings: Settings, tmp_path: Path) -> None:
    from sahay.training.synthetic import make_image

    rng = np.random.default_rng(3)
    rows = ["Path,Patient,disc,stripes"]
    for index in range(60):
        disc, stripes = bool(index % 2), bool((index // 2) % 2)
        image = make_image(rng, 64, disc=disc, stripes=stripes)
        write_png(tmp_path / f"img{index}.png", np.round(image.pixels * 255).astype(np.uint8))
        uncertain = index % 7 == 0  # some stripes labels are uncertain (-1), as in CheXpert
        rows.append(f"img{index}.png,p{index // 2},{int(disc)},{-1 if uncertain else int(stripes)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    options = replace(FAST, epochs=1, patient_column="Patient", uncertain="ignore")
    result = train(tmp_path / "labels.csv", tmp_path / "ml", options, settings=settings)
    assert result.bundle.manifest.task == "multilabel"
    assert result.bundle.manifest.labels == ["disc", "stripes"]
    assert np.isfinite(result.history[0].train_loss)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "absent", "does not exist"),
        (lambda root: _with_empty_class(root), "empty"),
        (lambda root: _with_unreadable_images(root), "unreadable"),
    ],
)
def test_bad_datasets_are_bad_input(settings: Settings, tmp_path: Path, make, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        train(make(tmp_path), tmp_path / "out", FAST, settings=settings)


def _with_empty_class(root: Path) -> Path:
    data = write_shapes_dataset(root / "data", train=6, test=2)
    (data / "train" / "empty").mkdir()
    return data


def _with_unreadable_images(root: Path) -> Path:
    data = write_shapes_dataset(root / "data", train=10, test=4)
    for index in range(5):
        (data / "train" / "disc" / f"broken{index}.png").write_text("not an image")
    return data


def _clearly_different_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    checkerboard = (np.indices((64, 64)).sum(axis=0) // 8 % 2).astype(np.float32)
    generated = [
        ramp,
        ramp.T,
        checkerboard,
        rng.random((64, 64), dtype=np.float32),
        np.full((64, 64), 0.9, np.float32),
    ]
    photographs = [
        np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        for name in (
            "camera",
            "astronaut",
            "coffee",
            "chelsea",
            "moon",
            "text",
            "coins",
            "brick",
            "grass",
            "gravel",
        )
    ]
    scans = [
        read_image(get_testdata_file(name, download=False)).pixels
        for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    return generated + photographs + scans


def test_clearly_different_images_are_refused(trained: TrainResult) -> None:
    assert refused_by_ood(Predictor(trained.bundle), _clearly_different_images()).mean() >= 0.95


def test_images_like_the_training_data_are_accepted(trained: TrainResult, shapes_data: Path) -> None:
    test_images = [read_image(p).pixels for p in sorted((shapes_data / "test").rglob("*.png"))]
    assert refused_by_ood(Predictor(trained.bundle), test_images).mean() <= 0.05


def test_fit_ood_refits_the_reference_from_local_data(trained: TrainResult, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained.bundle.path, copy)
    other = write_shapes_dataset(tmp_path / "other", train=20, test=4, seed=9)
    updated = fit_ood(str(copy), other, percentile=95.0)
    assert updated.manifest.ood is not None
    assert updated.manifest.ood.percentile == 95.0
    # The other dataset's train split (40 images, less the 15% carved for validation) is the reference.
    assert updated.manifest.ood.reference_size == 34
    assert updated.manifest.ood.threshold != trained.bundle.manifest.ood.threshold
    assert Predictor(updated).ood is not None
    reload_settings()


def test_training_never_overwrites_a_folder_that_is_not_a_bundle(
    settings: Settings, shapes_data: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(BadInput, match="not a model bundle"):
        train(shapes_data, precious, FAST, settings=settings)
    assert (precious / "thesis.txt").read_text() == "years of work"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patience": 0}, "--patience must be at least 1"),
        ({"image_size": 8}, "--image-size must be at least 32"),
    ],
)
def test_options_that_cannot_train_are_refused(
    settings: Settings, shapes_data: Path, tmp_path: Path, change: dict[str, int], message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        train(shapes_data, tmp_path / "x", replace(FAST, **change), settings=settings)


def test_evaluating_on_training_images_is_flagged(
    trained: TrainResult, shapes_data: Path, tmp_path: Path
) -> None:
    metrics = evaluate(str(trained.bundle.path), shapes_data, out=tmp_path / "e", split="train")
    assert metrics["training_overlap"] == metrics["n_samples"] > 0
    assert "optimistic" in metrics["warnings"][0]
    clean = evaluate(str(trained.bundle.path), shapes_data, out=tmp_path / "t", split="test")
    assert clean["training_overlap"] == 0


def test_fit_ood_rejects_a_percentile_out_of_range(trained: TrainResult, shapes_data: Path) -> None:
    with pytest.raises(BadInput, match="--percentile must lie in"):
        fit_ood(str(trained.bundle.path), shapes_data, percentile=150)


def test_findings_no_better_than_chance_are_said_loudly_and_travel_with_the_bundle(
    demo_bundle_dir: Path, settings: Settings, tmp_path: Path
) -> None:
    import shutil

    from sahay.models.bundle import load_bundle
    from sahay.models.registry import import_path
    from sahay.training.train import weak_findings

    metrics = {"val_auroc/benign": 0.0, "val_auroc/malignant": 0.93}
    weak = weak_findings(metrics, ["benign", "malignant", "atypia"], "multilabel", "youden")
    assert [line.split(":")[0] for line in weak] == ["benign", "atypia"]
    assert "validation AUROC 0.000, no better than chance" in weak[0]
    assert "no positive or no negative image" in weak[1]

    # A bundle that carries a limitation repeats it on every analysis made with it.
    folder = shutil.copytree(demo_bundle_dir, tmp_path / "weak-demo")
    manifest_path = folder / "bundle.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["name"], manifest["limitations"] = "weak-demo", [weak[0]]
    manifest_path.write_text(json.dumps(manifest))
    assert load_bundle(folder).manifest.limitations == [weak[0]]
    import_path(folder, settings)
    image = write_png(tmp_path / "x.png", np.zeros((64, 64), dtype=np.uint8))
    analysis = analyze(image, model="weak-demo", out_dir=tmp_path / "out", heatmaps=False, force=True)
    assert weak[0] in analysis.warnings
