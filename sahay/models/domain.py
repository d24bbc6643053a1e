"""Is this image one the model was made for? Cheap metadata checks first, then feature distance.

A chest model given a knee film, a head CT or a photograph must say so rather than return
findings. Each check returns sentences naming the problem; the pipeline refuses the image
when there are any, unless the user forces the analysis.
"""

from __future__ import annotations

import numpy as np

from sahay.analysis import ImageInfo, Quality
from sahay.models.bundle import BundleManifest
from sahay.models.ood import OodReference


def metadata_problems(info: ImageInfo, manifest: BundleManifest, reference: OodReference | None) -> list[str]:
    """Problems visible before running the model: modality, body part, view position, colour."""
    problems = []
    if manifest.modalities and info.modality and info.modality.upper() not in manifest.modalities:
        problems.append(
            f"its modality is {info.modality}, but model {manifest.name} was made for "
            f"{', '.join(manifest.modalities)}"
        )
    if manifest.body_part and info.body_part and info.body_part.upper() != manifest.body_part.upper():
        problems.append(
            f"its body part is {info.body_part}, but model {manifest.name} was made for {manifest.body_part}"
        )
    views = manifest.details.expected_views
    if views and info.view_position and info.view_position.strip().upper() not in views:
        problems.append(
            f"its view position is {info.view_position}, but model {manifest.name} was made for "
            f"{' and '.join(views)} views"
        )
    expects_grey = manifest.input.channels == 1 or (
        reference is not None and reference.spec.expects_greyscale
    )
    if expects_grey and info.channels == 3:
        problems.append(f"it is a colour image, but model {manifest.name} was made for greyscale images")
    return problems


def assess(
    info: ImageInfo,
    manifest: BundleManifest,
    reference: OodReference | None,
    features: np.ndarray,
    problems: list[str],
) -> Quality:
    """Combine the metadata problems with the feature-distance score into the Analysis' quality."""
    if reference is None:
        return Quality(in_domain=None if not problems else False, checks=problems)
    score = float(reference.scores(features[None, :])[0])
    threshold = reference.spec.threshold
    checks = list(problems)
    if score > threshold:
        checks.append(
            f"it is unlike the images model {manifest.name} was trained on "
            f"(out-of-domain score {score:.3f}, above the threshold {threshold:.3f})"
        )
    return Quality(in_domain=not checks, ood_score=score, ood_threshold=threshold, checks=checks)
