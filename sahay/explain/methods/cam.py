"""Class activation maps through pytorch-grad-cam (https://github.com/jacobgil/pytorch-grad-cam).

Each finding gets its own target: the logit of that label. For a multi-label sigmoid
head that is the right quantity; a softmax over labels would make findings compete.
All labels are computed in one batched forward and backward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


from sahay.explain.methods.base import ExplanationMethod, MethodInput, MethodResult

_ONE_PASS = "one forward and backward pass for all findings"


def _cam(name: str, title: str, cam_class_name: str, *, class_specific: bool = True) -> ExplanationMethod:
    def run(request: MethodInput) -> MethodResult:
        import numpy as np
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cam_class = getattr(pytorch_grad_cam, cam_class_name)
        if not request.label_indices:
            return MethodResult([], 0)
        layer = request.network.get_submodule(request.cam_layer)
        count = len(request.label_indices)
        batch = request.tensor.unsqueeze(0).repeat(count, 1, 1, 1)
        targets = [ClassifierOutputTarget(index) for index in request.label_indices]
        # The context manager removes the hooks even when the backward pass fails.
        with cam_class(model=request.network, target_layers=[layer]) as cam:
            maps = cam(input_tensor=batch, targets=targets)
        return MethodResult([np.nan_to_num(m.astype(np.float32), nan=0.0) for m in maps], count)

    return ExplanationMethod(name, title, "cam", class_specific, _ONE_PASS, run)


GRADCAM = _cam("gradcam", "Grad-CAM", "GradCAM")
GRADCAM_PLUS_PLUS = _cam("gradcam++", "Grad-CAM++", "GradCAMPlusPlus")
HIRESCAM = _cam("hirescam", "HiResCAM", "HiResCAM")
LAYERCAM = _cam("layercam", "LayerCAM", "LayerCAM")
# EigenCAM is the first principal component of the activations: it never looks at the target.
EIGENCAM = _cam("eigencam", "EigenCAM", "EigenCAM", class_specific=False)
