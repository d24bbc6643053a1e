"""Models that ``sahay models pull`` can fetch: TorchXRayVision's DenseNet121 chest models.

Labels, download addresses and operating thresholds come from torchxrayvision itself
(``xrv.models.model_urls``), so there is one source for them. Released files are whole
pickled models; they are converted to plain state dicts before they enter a bundle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchxrayvision as xrv

from sahay.models.bundle import BundleManifest, Calibration, InputSpec, WeightsSpec
from sahay.models.providers.xrv import ARCHITECTURE

# Upstream publishes no checksums. This sha256 and size of the "all" model were recorded
# by independent downstream users of the v1 release; others are recorded on first download.
_KNOWN_SHA256 = {
    "densenet121-res224-all": ("56524913dd16a906422e8d8b66a7a5c46be1d82eb7ac012d8103776f1aa68899", 28382008),
}

_TRAINING_DATA = {
    "all": "NIH ChestX-ray14, PadChest, CheXpert, MIMIC-CXR, Google, OpenI and RSNA/Kaggle",
    "nih": "NIH ChestX-ray14",
    "pc": "PadChest",
    "chex": "CheXpert",
    "rsna": "RSNA Pneumonia Challenge",
    "mimic_nb": "MIMIC-CXR (NegBio labels)",
    "mimic_ch": "MIMIC-CXR (CheXpert labels)",
}

INTENDED_USE = (
    "Research and decision support on adult frontal (PA/AP) chest radiographs. Not validated for lateral "
    "views, children, or other body parts. Outputs are model estimates for a clinician to review, "
    "not a diagnosis."
)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    xrv_key: str
    url: str
    sha256: str | None
    size: int | None
    raw_labels: tuple[str, ...]
    """One per network output; '' marks an output the weights were not trained for."""
    raw_thresholds: tuple[float, ...]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def kept_outputs(self) -> list[int]:
        return [
            i
            for i, (label, threshold) in enumerate(zip(self.raw_labels, self.raw_thresholds, strict=True))
            if label and not math.isnan(threshold)
        ]

    def manifest(self, source_sha256: str) -> BundleManifest:
        labels = [self.raw_labels[i] for i in self.kept_outputs]
        dataset = self.xrv_key.rsplit("-", 1)[-1]
        return BundleManifest(
            name=self.name,
            version=f"torchxrayvision-{xrv.__version__}",
            architecture=ARCHITECTURE,
            task="multilabel",
            modalities=["CR", "DX"],
            body_part="CHEST",
            labels=labels,
            input=InputSpec(size=224, channels=1, resize="center_crop", value_range=(-1024.0, 1024.0)),
            thresholds={self.raw_labels[i]: float(self.raw_thresholds[i]) for i in self.kept_outputs},
            calibration=Calibration(temperature=1.0, method="none"),
            training_data=_TRAINING_DATA.get(dataset, dataset),
            intended_use=INTENDED_USE,
            license="Apache-2.0 (TorchXRayVision); see the upstream datasets' terms for the weights",
            weights=WeightsSpec(source_url=self.url, source_sha256=source_sha256),
        )

    def convert(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep only the outputs these weights were trained for, so labels and outputs line up."""
        kept = torch.tensor(self.kept_outputs)
        converted = dict(state_dict)
        converted["classifier.weight"] = state_dict["classifier.weight"][kept].clone()
        converted["classifier.bias"] = state_dict["classifier.bias"][kept].clone()
        return converted


def catalog() -> dict[str, CatalogEntry]:
    entries = {}
    for key, spec in xrv.models.model_urls.items():
        if not key.startswith("densenet121-res224-"):
            continue
        sha256, size = _KNOWN_SHA256.get(key, (None, None))
        entry = CatalogEntry(
            name=f"xrv-{key}",
            xrv_key=key,
            url=spec["weights_url"],
            sha256=sha256,
            size=size,
            raw_labels=tuple(spec["labels"]),
            raw_thresholds=tuple(float(t) for t in spec["op_threshs"]),
        )
        entries[entry.name] = entry
    return entries
