"""Models that ``sahay models pull`` can fetch: TorchXRayVision's DenseNet121 chest models.

Labels, download addresses and operating thresholds come from torchxrayvision itself
(``xrv.models.model_urls``), so there is one source for them. Released files are whole
pickled models; they are converted to plain state dicts before they enter a bundle.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torchxrayvision as xrv

from sahay.models.bundle import (
    BundleManifest,
    Calibration,
    CardDetails,
    FailureMode,
    InputSpec,
    PublishedPerformance,
    ReferencePrevalence,
    TrainingDataset,
    WeightsSpec,
)
from sahay.models.providers.xrv import ARCHITECTURE

# The GitHub releases publish no checksums. The same files are published on the Hugging Face Hub
# (torchxrayvision/<model>), whose Git LFS pointers record each file's sha256 and size; the
# sources are in _CHECKSUM_SOURCES. A release without one installs as "not verified".
_HUB = "https://huggingface.co/torchxrayvision/densenet121-res224-{}/commit/{} (Git LFS pointer of model.pt)"
_PUBLISHED = {
    "all": (
        "56524913dd16a906422e8d8b66a7a5c46be1d82eb7ac012d8103776f1aa68899",
        28382008,
        "20d9a08eaca067587bb3215aafcc9b2202b4904c",
    ),
    "pc": (
        "a9148ef62ae4e7a31a9bed8cef22811f39681cd61e4390398936efc6280af521",
        28381804,
        "5fd7f7ace36101dfbe4a3304932630dd3965a816",
    ),
    "rsna": (
        "906a59f48cf09638b745d66848a6c6f9d741368c66244717a81207329d140268",
        28381974,
        "99f966ef7574e9884af632cc68906455f802d407",
    ),
    "mimic_ch": (
        "23b13a04459684ffa41247d068207a7657b4e1b4dec2b02431f5026bd75b1189",
        28382012,
        "132a5ee9f88ecd77b8f39f27b70a66b98976187d",
    ),
}
# nih, chex and mimic_nb: no published checksum was found; they install as "not verified".
_KNOWN_SHA256 = {f"densenet121-res224-{key}": (sha, size) for key, (sha, size, _) in _PUBLISHED.items()}
_CHECKSUM_SOURCES = {
    f"densenet121-res224-{key}": _HUB.format(key, commit) for key, (_, _, commit) in _PUBLISHED.items()
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
        """The bundle's manifest for weights made from a file of ``source_sha256``.

        The weights count as verified only when that file's sha256 is a published one.
        """
        labels = [self.raw_labels[i] for i in self.kept_outputs]
        verified = self.sha256 is not None and source_sha256 == self.sha256
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
            weights=WeightsSpec(
                source_url=self.url,
                source_sha256=source_sha256,
                verified=verified,
                verified_by=_CHECKSUM_SOURCES.get(self.xrv_key) if verified else None,
            ),
            details=card_details(self.xrv_key, labels),
        )

    def convert(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep only the outputs these weights were trained for, so labels and outputs line up."""
        kept = torch.tensor(self.kept_outputs)
        converted = dict(state_dict)
        converted["classifier.weight"] = state_dict["classifier.weight"][kept].clone()
        converted["classifier.bias"] = state_dict["classifier.bias"][kept].clone()
        return converted


_CARDS = Path(__file__).parent / "cards"


@cache
def _card_sources() -> tuple[dict[str, Any], dict[str, Any]]:
    card = json.loads((_CARDS / "xrv_card.json").read_text(encoding="utf-8"))
    prevalence = json.loads((_CARDS / "xrv_prevalence.json").read_text(encoding="utf-8"))
    return card, prevalence


def card_details(xrv_key: str, labels: list[str]) -> CardDetails:
    """The card of a TorchXRayVision release: cited failure modes, its data, its reference prevalence."""
    from sahay.models.xrv_reference import MODEL_DATASETS, NOT_SHIPPED

    card, prevalence = _card_sources()
    names = MODEL_DATASETS.get(xrv_key, [])
    datasets = []
    for name in names:
        mix = prevalence["datasets"][name]
        views = ", ".join(f"{view} {share:.0%}" for view, share in mix.get("views", {}).items())
        parts = [f"frontal views: {views}" if views else ""]
        if "female" in mix:
            parts.append(f"female {mix['female']:.0%}")
        if "median_age" in mix:
            parts.append(f"median age {mix['median_age']:g}")
        datasets.append(
            TrainingDataset(
                name=card["datasets"][name]["name"],
                images=mix["images"],
                patients=mix.get("patients"),
                mix="; ".join(p for p in parts if p),
                source=card["datasets"][name]["source"],
            )
        )
    reference = {
        label: ReferencePrevalence(**entry)
        for label, entry in prevalence["models"].get(xrv_key, {}).items()
        if label in labels
    }
    missing = NOT_SHIPPED.get(xrv_key)
    source = prevalence["method"] + (
        f"; {missing} label tables are not shipped, so not counted" if missing else ""
    )
    return CardDetails(
        not_intended_for=card["not_intended_for"],
        expected_views=card["expected_views"],
        training_datasets=datasets,
        performance=[
            PublishedPerformance(**{k: v for k, v in p.items() if k != "model"})
            for p in card["performance"]
            if p["model"] == xrv_key and p["label"] in labels
        ],
        failure_modes=[
            FailureMode(
                findings=[f for f in mode["findings"] if f in labels],
                description=mode["description"],
                source=mode["source"],
            )
            for mode in card["failure_modes"]
            if not mode["findings"] or set(mode["findings"]) & set(labels)
        ],
        reference_prevalence=reference,
        reference_prevalence_source=source,
    )


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
