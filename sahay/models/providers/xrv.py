"""TorchXRayVision DenseNet121 chest X-ray models (https://github.com/mlmed/torchxrayvision).

The architecture builds without weights; released weights are fetched or imported by
``sahay.models.catalog`` and converted to a plain state dict before they enter a bundle.
"""

from __future__ import annotations

import torchxrayvision as xrv
from torch import nn

from sahay.models.providers import Provider

ARCHITECTURE = "xrv-densenet121"


def build(num_outputs: int) -> nn.Module:
    # weights=None and no op_threshs: forward() returns raw logits, which Sahay calibrates itself.
    return xrv.models.DenseNet(weights=None, num_classes=num_outputs)


PROVIDER = Provider(
    architecture=ARCHITECTURE,
    description="TorchXRayVision DenseNet121, 1-channel 224 px input in [-1024, 1024]",
    build=build,
    # Not features.norm5: xrv applies an in-place ReLU to its output, which breaks gradient hooks.
    cam_layer="features.denseblock4",
    in_channels=1,
    head="classifier",
)
