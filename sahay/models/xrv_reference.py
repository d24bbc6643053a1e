"""Training-data prevalence of each TorchXRayVision finding, from the label tables its wheel ships.

``python -m sahay.models.xrv_reference`` rewrites ``cards/xrv_prevalence.json``. It loads each
dataset with TorchXRayVision's own dataset classes (so labels are mapped exactly as its models
were trained), keeps frontal views (PA and AP), counts every image once, and divides the
positives of each finding by all the images of the datasets that label it (an image where the
finding is blank, not mentioned, counts as without it). MIMIC-CXR and
OpenI label tables are not in the wheel, so models trained on them have partial or no reference.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PREVALENCE_FILE = Path(__file__).parent / "cards" / "xrv_prevalence.json"
FRONTAL = ["PA", "AP"]

# The datasets each release was trained on (TorchXRayVision's model names), as far as the wheel ships them.
MODEL_DATASETS = {
    "densenet121-res224-all": ["nih", "pc", "chex", "google", "rsna"],
    "densenet121-res224-nih": ["nih"],
    "densenet121-res224-pc": ["pc"],
    "densenet121-res224-chex": ["chex"],
    "densenet121-res224-rsna": ["rsna"],
    "densenet121-res224-mimic_nb": [],
    "densenet121-res224-mimic_ch": [],
}
NOT_SHIPPED = {
    "densenet121-res224-all": "MIMIC-CXR and OpenI",
    "densenet121-res224-mimic_nb": "MIMIC-CXR",
    "densenet121-res224-mimic_ch": "MIMIC-CXR",
}


def _load(name: str, folder: str) -> Any:
    import torchxrayvision as xrv

    datasets = xrv.datasets
    if name == "nih":
        return datasets.NIH_Dataset(imgpath=folder, views=FRONTAL, unique_patients=False)
    if name == "pc":
        return datasets.PC_Dataset(imgpath=folder, views=FRONTAL, unique_patients=False)
    if name == "chex":
        return datasets.CheX_Dataset(imgpath=folder, views=FRONTAL, unique_patients=False)
    if name == "google":
        return datasets.NIH_Google_Dataset(imgpath=folder, views=FRONTAL)
    if name == "rsna":
        return datasets.RSNA_Pneumonia_Dataset(imgpath=folder, views=FRONTAL)
    raise ValueError(f"unknown dataset {name!r}")


def counts() -> tuple[dict[str, dict[str, tuple[int, int]]], dict[str, dict[str, Any]]]:
    """Per dataset, per finding it labels: (positive images, all images); and each dataset's mix."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    mixes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as empty:  # the classes want an image folder; none is read
        for name in sorted({d for names in MODEL_DATASETS.values() for d in names}):
            dataset = _load(name, empty)
            mixes[name] = _mix(dataset.csv)
            labels = np.asarray(dataset.labels, dtype=float)
            found[name] = {
                # Blank (not mentioned; CheXpert's uncertain too) counts as absent: a site's
                # predicted rate is over all its images, so the reference must be too.
                pathology: (int(np.nansum(labels[:, k] == 1)), len(labels))
                for k, pathology in enumerate(dataset.pathologies)
                if (~np.isnan(labels[:, k])).any()
            }
    return found, mixes


def _mix(table: Any) -> dict[str, Any]:
    """Images, patients, views, sex and age of a dataset's frontal images, where its table says."""
    mix: dict[str, Any] = {"images": len(table)}
    if "patientid" in table:
        mix["patients"] = int(table["patientid"].nunique())
    if "view" in table:
        mix["views"] = {
            str(k): round(float(v), 3) for k, v in table["view"].value_counts(normalize=True).items()
        }
    if "sex_female" in table and table["sex_female"].notna().any():
        mix["female"] = round(float(table["sex_female"].mean()), 3)
    if "age_years" in table and table["age_years"].notna().any():
        ages = table["age_years"].dropna()
        mix["median_age"] = float(ages.median())
        mix["under_18"] = round(float((ages < 18).mean()), 4)
    return mix


def build() -> dict[str, Any]:
    import torchxrayvision as xrv

    per_dataset, mixes = counts()
    models: dict[str, Any] = {}
    for model, names in MODEL_DATASETS.items():
        pooled: dict[str, dict[str, Any]] = {}
        for name in names:
            for pathology, (positives, labelled) in per_dataset[name].items():
                entry = pooled.setdefault(pathology, {"positives": 0, "images": 0, "datasets": []})
                entry["positives"] += positives
                entry["images"] += labelled
                entry["datasets"].append(name)
        models[model] = {
            label: {
                "prevalence": round(e["positives"] / e["images"], 5),
                "images": e["images"],
                "datasets": e["datasets"],
            }
            for label, e in sorted(pooled.items())
            if e["images"]
        }
    return {
        "torchxrayvision": xrv.__version__,
        "method": (
            "positive images / all images of the datasets that label the finding (blank counts as absent), "
            "frontal (PA and AP) views, each image once, "
            "from the label tables in the torchxrayvision wheel read by its own dataset classes "
            "(sahay/models/xrv_reference.py)"
        ),
        "not_shipped": NOT_SHIPPED,
        "datasets": mixes,
        "models": models,
    }


if __name__ == "__main__":
    PREVALENCE_FILE.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PREVALENCE_FILE}")
