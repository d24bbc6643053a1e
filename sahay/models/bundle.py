"""The on-disk model bundle: a folder holding ``bundle.json`` and one weights file.

``bundle.json`` is the model's card and its contract with the predictor: what it was
trained for, how to feed it, how to read its outputs, and the sha256 of its weights.
Weights are always a plain state dict, loaded with ``torch.load(weights_only=True)``.

Example:
    >>> bundle = load_bundle("~/.sahay/models/my-model")        # doctest: +SKIP
    >>> model = bundle.load_model()                              # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sahay.analysis import KnownFailure, ModelCard, Source, Task
from sahay.errors import BadInput, IntegrityError, ModelUnavailable
from sahay.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from sahay.models import ood
from sahay.models.calibration import LabelCalibration, LabelMethod, Logits, probabilities
from sahay.models.ood import OodReference, OodSpec
from sahay.models.providers import get_provider

if TYPE_CHECKING:  # torch loads when a network is built or saved, never to read a manifest
    import torch
    from torch import nn

MANIFEST_NAME = "bundle.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""Bundle names and weights file names: one path component, never ``..`` or a folder."""
WEIGHTS_NAME = "weights.pt"
FORMAT_VERSION = 1


class InputSpec(BaseModel):
    """How an image in [0, 1] becomes the network's input tensor."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(gt=0, description="square input side in pixels")
    channels: Literal[1, 3]
    resize: Literal["stretch", "center_crop"] = Field(
        description="stretch: the whole image is resized to a square; center_crop: the central square of "
        "the short side is kept first (TorchXRayVision's convention)"
    )
    value_range: tuple[float, float] = Field(
        default=(0.0, 1.0), description="[0, 1] pixels are mapped linearly onto this range"
    )
    mean: tuple[float, ...] | None = Field(default=None, description="per-channel mean subtracted afterwards")
    std: tuple[float, ...] | None = Field(default=None, description="per-channel std divided afterwards")

    @model_validator(mode="after")
    def _check_channels(self) -> InputSpec:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) != self.channels:
                raise ValueError(f"input.{name} has {len(values)} values for {self.channels} channel(s)")
        return self


class WeightsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(default=WEIGHTS_NAME, pattern=NAME_PATTERN, description="a file name inside the bundle")
    sha256: str = Field(default="", pattern=r"^([0-9a-f]{64})?$", description="filled in by save_bundle")
    source_url: str | None = None
    source_sha256: str | None = Field(default=None, description="sha256 of the file it was converted from")
    verified: bool | None = Field(
        default=None,
        description="third-party weights: whether source_sha256 matched a published checksum or the user "
        "confirmed it (`sahay models verify`); None for weights Sahay trained itself",
    )
    verified_by: str | None = Field(
        default=None, description="the published checksum's source, or who confirmed"
    )

    @property
    def unverified(self) -> bool:
        return self.verified is False

    def unverified_notice(self, model: str) -> str:
        return (
            f"Model {model}: weights not verified against a published checksum (sha256 "
            f"{self.source_sha256 or self.sha256}); confirm them with "
            f"`sahay models verify {model} --sha256 ...`."
        )


class SiteCalibration(BaseModel):
    """Where a site's per-finding calibration came from (``sahay models calibrate``)."""

    model_config = ConfigDict(extra="forbid")

    source_model: str
    source_version: str
    source_weights_sha256: str
    data: str = Field(description="the site data's file or folder name")
    data_fingerprint: str = Field(description="sha256 of the site data's manifest (each image's sha256)")
    method: LabelMethod
    thresholds: str = Field(description="how thresholds were chosen: 'youden' or 'sensitivity 0.90'")
    images_fitted: int
    images_held_out: int
    seed: int
    date: str = Field(description="ISO 8601, UTC")
    calibrated: list[str] = Field(description="findings given a site map and threshold")
    kept: dict[str, str] = Field(default_factory=dict, description="findings left as they were, with why")
    metrics: dict[str, float | None] = Field(
        default_factory=dict, description="held-out summary: ece_before, ece_after, brier_before, brier_after"
    )


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=1.0, gt=0)
    method: Literal["none", "temperature-scaling"] = "none"
    fitted_on: str | None = Field(default=None, description="the data the temperature was fitted on")
    per_label: dict[str, LabelCalibration] = Field(
        default_factory=dict,
        description="site maps by finding; they replace the temperature for that finding",
    )
    site: SiteCalibration | None = None

    def calibrated_for_site(self, label: str) -> bool:
        """Whether this finding's probabilities were fitted on local data (training or a site fit)."""
        return label in self.per_label or self.fitted_on is not None


