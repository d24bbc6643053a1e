"""What a training run is asked to do: the backbone, the schedule, thresholds, and the dataset's columns.

Light on purpose (no torch): the CLI builds these before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sahay.errors import BadInput
from sahay.models.providers import efficientnet

if TYPE_CHECKING:
    from sahay.analysis import Task
    from sahay.datasets import UncertainPolicy

MIN_IMAGE_SIZE = 32
METRICS_FILE = "metrics.json"
"""What ``sahay evaluate`` writes into its --out folder, beside the plots."""


@dataclass(frozen=True)
class TrainOptions:
    backbone: str = efficientnet.ARCHITECTURE
    task: Task | None = None
    epochs: int = 10
    head_epochs: int = 1
    """Epochs that train the head alone before the whole network is unfrozen."""
    batch_size: int = 16
    lr: float = 1e-3
    image_size: int = 224
    seed: int = 0
    patience: int = 3
    """Stop after this many epochs without a better validation AUROC."""
    target_sensitivity: float | None = None
    """Choose thresholds for this sensitivity; without it, by Youden's J."""
    horizontal_flip: bool = False
    uncertain: UncertainPolicy = "ignore"
    image_column: str | None = None
    patient_column: str | None = None
    label_columns: tuple[str, ...] | None = None
    split_column: str | None = None
    name: str | None = None
    modalities: tuple[str, ...] = ()
    body_part: str | None = None
    intended_use: str = (
        "Research use on images like its training data. Not validated for clinical use; "
        "outputs are for a qualified clinician to review, not a diagnosis."
    )
    license: str = "Set by the model's owner; the EfficientNet-Lite0 backbone is Apache-2.0"
    max_unreadable_fraction: float = 0.05

    @property
    def threshold_method(self) -> Literal["youden", "sensitivity"]:
        return "youden" if self.target_sensitivity is None else "sensitivity"

    def check(self) -> None:
        minimums = {
            "epochs": 1,
            "batch_size": 1,
            "patience": 1,
            "head_epochs": 0,
            "image_size": MIN_IMAGE_SIZE,
        }
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise BadInput(
                    f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(self, name)}"
                )
        if not 0 < self.lr < 1:
            raise BadInput(f"--lr must lie in (0, 1), got {self.lr}")
        if self.target_sensitivity is not None and not 0 < self.target_sensitivity <= 1:
            raise BadInput(f"--target-sensitivity must lie in (0, 1], got {self.target_sensitivity}")
