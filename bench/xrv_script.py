"""The script a researcher writes instead of Sahay: TorchXRayVision reads and classifies a chest film,
pytorch-grad-cam shows where its DenseNet121 looked, one full-resolution overlay PNG per explained
finding. bench/compare_xrv.py times it as a whole process and imports its functions for in-process timings.

    python bench/xrv_script.py FILM.dcm OUT_DIR [WEIGHTS.pt] [TOP_K] [--no-heatmaps]
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
import torchxrayvision as xrv
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

TRANSFORM = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)])


def load(weights=None):
    torch.manual_seed(0)
    model = torch.load(weights, weights_only=False) if weights else xrv.models.DenseNet(weights=None)
    return model.eval()


def predict(model, path):
    image = xrv.utils.read_xray_dcm(path)  # MONOCHROME1 fixed, scaled to [-1024, 1024]
    tensor = torch.from_numpy(TRANSFORM(image[None, ...]))[None]
    with torch.no_grad():
        probabilities = torch.sigmoid(model(tensor)[0])
    return image, tensor, probabilities


def explain(model, path, out, top_k=3):
    image, tensor, probabilities = predict(model, path)
    ranked = [i for i in probabilities.argsort(descending=True).tolist() if probabilities[i] > 0.5][:top_k]
    if ranked:
        with GradCAM(model=model, target_layers=[model.features.denseblock4]) as cam:
            maps = cam(tensor.repeat(len(ranked), 1, 1, 1), [ClassifierOutputTarget(i) for i in ranked])
    film = xrv.datasets.XRayCenterCrop()(image[None, ...])[0]  # the square the model saw, full size
    rgb = np.repeat(((film - film.min()) / np.ptp(film))[..., None], 3, axis=-1).astype(np.float32)
    for index, heatmap in zip(ranked, maps if ranked else [], strict=True):
        overlay = show_cam_on_image(rgb, cv2.resize(heatmap, film.shape[::-1]), use_rgb=False)
        cv2.imwrite(str(Path(out) / f"{model.targets[index]}.png"), overlay)
    return {model.targets[i]: float(p) for i, p in enumerate(probabilities)}, len(ranked)


if __name__ == "__main__":
    film, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = load(sys.argv[3] if len(sys.argv) > 3 else None)
    top_k = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    if "--no-heatmaps" in sys.argv:
        print(predict(model, film)[2].tolist())
    else:
        print(explain(model, film, out, top_k))
