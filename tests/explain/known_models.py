"""Small networks whose right answer is known by construction, for testing explanations."""

from __future__ import annotations

import torch
from torch import nn

SIDE = 64
CAM_LAYER = "features"


class HalfGate(nn.Module):
    """Keeps channels of the first group in the image's left half and the second group in its right."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.half = channels // 2

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        width = activations.shape[-1]
        mask = torch.zeros_like(activations)
        mask[:, : self.half, :, : width // 2] = 1.0
        mask[:, self.half :, :, width // 2 :] = 1.0
        return activations * mask


class HalvesModel(nn.Module):
    """Two outputs: label 0 is texture in the left half of the image, label 1 texture in the right half.

    The convolution has zero-mean kernels, so it answers to local contrast (noise, edges) and not to
    brightness: a blurred half reads as "absent". Logits are about +4 on uniform noise and -4 on flat
    grey, so probabilities span the whole range.
    """

    def __init__(self, channels: int = 8, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        conv = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        weights = torch.randn(conv.weight.shape, generator=generator)
        conv.weight.data = weights - weights.mean(dim=(1, 2, 3), keepdim=True)
        self.features = nn.Sequential(conv, nn.ReLU(), HalfGate(channels))
        self.half = channels // 2
        noise = torch.rand((1, 3, SIDE, SIDE), generator=generator)
        self.register_buffer("reference", self._responses(self.features(noise)).detach())

    def _responses(self, activations: torch.Tensor) -> torch.Tensor:
        # Each label's mean over its own half only (the gate zeroes the other half).
        left = activations[:, : self.half].sum(dim=(1, 2, 3))
        right = activations[:, self.half :].sum(dim=(1, 2, 3))
        return torch.stack([left, right], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        responses = self._responses(self.features(images))
        return 8.0 * (responses / self.reference - 0.5)


def noise_image(seed: int = 1) -> torch.Tensor:
    return torch.rand((3, SIDE, SIDE), generator=torch.Generator().manual_seed(seed))
