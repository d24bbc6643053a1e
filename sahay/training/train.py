"""Fine-tune a backbone on a user's dataset and write a complete model bundle.

The head is trained first with the backbone frozen, then the whole network with a lower
learning rate for the backbone. Every epoch ends with a checkpoint; ``resume`` continues
after the last completed epoch, and an interrupted run (Ctrl-C) leaves that checkpoint
usable. Each epoch seeds its own shuffling and augmentation from ``seed`` and its number,
so a resumed run on the CPU ends with the same weights as an uninterrupted one.

After training, the best epoch (by validation AUROC) is calibrated with temperature scaling
on the validation split, per-label thresholds are chosen there (Youden's J or a target
sensitivity), and an out-of-domain reference is fitted from the training images.

Example:
    >>> result = train(Path("DATA"), Path("my-bundle"), TrainOptions(epochs=5))   # doctest: +SKIP
    >>> result.bundle.manifest.metrics["val_auroc_macro"]                        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

from sahay.analysis import Task
from sahay.config import Settings, get_settings
from sahay.datasets import (
    Augment,
    ImageDataset,
    LabelledDataset,
    ScanReport,
    class_weights,
    load_dataset,
    scan_images,
    write_manifest,
)
from sahay.errors import BadInput, ModelUnavailable
from sahay.fileio import atomic_write_bytes, check_writable_folder
from sahay.models.bundle import (
    Bundle,
    BundleManifest,
    Calibration,
    CardDetails,
    DatasetRef,
    InputSpec,
    ReferencePrevalence,
    WeightsSpec,
    load_bundle,
    save_bundle,
)
from sahay.models.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE, fit_temperature, probabilities
from sahay.models.ood import fit_reference, to_bytes
from sahay.models.preprocess import standard_input_spec
from sahay.models.providers import Provider, get_provider
from sahay.models.registry import check_bundle_destination, find_installed, replace_folder
from sahay.training.inference import infer, truth_for_metrics
from sahay.training.metrics import choose_thresholds, compute_metrics, label_columns
from sahay.training.options import TrainOptions
from sahay.training.tracking import tracked_run

DATASET_MANIFEST = "dataset-manifest.json"
CHECKPOINT_VERSION = 1
MIN_TRAIN_IMAGES = 10
"""The out-of-domain reference needs at least this many training images."""
RESUMABLE_CHANGES = {"epochs", "patience"}
"""Options that may differ on --resume: a run may be given more epochs or more patience."""


@dataclass
class EpochRecord:
    epoch: int
    phase: Literal["head", "full"]
    train_loss: float
    val_loss: float
    val_auroc: float | None


@dataclass
class TrainEvent:
    """What the trainer reports to a progress display."""

    kind: Literal["scan", "batch", "epoch", "finish"]
    done: int = 0
    total: int = 0
    epoch: int = 0
    loss: float | None = None
    record: EpochRecord | None = None


@dataclass
class TrainResult:
    bundle: Bundle
    run_id: str
    history: list[EpochRecord]
    best_epoch: int
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[TrainEvent], None]


def train(
    data: Path,
    out: Path,
    options: TrainOptions = TrainOptions(),
    *,
    resume: bool = False,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train on ``data`` and write the bundle to ``out``; see the module docstring."""
    settings = settings or get_settings()
    options.check()
    check_writable_folder(out)
    check_bundle_destination(out)
    report_progress = progress or (lambda _event: None)
    provider = get_provider(options.backbone)
    dataset = _load(data, options)
    scan = scan_images(
        dataset,
        max_unreadable_fraction=options.max_unreadable_fraction,
        settings=settings,
        progress=lambda done, total: report_progress(TrainEvent("scan", done, total)),
    )
    if len(scan.readable["train"]) < MIN_TRAIN_IMAGES:
        raise BadInput(
            f"{data} has {len(scan.readable['train'])} readable training images; training needs at least "
            f"{MIN_TRAIN_IMAGES}"
        )
    notes = list(dataset.notes)
    if scan.skipped:
        notes.append(f"{len(scan.skipped)} unreadable image(s) skipped, e.g. {scan.skipped[0][0]}")
    spec = standard_input_spec(provider, options.image_size)
    checkpoint_path = _checkpoint_path(out, settings)
    run = _Run(dataset, scan, provider, spec, options, settings, report_progress)
    if resume:
        run.restore(checkpoint_path)
    elif checkpoint_path.exists():
        checkpoint_path.unlink()  # a fresh run must not resume by accident later

    params = {
        **_params(options),
        "data": str(data),
        "dataset_fingerprint": scan.fingerprint,
        "resume": resume,
    }
    with tracked_run("train", options.name or out.name, params, settings) as tracker:
        for record in run.history:
            tracker.log_metrics(_epoch_metrics(record), step=record.epoch)
        while not run.finished:
            record = run.next_epoch()
            run.save(checkpoint_path)
            tracker.log_metrics(_epoch_metrics(record), step=record.epoch)
            report_progress(TrainEvent("epoch", epoch=record.epoch, record=record))
        bundle = run.write_bundle(out, data)
        tracker.log_metrics(bundle.manifest.metrics)
        tracker.log_artifacts(bundle.path, "bundle")
        history_file = bundle.path.parent / f".{bundle.path.name}.history.json"
        history_file.write_text(json.dumps([asdict(r) for r in run.history], indent=2))
        tracker.log_artifact(history_file)
        history_file.unlink()
        run_id = tracker.run_id
    checkpoint_path.unlink(missing_ok=True)
    report_progress(TrainEvent("finish"))
    notes += run.notes
    return TrainResult(
        bundle=bundle, run_id=run_id, history=run.history, best_epoch=run.best_epoch, notes=notes
    )


