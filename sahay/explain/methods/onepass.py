"""Class activation mapping (Zhou et al., 2016, "Learning Deep Features for Discriminative
Localization"), from the forward pass the prediction already made.

For a network that ends in global average pooling and one linear layer (DenseNet, EfficientNet,
ResNet), label k's logit is ``b[k] + mean over positions of sum_c w[k, c] * F[c]``, where F is the
pooled feature map. The map ``sum_c w[k, c] * F[c]`` is that logit spread over the image: the
predictor's network returns it for every label (``Prediction.class_maps``), so explaining costs no
extra forward or backward pass. As pytorch-grad-cam does for Grad-CAM, the map keeps its positive
part, is scaled to [0, 1] and resized to the input. For such a head, Grad-CAM on the pooled feature
map gives the same map (its weights are ``w[k, c] / (h * w)``); docs/explanations.md gives the
agreement measured on a layer before the last activation.
"""

from __future__ import annotations

from sahay.errors import BadInput
from sahay.explain.methods.base import ExplanationMethod, MethodInput, MethodResult


def _run(request: MethodInput) -> MethodResult:
    import cv2
    import numpy as np

    if request.class_maps is None:
        raise BadInput(
            "the one-pass class activation map needs a network that ends in global pooling and one "
            "linear layer; choose a gradient method (gradcam) for this model"
        )
    height, width = request.input_tensor.shape[-2:]
    maps = []
    for index in request.label_indices:
        cam = np.maximum(np.asarray(request.class_maps[index], dtype=np.float32), 0.0)
        cam = cam - cam.min()
        cam = cam / (1e-7 + cam.max())  # pytorch-grad-cam's scale_cam_image: the same [0, 1] maps
        maps.append(cv2.resize(cam, (int(width), int(height))))
    return MethodResult(maps, 0)


ONE_PASS_CAM = ExplanationMethod(
    name="cam",
    title="CAM",
    family="cam",
    class_specific=True,
    cost="none beyond the prediction: the maps come from its forward pass",
    run=_run,
    needs_network=False,
)
