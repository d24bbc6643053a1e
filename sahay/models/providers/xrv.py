"""TorchXRayVision DenseNet121 chest X-ray models (https://github.com/mlmed/torchxrayvision).

The architecture builds without weights; released weights are fetched or imported by
``sahay.models.catalog`` and converted to a plain state dict before they enter a bundle.
Fine-tuning starts from the installed ``BACKBONE_SOURCE`` model's features (``backbone_source``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sahay.models.providers import Provider

if TYPE_CHECKING:
    import torch
    from torch import nn

ARCHITECTURE = "xrv-densenet121"


BACKBONE_SOURCE = "xrv-densenet121-res224-all"
"""The installed model whose chest X-ray features start fine-tuning."""


def build(num_outputs: int) -> nn.Module:
    import torchxrayvision as xrv

    # weights=None and no op_threshs: forward() returns raw logits, which Sahay calibrates itself.
    return xrv.models.DenseNet(weights=None, num_classes=num_outputs)


def feature_map(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """What xrv's ``features2`` pools: ReLU of ``features`` (denseblock4, then norm5)."""
    import torch.nn.functional as F

    return F.relu(model.features(batch))  # type: ignore[operator]


PROVIDER = Provider(
    architecture=ARCHITECTURE,
    description="TorchXRayVision DenseNet121, 1-channel 224 px input in [-1024, 1024]",
    build=build,
    # Not features.norm5: xrv applies an in-place ReLU to its output, which breaks gradient hooks.
    cam_layer="features.denseblock4",
    in_channels=1,
    head="classifier",
    backbone_source=BACKBONE_SOURCE,
    feature_map=feature_map,
)