def _load(data: Path, options: TrainOptions) -> LabelledDataset:
    return load_dataset(
        data,
        task=options.task,
        uncertain=options.uncertain,
        image_column=options.image_column,
        patient_column=options.patient_column,
        label_columns=list(options.label_columns) if options.label_columns else None,
        split_column=options.split_column,
        seed=options.seed,
    )


def _checkpoint_path(out: Path, settings: Settings) -> Path:
    """Checkpoints live under SAHAY_HOME, keyed by the bundle folder, so the bundle stays clean."""
    key = hashlib.sha256(str(out.expanduser().resolve()).encode()).hexdigest()[:16]
    return settings.home_dir / "checkpoints" / f"{out.name}-{key}.pt"


def _params(options: TrainOptions) -> dict[str, object]:
    return {key: value for key, value in asdict(options).items() if key != "intended_use"}


def _epoch_metrics(record: EpochRecord) -> dict[str, float | None]:
    return {"train_loss": record.train_loss, "val_loss": record.val_loss, "val_auroc": record.val_auroc}


class _Run:
    """The state of one training run: model, optimiser, history, best weights."""

    def __init__(
        self,
        dataset: LabelledDataset,
        scan: ScanReport,
        provider: Provider,
        spec: InputSpec,
        options: TrainOptions,
        settings: Settings,
        progress: ProgressCallback,
    ) -> None:
        self.dataset, self.scan, self.provider, self.spec = dataset, scan, provider, spec
        self.options, self.settings, self.progress = options, settings, progress
        labels = len(dataset.labels)
        torch.manual_seed(options.seed)
        self.model: nn.Module = initial_network(provider, labels, settings)
        self.head: nn.Module = self.model.get_submodule(provider.head)
        self.weights = class_weights(dataset, "train")
        augment = Augment(horizontal_flip=options.horizontal_flip)
        self.train_data = ImageDataset(scan.readable["train"], spec, augment=augment, settings=settings)
        self.val_data = ImageDataset(scan.readable["val"], spec, settings=settings)
        self.history: list[EpochRecord] = []
        self.notes: list[str] = []
        self.best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.best_key: tuple[float, float] = (-np.inf, -np.inf)
        self.best_epoch = 0
        self.stale_epochs = 0
        self.optimiser = self._optimiser("head")

    @property
    def epoch(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.options.epochs or self.stale_epochs >= self.options.patience

    def _phase(self, epoch: int) -> Literal["head", "full"]:
        return "head" if epoch <= self.options.head_epochs else "full"

    def _optimiser(self, phase: Literal["head", "full"]) -> torch.optim.Optimizer:
        head_ids = {id(p) for p in self.head.parameters()}
        for parameter in self.model.parameters():
            parameter.requires_grad = phase == "full" or id(parameter) in head_ids
        backbone = [p for p in self.model.parameters() if id(p) not in head_ids]
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters()), "lr": self.options.lr}]
        if phase == "full":
            groups.append({"params": backbone, "lr": self.options.lr / 10})
        self.phase = phase
        return torch.optim.AdamW(groups, weight_decay=1e-4)

    def next_epoch(self) -> EpochRecord:
        epoch = self.epoch + 1
        phase = self._phase(epoch)
        if phase != self.phase:
            self.optimiser = self._optimiser(phase)
        # Each epoch's randomness depends only on the seed and the epoch: resumed runs match.
        torch.manual_seed(self.options.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(self.options.seed * 100_003 + epoch)
        # A last batch of one image breaks batch normalisation in training mode: drop it then.
        single_left = len(self.train_data) % self.options.batch_size == 1
        loader = DataLoader(
            self.train_data,
            batch_size=self.options.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=single_left,
        )
        self.model.train(phase == "full")  # a frozen backbone keeps its batch-norm statistics
        losses = []
        for batch, (inputs, targets) in enumerate(loader, start=1):
            self.optimiser.zero_grad()
            loss = self._loss(self.model(inputs), targets)
            loss.backward()
            self.optimiser.step()
            losses.append(float(loss.detach()))
            self.progress(TrainEvent("batch", batch, len(loader), epoch=epoch, loss=losses[-1]))
        val_loss, val_auroc = self._validate()
        record = EpochRecord(epoch, phase, float(np.mean(losses)), val_loss, val_auroc)
        self.history.append(record)
        # Better AUROC wins; equal (or undefined) AUROC falls back to lower validation loss.
        key = (-np.inf if val_auroc is None else val_auroc, -val_loss)
        if key > self.best_key:
            self.best_key, self.best_epoch, self.stale_epochs = key, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.stale_epochs += 1
        return record

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.dataset.task == "multiclass":
            return F.cross_entropy(logits, targets.argmax(dim=1), weight=self.weights)
        known = ~torch.isnan(targets)  # uncertain labels under the "ignore" policy do not count
        per_entry = F.binary_cross_entropy_with_logits(
            logits, torch.nan_to_num(targets), pos_weight=self.weights, reduction="none"
        )
        return (per_entry * known).sum() / known.sum().clamp(min=1)

    def _validate(self) -> tuple[float, float | None]:
        logits, _, targets = infer(
            self.model, self.provider.cam_layer, self.val_data.samples, self.spec, settings=self.settings
        )
        with torch.no_grad():
            loss = float(self._loss(torch.from_numpy(logits), torch.from_numpy(targets)))
        probs = probabilities(torch.from_numpy(logits), 1.0, self.dataset.task).numpy()
        return loss, macro_auroc(truth_for_metrics(targets, self.dataset.task), probs, self.dataset.task)

    def save(self, path: Path) -> None:
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.scan.fingerprint,
            "options": _params(self.options),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "phase": self.phase,
            "history": [asdict(r) for r in self.history],
            "best_state": self.best_state,
            "best_key": list(self.best_key),
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def restore(self, path: Path) -> None:
        if not path.is_file():
            raise BadInput(f"there is no checkpoint to resume for this --out folder (looked for {path})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint must be a clear message, not a traceback
            raise BadInput(
                f"the checkpoint {path} is unreadable ({exc}); train again without --resume"
            ) from exc
        if state.get("fingerprint") != self.scan.fingerprint:
            raise BadInput(
                "the dataset changed since the checkpoint was written; train again without --resume"
            )
        saved, current = state.get("options", {}), _params(self.options)
        changed = sorted(k for k in current.keys() | saved.keys() if saved.get(k) != current.get(k))
        if set(changed) - RESUMABLE_CHANGES:
            raise BadInput(
                f"these options differ from the interrupted run's: {', '.join(changed)}; "
                "resume with the same ones (only --epochs and --patience may change)"
            )
        self.model.load_state_dict(state["model"])
        self.optimiser = self._optimiser(state["phase"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.best_state = state["best_state"]
        self.best_key, self.best_epoch = (state["best_key"][0], state["best_key"][1]), state["best_epoch"]
        self.stale_epochs = state["stale_epochs"]

    def write_bundle(self, out: Path, data: Path) -> Bundle:
        """Calibrate the best epoch, choose thresholds, fit the OOD reference, and write the bundle."""
        self.model.load_state_dict(self.best_state)
        layer, task, labels = self.provider.cam_layer, self.dataset.task, self.dataset.labels
        readable = self.scan.readable
        val_logits, val_features, val_targets = infer(self.model, layer, readable["val"], self.spec)
        _, train_features, _ = infer(self.model, layer, readable["train"], self.spec)
        val_truth = truth_for_metrics(val_targets, task)
        temperature = fit_temperature(torch.from_numpy(val_logits), torch.from_numpy(val_truth), task)
        if temperature in (MIN_TEMPERATURE, MAX_TEMPERATURE):
            self.notes.append(
                f"the calibration temperature reached its bound ({temperature:g}): the validation split "
                f"({len(val_logits)} images) is too small or too easy to calibrate on; "
                "treat its probabilities with care"
            )
        val_probs = probabilities(torch.from_numpy(val_logits), temperature, task).numpy()
        thresholds = choose_thresholds(
            val_truth,
            val_probs,
            task,
            method=self.options.threshold_method,
            target_sensitivity=self.options.target_sensitivity
            if self.options.threshold_method == "sensitivity"
            else None,
        )
        metrics = _summary_metrics("val", compute_metrics(val_truth, val_probs, labels, task, thresholds))
        if readable.get("test"):
            test_logits, _, test_targets = infer(self.model, layer, readable["test"], self.spec)
            test_probs = probabilities(torch.from_numpy(test_logits), temperature, task).numpy()
            test_metrics = compute_metrics(
                truth_for_metrics(test_targets, task), test_probs, labels, task, thresholds
            )
            metrics.update(_summary_metrics("test", test_metrics))
        limitations = weak_findings(metrics, labels, task, self.options.threshold_method)
        self.notes += [f"WARNING: {text}" for text in limitations]
        reference = fit_reference(
            train_features,
            val_features,
            fitted_on=f"{len(train_features)} training images of {data.name}; threshold from "
            f"{len(val_features)} validation images",
            expects_greyscale=self._greyscale(),
            seed=self.options.seed,
        )
        manifest = BundleManifest(
            name=_bundle_name(self.options.name or out.name),
            version="1",
            architecture=self.provider.architecture,
            task=task,
            modalities=[m.upper() for m in self.options.modalities],
            body_part=self.options.body_part.upper() if self.options.body_part else None,
            labels=labels,
            input=self.spec,
            thresholds={label: float(t) for label, t in zip(labels, thresholds, strict=True)},
            calibration=Calibration(
                temperature=temperature,
                method="temperature-scaling",
                fitted_on=f"{len(val_logits)} validation images of {data.name}",
            ),
            training_data=self.dataset.summary(),
            metrics=metrics,
            intended_use=self.options.intended_use,
            license=self.options.license,
            weights=WeightsSpec(),
            ood=reference.spec,
            dataset=DatasetRef(
                manifest=DATASET_MANIFEST, fingerprint=self.scan.fingerprint, files=len(self.scan.manifest)
            ),
            limitations=limitations,
            details=CardDetails(
                reference_prevalence=self._training_prevalence(labels),
                reference_prevalence_source=f"the training split of {data.name}, counted when it was trained",
            ),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
        try:
            write_manifest(self.scan, staging / DATASET_MANIFEST)
            save_bundle(
                staging,
                manifest,
                self.model.state_dict(),
                extra_files={reference.spec.file: to_bytes(reference)},
            )
            replace_folder(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return load_bundle(out)

    def _greyscale(self) -> bool:
        return trained_on_greyscale(self.scan)

    def _training_prevalence(self, labels: list[str]) -> dict[str, ReferencePrevalence]:
        """Each label's share of the readable training images, for `sahay models check-site`."""
        samples = self.scan.readable["train"]
        if not samples:
            return {}
        positives = np.nansum(np.stack([sample.target for sample in samples]), axis=0)
        return {
            label: ReferencePrevalence(
                prevalence=float(count / len(samples)), images=len(samples), datasets=[self.dataset.root.name]
            )
            for label, count in zip(labels, positives, strict=True)
        }


def trained_on_greyscale(scan: ScanReport) -> bool:
    """Whether every training image decoded to one channel (recorded by the scan)."""
    return all(entry.get("channels") == 1 for entry in scan.manifest if entry.get("split") == "train")


def macro_auroc(truth: np.ndarray, probs: np.ndarray, task: Task) -> float | None:
    """Mean one-vs-rest AUROC over labels with both classes present; None when there are none."""
    values = [
        float(roc_auc_score(column.truth, column.score))
        for column in label_columns(truth, probs, task)
        if column.has_both_classes
    ]
    return float(np.mean(values)) if values else None


def weak_findings(
    metrics: dict[str, float], labels: list[str], task: Task, threshold_method: str
) -> list[str]:
    """The findings this bundle cannot be trusted on, in words: validation AUROC at or below chance
    (0.5), or not measurable (one class only in the validation split). Written into the bundle, so
    that every analysis made with it says so."""
    weak = []
    for label in labels:
        auroc = metrics.get(f"val_auroc/{label}")
        if auroc is None:
            weak.append(
                f"{label}: the validation split had no positive or no negative image, so how well the "
                "model separates it is unknown"
            )
        elif auroc <= 0.5:
            kind = "its threshold" if task == "multilabel" else "its calls"
            weak.append(
                f"{label}: validation AUROC {auroc:.3f}, no better than chance; {kind} "
                f"({threshold_method}) cannot be trusted: train on more or cleaner images"
            )
    return weak


def _summary_metrics(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The headline numbers that go into bundle.json (the full set is `sahay evaluate`'s job)."""
    summary: dict[str, float] = {}
    for name in ("auroc", "f1", "recall", "specificity"):
        value = metrics["macro"].get(name)
        if value is not None:
            summary[f"{prefix}_{name}_macro"] = float(value)
    if metrics.get("accuracy") is not None:
        summary[f"{prefix}_accuracy"] = float(metrics["accuracy"])
    for label, values in metrics["per_label"].items():
        if values.get("auroc") is not None:
            summary[f"{prefix}_auroc/{label}"] = float(values["auroc"])
    if metrics["ece"].get("calibrated") is not None:
        summary[f"{prefix}_ece"] = float(metrics["ece"]["calibrated"])
    return summary


def _bundle_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "model"
    return name if name[0].isalnum() else f"m{name}"


def initial_network(provider: Provider, num_outputs: int, settings: Settings) -> nn.Module:
    """The network fine-tuning starts from: an installed model's features, ImageNet weights, or none."""
    if provider.backbone_source is not None:
        source = find_installed(provider.backbone_source, settings)
        if source is None:
            raise ModelUnavailable(
                f"fine-tuning {provider.architecture} starts from the installed {provider.backbone_source} "
                f"model; run `sahay models pull {provider.backbone_source}` (or import it) first"
            )
        head = f"{provider.head}."
        features = {k: v for k, v in source.load_model().state_dict().items() if not k.startswith(head)}
        model = provider.build(num_outputs)
        model.load_state_dict(features, strict=False)
        return model
    return provider.pretrained(num_outputs) if provider.pretrained else provider.build(num_outputs)
