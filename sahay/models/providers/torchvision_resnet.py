"""torchvision ResNets, with ImageNet weights only where they are already on this machine.

Sahay never downloads these weights. ``pretrained`` looks for torchvision's own file (same
name) in torch's hub cache (``~/.cache/torch/hub/checkpoints``, where torchvision keeps
what it downloads) or in ``$SAHAY_HOME/backbones``; when it is in neither, the error gives
the address to fetch it from and the folder to put it in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahay.errors import IntegrityError, ModelUnavailable
from sahay.models.providers import Provider

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torchvision.models import WeightsEnum

# Architecture: (torchvision constructor, weights enum, its ImageNet member), looked up when first used.
_WEIGHTS_NAMES = {
    "torchvision-resnet18": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1"),
    "torchvision-resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2"),
}


def _constructor_and_weights(architecture: str) -> tuple[Callable[..., Any], WeightsEnum]:
    import torchvision

    constructor, enum, member = _WEIGHTS_NAMES[architecture]
    return getattr(torchvision.models, constructor), getattr(getattr(torchvision.models, enum), member)


def weights_locations(weights: WeightsEnum) -> list[Path]:
    import torch

    from sahay.config import get_settings

    name = Path(weights.url).name
    return [Path(torch.hub.get_dir()) / "checkpoints" / name, get_settings().home_dir / "backbones" / name]


def _builder(architecture: str) -> Callable[[int], nn.Module]:
    def build(num_outputs: int) -> nn.Module:
        constructor, _ = _constructor_and_weights(architecture)
        model: nn.Module = constructor(weights=None, num_classes=num_outputs)
        return model

    return build


def _pretrained(architecture: str) -> Callable[[int], nn.Module]:
    def pretrained(num_outputs: int) -> nn.Module:
        import torch
        from torch import nn

        constructor, weights = _constructor_and_weights(architecture)
        found = next((p for p in weights_locations(weights) if p.is_file()), None)
        if found is None:
            places = " or ".join(str(p.parent) for p in weights_locations(weights))
            raise ModelUnavailable(
                f"the ImageNet weights of {architecture} are not on this machine. Download {weights.url} "
                f"and put it in {places}; Sahay does not download backbones itself."
            )
        model = constructor(weights=None)
        try:
            model.load_state_dict(torch.load(found, map_location="cpu", weights_only=True))
        except Exception as exc:  # a wrong or damaged file must be named, not a traceback
            raise IntegrityError(
                f"{found} is not torchvision's {architecture} ImageNet weights ({exc})"
            ) from exc
        head: nn.Linear = model.get_submodule("fc")
        model.fc = nn.Linear(head.in_features, num_outputs)
        return model

    return pretrained


def feature_map(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """``layer4``'s output (it ends in a ReLU), which ``avgpool`` averages for ``fc``."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(batch))))  # type: ignore[operator]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = model.get_submodule(name)(x)
    return x


PROVIDERS = [
    Provider(
        architecture=architecture,
        description=f"{architecture.split('-', 1)[1]} from torchvision; ImageNet weights if present locally",
        build=_builder(architecture),
        cam_layer="layer4",
        in_channels=3,
        head="fc",
        pretrained=_pretrained(architecture),
        feature_map=feature_map,
    )
    for architecture in _WEIGHTS_NAMES
]
