"""Class activation maps through pytorch-grad-cam (https://github.com/jacobgil/pytorch-grad-cam).

Each finding gets its own target: the logit of that label. For a multi-label sigmoid
head that is the right quantity; a softmax over labels would make findings compete.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from sahay.errors import BadInput

CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
}


def class_activation_maps(
    model: nn.Module,
    input_tensor: torch.Tensor,
    label_indices: Sequence[int],
    layer_name: str,
    method: str = "gradcam",
) -> list[np.ndarray]:
    """Return one (H, W) map in [0, 1] per label index, at the input tensor's resolution.

    ``input_tensor`` is one preprocessed image, (C, H, W). All labels are computed in one
    batched forward and backward pass.
    """
    if method not in CAM_METHODS:
        raise BadInput(f"unknown explanation method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    if not label_indices:
        return []
    layer = model.get_submodule(layer_name)
    batch = input_tensor.unsqueeze(0).repeat(len(label_indices), 1, 1, 1)
    targets = [ClassifierOutputTarget(index) for index in label_indices]
    # The context manager removes the hooks even when the backward pass fails.
    with CAM_METHODS[method](model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=batch, targets=targets)
    return [np.nan_to_num(m.astype(np.float32), nan=0.0) for m in maps]
