"""Providers build a bundle's network and name the layer that heatmaps read.

A provider is registered once here by its ``architecture`` name, the value that
``bundle.json`` stores. Adding an architecture is one module plus one line below. Provider
modules import their libraries (torch, torchvision, torchxrayvision) inside ``build``, so that
listing the architectures (CLI help, the capabilities endpoint) loads none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sahay.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch
    from torch import nn

FeatureMap = Callable[["nn.Module", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Provider:
    architecture: str
    description: str
    build: Callable[[int], nn.Module]
    """Return the network with ``num_outputs`` logits, randomly initialised."""
    cam_layer: str
    """Dotted module path of the last spatial layer: Grad-CAM reads it, and its pooled output is the
    image's feature vector (out-of-domain reference, similar cases)."""
    in_channels: int
    head: str
    """Dotted module path of the final linear layer, trained alone before the whole network."""
    pretrained: Callable[[int], nn.Module] | None = None
    """The network with pretrained backbone weights available offline and a new head, if there are any."""
    backbone_source: str | None = None
    """An installed model whose features start fine-tuning (training looks it up), if any."""
    feature_map: FeatureMap | None = None
    """The (N, C, h, w) map that global average pooling turns into the input of the linear ``head``,
    when the network ends that way (logits = head(mean(map))): the one-pass class activation map is
    then ``head.weight @ map``, from the same forward pass. None for any other head."""


def _registry() -> dict[str, Provider]:
    from sahay.models.providers import efficientnet, torchvision_resnet, xrv

    providers = (xrv.PROVIDER, efficientnet.PROVIDER, *torchvision_resnet.PROVIDERS)
    return {p.architecture: p for p in providers}


def get_provider(architecture: str) -> Provider:
    providers = _registry()
    if architecture not in providers:
        known = ", ".join(sorted(providers))
        raise ModelUnavailable(f"unknown model architecture {architecture!r}; known architectures: {known}")
    return providers[architecture]


def providers() -> list[Provider]:
    """Every registered provider, sorted by architecture name."""
    registry = _registry()
    return [registry[name] for name in sorted(registry)]


def known_architectures() -> list[str]:
    return sorted(_registry())
