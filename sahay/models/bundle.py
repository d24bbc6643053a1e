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
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from sahay.analysis import ModelCard, Task
from sahay.errors import BadInput, IntegrityError, ModelUnavailable
from sahay.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from sahay.models import ood
from sahay.models.ood import OodReference, OodSpec
from sahay.models.providers import get_provider

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


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=1.0, gt=0)
    method: Literal["none", "temperature-scaling"] = "none"
    fitted_on: str | None = Field(default=None, description="the data the temperature was fitted on")


class DatasetRef(BaseModel):
    """The training data's fingerprint; ``manifest`` lists each file's sha256 (DVC ``.dir`` style)."""

    model_config = ConfigDict(extra="forbid")

    manifest: str = Field(pattern=NAME_PATTERN, description="file name of the manifest inside the bundle")
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the manifest's canonical JSON")
    files: int = Field(ge=0)


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
        return self

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
        return names

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


def with_ood(bundle: Bundle, reference: OodReference) -> Bundle:
    """Store a new out-of-domain reference in an existing bundle (the reference file first)."""
    atomic_write_bytes(bundle.path / reference.spec.file, ood.to_bytes(reference))
    manifest = bundle.manifest.model_copy(update={"ood": reference.spec})
    atomic_write_text(bundle.path / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
    return Bundle(path=bundle.path, manifest=manifest)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    return f"{where}: {err.get('msg')}"
