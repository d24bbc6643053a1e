"""TorchXRayVision DenseNet121 chest X-ray models (https://github.com/mlmed/torchxrayvision).

The architecture builds without weights; released weights are fetched or imported by
``sahay.models.catalog`` and converted to a plain state dict before they enter a bundle.
"""

from __future__ import annotations

import torchxrayvision as xrv
from torch import nn

from sahay.errors import ModelUnavailable
from sahay.models.providers import Provider

ARCHITECTURE = "xrv-densenet121"


BACKBONE_SOURCE = "xrv-densenet121-res224-all"
"""The installed model whose chest X-ray features start fine-tuning."""


def build(num_outputs: int) -> nn.Module:
    # weights=None and no op_threshs: forward() returns raw logits, which Sahay calibrates itself.
    return xrv.models.DenseNet(weights=None, num_classes=num_outputs)


def pretrained(num_outputs: int) -> nn.Module:
    """The installed TorchXRayVision model's features, with a new head of ``num_outputs``."""
    from sahay.config import get_settings
    from sahay.models.registry import find_installed

    source = find_installed(BACKBONE_SOURCE, get_settings())
    if source is None:
        raise ModelUnavailable(
            f"fine-tuning xrv-densenet121 starts from the installed {BACKBONE_SOURCE} model; "
            f"run `sahay models pull {BACKBONE_SOURCE}` (or import it) first"
        )
    features = {k: v for k, v in source.load_model().state_dict().items() if not k.startswith("classifier.")}
    model = build(num_outputs)
    model.load_state_dict(features, strict=False)
    return model


PROVIDER = Provider(
    architecture=ARCHITECTURE,
    description="TorchXRayVision DenseNet121, 1-channel 224 px input in [-1024, 1024]",
    build=build,
    # Not features.norm5: xrv applies an in-place ReLU to its output, which breaks gradient hooks.
    cam_layer="features.denseblock4",
    in_channels=1,
    head="classifier",
    pretrained=pretrained,
)