class SiteCheckFlag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predicted_rate: float
    reference_prevalence: float
    ratio: float


class SiteCheck(BaseModel):
    """The last ``sahay models check-site`` run: analyses repeat its flags beside the findings."""

    model_config = ConfigDict(extra="forbid")

    data: str
    data_fingerprint: str
    images: int
    date: str
    flagged: dict[str, SiteCheckFlag] = Field(default_factory=dict)


class Citation(BaseModel):
    """A source for a statement on a card: every number or failure mode carries one."""

    model_config = ConfigDict(extra="forbid")

    title: str
    url: str


class FailureMode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[str] = Field(description="the findings it concerns; empty means every finding")
    description: str
    source: Citation


class PublishedPerformance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    metric: str
    value: float
    dataset: str = Field(description="what it was measured on")
    source: Citation


class TrainingDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    images: int | None = None
    patients: int | None = None
    mix: str = Field(default="", description="views, sex and age where known")
    source: Citation | None = None


class ReferencePrevalence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prevalence: float = Field(ge=0.0, le=1.0)
    images: int = Field(ge=0, description="labelled images it was counted over")
    datasets: list[str]


class CardDetails(BaseModel):
    """The model card beyond the contract fields: what it is not for, its data, its evidence."""

    model_config = ConfigDict(extra="forbid")

    not_intended_for: list[str] = Field(default_factory=list)
    expected_views: list[str] = Field(
        default_factory=list, description="DICOM view positions it is made for (PA, AP); empty means any"
    )
    training_datasets: list[TrainingDataset] = Field(default_factory=list)
    performance: list[PublishedPerformance] = Field(default_factory=list)
    failure_modes: list[FailureMode] = Field(default_factory=list)
    reference_prevalence: dict[str, ReferencePrevalence] = Field(default_factory=dict)
    reference_prevalence_source: str = ""

    def failure_modes_for(self, label: str) -> list[FailureMode]:
        return [mode for mode in self.failure_modes if not mode.findings or label in mode.findings]


class DatasetRef(BaseModel):
    """The training data's fingerprint; ``manifest`` lists each file's sha256 (DVC ``.dir`` style)."""

    model_config = ConfigDict(extra="forbid")

    manifest: str = Field(pattern=NAME_PATTERN, description="file name of the manifest inside the bundle")
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the manifest's canonical JSON")
    files: int = Field(ge=0)


class Int8Accuracy(BaseModel):
    """How far the int8 model's probabilities lie from the fp32 model's, measured at export."""

    model_config = ConfigDict(extra="forbid")

    measured_on: str = Field(
        description="the images compared: the bundle's validation data or generated ones"
    )
    images: int = Field(ge=1)
    max_abs_probability_difference: float = Field(ge=0.0)
    mean_abs_probability_difference: float = Field(ge=0.0)
    macro_auroc_fp32: float | None = Field(default=None, description="with validation labels only")
    macro_auroc_int8: float | None = None


