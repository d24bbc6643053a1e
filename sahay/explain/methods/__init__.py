"""The explanation methods Sahay offers. A new method is one file here and one line in ``METHODS``.

Method files import torch, pytorch-grad-cam and captum inside ``run``, so the registry itself is light:
the CLI builds its help and the API its capabilities from it without loading them.

Example:
    >>> sorted(METHODS)
    ['cam', 'eigencam', 'gradcam', 'gradcam++', 'hirescam', 'layercam', 'occlusion', 'shap']
"""

from __future__ import annotations

from sahay.errors import BadInput
from sahay.explain.methods.base import ExplanationMethod, MethodInput, MethodResult
from sahay.explain.methods.cam import EIGENCAM, GRADCAM, GRADCAM_PLUS_PLUS, HIRESCAM, LAYERCAM
from sahay.explain.methods.occlusion import OCCLUSION
from sahay.explain.methods.onepass import ONE_PASS_CAM
from sahay.explain.methods.shapley import SHAPLEY
from sahay.explain.options import DEFAULT_METHOD, Budget

METHODS: dict[str, ExplanationMethod] = {
    method.name: method
    for method in (ONE_PASS_CAM, GRADCAM, GRADCAM_PLUS_PLUS, HIRESCAM, LAYERCAM, EIGENCAM, OCCLUSION, SHAPLEY)
}


def get_method(name: str) -> ExplanationMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise BadInput(f"unknown explanation method {name!r}; choose one of {', '.join(METHODS)}") from None


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Budget",
    "ExplanationMethod",
    "MethodInput",
    "MethodResult",
    "get_method",
]
