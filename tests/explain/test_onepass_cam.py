"""The one-pass CAM against pytorch-grad-cam's Grad-CAM on the same layer (docs/explanations.md).

For a GAP-plus-linear head, Grad-CAM's channel weights on the pooled feature map are the head's
weights divided by h * w, so after the ReLU and the scaling to [0, 1] both give the same map. The
maps are compared on networks with random weights, where no map is smooth, so agreement is not luck.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
import torchxrayvision as xrv
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from sahay.explain.methods import MethodInput, get_method
from sahay.models.network import OnePassNetwork
from sahay.models.onnx_export import generated_images
from sahay.models.providers import get_provider

MAX_ABS_DIFFERENCE = 0.05
"""Measured 0.014-0.020 on these networks: Grad-CAM's maps are h * w times smaller before scaling,
so pytorch-grad-cam's 1e-7 guard in the division weighs more on them."""
MIN_CORRELATION = 0.999


class _Tapped(nn.Module):
    """xrv's DenseNet with an identity module on what its global pooling averages (the ReLU after
    norm5 is a function, in place, so pytorch-grad-cam cannot hook it), and the same logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.tap = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.tap(F.relu(self.model.features(x))).mean(dim=(2, 3))
        return self.model.classifier(pooled)


def _one_pass(
    model: nn.Module, architecture: str, image: torch.Tensor, targets: list[int]
) -> list[np.ndarray]:
    with torch.no_grad():
        class_maps = OnePassNetwork(model, get_provider(architecture)).eval()(image[None])[3][0].numpy()
    request = MethodInput(None, image.numpy(), targets, "", class_maps=class_maps)
    return get_method("cam").run(request).maps


def _grad_cam(model: nn.Module, layer: str, image: torch.Tensor, targets: list[int]) -> list[np.ndarray]:
    batch = image[None].repeat(len(targets), 1, 1, 1)
    with GradCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return list(cam(input_tensor=batch, targets=[ClassifierOutputTarget(t) for t in targets]))


def _assert_same_maps(ours: list[np.ndarray], theirs: list[np.ndarray]) -> None:
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.shape == reference.shape
        assert float(np.abs(mine - reference).max()) < MAX_ABS_DIFFERENCE
        if reference.std() > 0:  # a map that the ReLU emptied is all zeros in both
            assert np.corrcoef(mine.ravel(), reference.ravel())[0, 1] > MIN_CORRELATION


@pytest.mark.parametrize("seed", [4, 5])
def test_one_pass_cam_is_grad_cam_on_the_pooled_map_of_xrv_densenet121(seed: int) -> None:
    torch.manual_seed(0)
    model = xrv.models.DenseNet(weights=None).eval()
    image = torch.from_numpy(generated_images(1, 224, seed=seed)[0][None] * 2048.0 - 1024.0)
    targets = [0, 5, 11, 17]
    tapped = _Tapped(model).eval()
    with torch.no_grad():
        assert torch.allclose(tapped(image[None]), model(image[None]), atol=1e-5)
    _assert_same_maps(
        _one_pass(model, "xrv-densenet121", image, targets), _grad_cam(tapped, "tap", image, targets)
    )


def test_one_pass_cam_is_grad_cam_on_resnet_layer4() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    image = torch.from_numpy(np.repeat(generated_images(1, 224, seed=6)[0][None], 3, axis=0))
    targets = [0, 1, 2, 3]
    _assert_same_maps(
        _one_pass(model, "torchvision-resnet18", image, targets), _grad_cam(model, "layer4", image, targets)
    )


def test_one_pass_cam_needs_class_maps() -> None:
    from sahay.errors import BadInput

    with pytest.raises(BadInput, match="gradient method"):
        get_method("cam").run(MethodInput(None, np.zeros((1, 8, 8), np.float32), [0], ""))
