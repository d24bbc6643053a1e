"""The ``Analysis``: the one object every stage adds to and every consumer reads.

Its JSON form, ``analysis.json``, is the contract between the CLI, the API, reports,
chat and tests. Bump ``SCHEMA_VERSION`` whenever a field changes meaning or is removed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sahay import DISCLAIMER, __version__

SCHEMA_VERSION = "1.0"

ImageFormat = Literal["dicom", "png", "jpeg", "tiff"]
Task = Literal["multilabel", "multiclass"]


class ImageInfo(BaseModel):
    """What was read, without patient identifiers unless the user asked for them."""

    model_config = ConfigDict(extra="forbid")

    filename: str
    sha256: str = Field(description="sha256 of the file's bytes")
    format: ImageFormat
    rows: int
    columns: int
    channels: int = Field(description="1 for greyscale, 3 for colour, as the model's input is derived")
    bits_stored: int | None = None
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = Field(default=None, description="(row, column) spacing")
    photometric_interpretation: str | None = None
    transfer_syntax: str | None = None
    number_of_frames: int = 1
    frame_index: int | None = Field(default=None, description="0-based frame analysed in a multi-frame file")
    window: tuple[float, float] | None = Field(default=None, description="(center, width) applied, if any")
    identifiers: dict[str, str] | None = Field(
        default=None,
        description="Patient and study identifiers; only present when the user asked to keep them",
    )


class ModelCard(BaseModel):
    """The parts of a bundle's card that travel with every result."""

    name: str
    version: str
    task: Task
    modalities: list[str]
    body_part: str | None
    intended_use: str
    license: str
    weights_sha256: str
    training_data: str
    calibration_temperature: float
    demonstration: bool = False


class HeatmapRef(BaseModel):
    """Where the model looked for one finding. Paths are relative to ``analysis.json``."""

    method: str
    target_layer: str
    overlay_png: str
    array_npy: str = Field(description="float32 heatmap in [0, 1], same aspect ratio as the image")
    array_shape: tuple[int, int]


class Finding(BaseModel):
    label: str
    probability: float = Field(ge=0.0, le=1.0, description="after temperature scaling")
    threshold: float = Field(ge=0.0, le=1.0)
    positive: bool
    heatmap: HeatmapRef | None = None


class Analysis(BaseModel):
    schema_version: str = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    software_version: str = __version__
    image: ImageInfo
    model: ModelCard
    findings: list[Finding]
    warnings: list[str] = Field(default_factory=list)
    demonstration_notice: str | None = None
    disclaimer: str = DISCLAIMER

    @property
    def positive_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.positive]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json_file(cls, path: Path) -> Analysis:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
