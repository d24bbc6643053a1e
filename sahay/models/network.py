"""The network as the engines run it: one forward pass, every output an analysis needs.

``OnePassNetwork`` wraps a bundle's torch model. Its forward pass returns, from the same pass:

- ``logits`` (N, K);
- ``feature_map`` (N, C, h, w): what global average pooling averages for the linear head (the
  provider's ``feature_map``), or the ``cam_layer`` output for a network without such a head;
- ``features`` (N, D): the ``cam_layer`` output, pooled (the out-of-domain check, similar cases);
- ``class_maps`` (N, K, h, w): ``head.weight @ feature_map`` at every position, the class activation
  maps of Zhou et al. (2016). For a GAP-plus-linear head, ``logits = mean(class_maps) + bias``.

The torch engine runs it, and ``sahay models export-onnx`` exports it, so both give the same four.
"""

from __future__ import annotations

import torch
from torch import nn

from sahay.models.providers import Provider

OUTPUT_NAMES = ("logits", "feature_map", "features", "class_maps")
INPUT_NAME = "input"


class OnePassNetwork(nn.Module):
    def __init__(self, model: nn.Module, provider: Provider) -> None:
        super().__init__()
        self.model = model
        self.provider = provider
        self.one_pass = provider.feature_map is not None
        head = model.get_submodule(provider.head)
        if not isinstance(head, nn.Linear):
            self.one_pass = False

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        layer = self.model.get_submodule(self.provider.cam_layer)
        handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        try:
            if self.one_pass:
                assert self.provider.feature_map is not None
                feature_map = self.provider.feature_map(self.model, batch)
                head = self.model.get_submodule(self.provider.head)
                logits = head(feature_map.mean(dim=(2, 3)))
                class_maps = torch.einsum("kc,nchw->nkhw", head.weight, feature_map)
            else:
                logits = self.model(batch)
                feature_map = captured[0]
                class_maps = feature_map.new_zeros((batch.shape[0], logits.shape[1], *feature_map.shape[2:]))
        finally:
            handle.remove()
        # Pooled after the pass, as the out-of-domain references were fitted (an in-place activation
        # after ``cam_layer`` counts, as it did there).
        features = captured[0].mean(dim=(2, 3))
        return logits, feature_map, features, class_maps
