"""De-identify DICOM files or folders (PS3.15 Basic Application Level Confidentiality Profile)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sahay.progress import Progress, counter

if TYPE_CHECKING:
    from sahay.imaging.deid import DeidReport


@dataclass(frozen=True)
class DeidRequest:
    source: Path
    destination: Path
    retain_dates: bool = False
    retain_patient_characteristics: bool = False
    allow_burned_in: bool = False
    keep_private_tags: Sequence[str] = field(default_factory=tuple)
    """Tags as written by users: ``00091001``, ``(0009,1001)``..."""
    keep_private_creators: Sequence[str] = field(default_factory=tuple)
    secret_file: Path | None = None
    mapping_out: Path | None = None


def deidentify(request: DeidRequest, progress: Progress | None = None) -> DeidReport:
    from sahay.imaging.deid import DeidOptions, deidentify_path, load_secret, parse_tag

    options = DeidOptions(
        retain_longitudinal_dates=request.retain_dates,
        retain_patient_characteristics=request.retain_patient_characteristics,
        allow_burned_in=request.allow_burned_in,
        keep_private_tags=frozenset(parse_tag(tag) for tag in request.keep_private_tags),
        keep_private_creators=frozenset(request.keep_private_creators),
    )
    secret = load_secret(request.secret_file) if request.secret_file is not None else None
    return deidentify_path(
        request.source,
        request.destination,
        options,
        secret=secret,
        mapping_out=request.mapping_out,
        progress=counter(progress, "de-identifying", unit="files"),
    )