class OnnxSpec(BaseModel):
    """The ``onnx`` entry of ``bundle.json``: an ONNX export of the same weights for ONNX Runtime.

    Its graph takes the (N, C, size, size) input and returns ``logits``, ``feature_map`` (what global
    pooling averages: one-pass class activation maps) and ``features`` (the pooled ``cam_layer``
    output: out-of-domain check and similar cases)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(pattern=NAME_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the weights it was exported from")
    precision: Literal["fp32", "int8"]
    opset: int
    exported_with: str = Field(description="torch and onnx versions")
    int8: Int8Accuracy | None = None


class BundleManifest(BaseModel):
    """The schema of ``bundle.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    version: str
    architecture: str
    task: Task
    modalities: list[str] = Field(description="DICOM modality codes it was trained on; empty means any")
    body_part: str | None = None
    labels: list[str] = Field(min_length=1)
    input: InputSpec
    thresholds: dict[str, float]
    calibration: Calibration = Calibration()
    training_data: str
    metrics: dict[str, float] = Field(default_factory=dict)
    intended_use: str
    license: str
    weights: WeightsSpec
    demonstration: bool = Field(default=False, description="trained on synthetic images; no clinical meaning")
    ood: OodSpec | None = Field(default=None, description="out-of-domain reference; None until one is fitted")
    dataset: DatasetRef | None = None
    limitations: list[str] = Field(
        default_factory=list,
        description="weaknesses found when the bundle was made (a finding no better than chance on "
        "validation); every analysis with the bundle repeats them as warnings",
    )
    details: CardDetails = CardDetails()
    site_check: SiteCheck | None = None
    onnx: OnnxSpec | None = Field(default=None, description="`sahay models export-onnx`; None until exported")

    @model_validator(mode="after")
    def _check_labels(self) -> BundleManifest:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        missing = [label for label in self.labels if label not in self.thresholds]
        extra = [label for label in self.thresholds if label not in self.labels]
        if missing or extra:
            raise ValueError(f"thresholds must cover exactly the labels (missing {missing}, unknown {extra})")
        bad = {k: v for k, v in self.thresholds.items() if not (0.0 <= v <= 1.0) or math.isnan(v)}
        if bad:
            raise ValueError(f"thresholds must lie in [0, 1]: {bad}")
        unknown = sorted(set(self.calibration.per_label) - set(self.labels))
        if unknown:
            raise ValueError(f"calibration.per_label names findings the model lacks: {unknown}")
        return self

    def probabilities(self, logits: Logits, *, calibrated: bool = True) -> Logits:
        """The model's probabilities for (N, K) logits (a tensor or a NumPy array, returned alike);
        ``calibrated=False`` gives the raw sigmoid/softmax."""
        if not calibrated:
            return probabilities(logits, 1.0, self.task)
        per_label = self.calibration.per_label
        columns = {i: per_label[label] for i, label in enumerate(self.labels) if label in per_label}
        return probabilities(logits, self.calibration.temperature, self.task, columns)

    def cautions(self, label: str) -> list[str]:
        """What an analysis must say beside this finding: no local calibration, a site-check flag."""
        found = []
        if self.task == "multilabel" and not self.calibration.calibrated_for_site(label):
            found.append(
                "Not calibrated for this site: the probability and threshold come from the model's "
                "training data (`sahay models calibrate`)."
            )
        flag = self.site_check.flagged.get(label) if self.site_check else None
        if flag is not None and self.site_check is not None:
            found.append(
                f"Flagged by the site check of {self.site_check.date[:10]}: predicted positive in "
                f"{flag.predicted_rate:.1%} of {self.site_check.images} local images, against "
                f"{flag.reference_prevalence:.1%} in the training data."
            )
        return found

    def card(self) -> ModelCard:
        return ModelCard(
            name=self.name,
            version=self.version,
            task=self.task,
            modalities=self.modalities,
            body_part=self.body_part,
            intended_use=self.intended_use,
            license=self.license,
            weights_sha256=self.weights.sha256,
            training_data=self.training_data,
            calibration_temperature=self.calibration.temperature,
            demonstration=self.demonstration,
            weights_verified=self.weights.verified,
            not_intended_for=self.details.not_intended_for,
            failure_modes=[
                KnownFailure(
                    findings=mode.findings,
                    description=mode.description,
                    source=Source(title=mode.source.title, url=mode.source.url),
                )
                for mode in self.details.failure_modes
            ],
            site_calibration=(
                f"{self.calibration.site.method} on {self.calibration.site.data} "
                f"({self.calibration.site.date[:10]})"
                if self.calibration.site
                else None
            ),
        )


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: BundleManifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def weights_path(self) -> Path:
        return self.path / self.manifest.weights.file

    def files(self) -> list[str]:
        """Names of every file the bundle consists of, ``bundle.json`` first."""
        manifest = self.manifest
        names = [MANIFEST_NAME, manifest.weights.file]
        names += [manifest.ood.file] if manifest.ood else []
        names += [manifest.dataset.manifest] if manifest.dataset else []
        names += [manifest.onnx.file] if manifest.onnx else []
        return names

    @property
    def onnx_path(self) -> Path | None:
        """The ONNX export ONNX Runtime runs, when there is one made from these very weights."""
        spec = self.manifest.onnx
        if spec is None or spec.weights_sha256 != self.manifest.weights.sha256:
            return None
        return self.path / spec.file

    def verify_onnx(self) -> Path:
        """The ONNX file's path, checked against its recorded sha256."""
        path, spec = self.onnx_path, self.manifest.onnx
        if path is None or spec is None:
            raise IntegrityError(f"bundle {self.name} has no ONNX export of its current weights")
        if not path.is_file():
            raise IntegrityError(
                f"bundle {self.name}: ONNX file {path} is missing; run `sahay models export-onnx`"
            )
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise IntegrityError(
                f"bundle {self.name}: {path} has sha256 {actual}, but bundle.json records {spec.sha256}; "
                "export it again with `sahay models export-onnx`."
            )
        return path

    def verify(self) -> None:
        """Check that the weights file is there and matches the recorded sha256."""
        if not self.weights_path.is_file():
            raise IntegrityError(f"bundle {self.name}: weights file {self.weights_path} is missing")
        actual = sha256_file(self.weights_path)
        if actual != self.manifest.weights.sha256:
            raise IntegrityError(
                f"bundle {self.name}: {self.weights_path} has sha256 {actual}, but bundle.json records "
                f"{self.manifest.weights.sha256}; the file is corrupt or was replaced. "
                "Re-import or re-pull it."
            )

    def load_model(self) -> nn.Module:
        """Build the network, load the verified weights, and return it in eval mode."""
        import torch

        self.verify()
        provider = get_provider(self.manifest.architecture)
        model = provider.build(len(self.manifest.labels))
        try:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # a bad state dict must not surface as a traceback
            raise IntegrityError(
                f"bundle {self.name}: {self.weights_path} does not fit architecture "
                f"{self.manifest.architecture} with {len(self.manifest.labels)} outputs ({exc})"
            ) from exc
        return model.eval()

    def load_ood(self) -> OodReference | None:
        """The out-of-domain reference, or None when the bundle has none."""
        spec = self.manifest.ood
        if spec is None:
            return None
        path = self.path / spec.file
        try:
            return ood.from_bytes(path.read_bytes(), spec)
        except (OSError, ValueError, KeyError) as exc:
            raise IntegrityError(
                f"bundle {self.name}: out-of-domain reference {path} is unreadable ({exc})"
            ) from exc


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and validate a bundle folder (its weights are checked when the model loads)."""
    folder = Path(path).expanduser()
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelUnavailable(f"{folder} is not a model bundle: it has no {MANIFEST_NAME}")
    try:
        manifest = BundleManifest.model_validate_json(manifest_path.read_bytes())
    except ValidationError as exc:
        raise BadInput(f"{manifest_path} is not a valid bundle manifest: {_first_error(exc)}") from exc
    except OSError as exc:
        raise BadInput(f"{manifest_path} cannot be read ({exc.strerror or exc})") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise BadInput(
            f"{manifest_path} uses bundle format {manifest.format_version}; this Sahay reads up to "
            f"{FORMAT_VERSION}. Upgrade Sahay."
        )
    provider = get_provider(manifest.architecture)
    if manifest.input.channels != provider.in_channels:
        raise BadInput(
            f"{manifest_path}: input.channels is {manifest.input.channels}, but architecture "
            f"{manifest.architecture} takes {provider.in_channels}-channel input"
        )
    return Bundle(path=folder, manifest=manifest)


def save_bundle(
    folder: Path,
    manifest: BundleManifest,
    state_dict: dict[str, torch.Tensor],
    *,
    extra_files: dict[str, bytes] | None = None,
) -> Bundle:
    """Write weights and ``extra_files``, then ``bundle.json`` last: a half-written bundle is never valid."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (extra_files or {}).items():
        atomic_write_bytes(folder / name, data)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buffer)
    weights_path = folder / manifest.weights.file
    atomic_write_bytes(weights_path, buffer.getvalue())
    manifest = manifest.model_copy(
        update={"weights": manifest.weights.model_copy(update={"sha256": sha256_file(weights_path)})}
    )
    atomic_write_text(folder / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
    return Bundle(path=folder, manifest=manifest)


def with_manifest(bundle: Bundle, manifest: BundleManifest) -> Bundle:
    """Rewrite an installed bundle's ``bundle.json`` (its weights stay as they are)."""
    atomic_write_text(bundle.path / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
    return Bundle(path=bundle.path, manifest=manifest)


def with_ood(bundle: Bundle, reference: OodReference) -> Bundle:
    """Store a new out-of-domain reference in an existing bundle (the reference file first)."""
    atomic_write_bytes(bundle.path / reference.spec.file, ood.to_bytes(reference))
    return with_manifest(bundle, bundle.manifest.model_copy(update={"ood": reference.spec}))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    return f"{where}: {err.get('msg')}"
