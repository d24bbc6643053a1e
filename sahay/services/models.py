"""Installed models as use cases: list, inspect, pull, import, remove, and fit the out-of-domain reference.

``ModelOut`` is the one JSON form of an installed model, for the API and the capabilities endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from sahay.config import Settings, get_settings
from sahay.errors import ModelUnavailable
from sahay.progress import Progress, counter

if TYPE_CHECKING:
    from sahay.models.bundle import Bundle, BundleManifest
    from sahay.models.catalog import CatalogEntry


class ModelOut(BaseModel):
    name: str
    version: str
    task: str
    modalities: list[str]
    body_part: str | None
    labels: list[str]
    demonstration: bool
    intended_use: str

    @classmethod
    def of(cls, manifest: BundleManifest) -> ModelOut:
        return cls(
            name=manifest.name,
            version=manifest.version,
            task=manifest.task,
            modalities=list(manifest.modalities),
            body_part=manifest.body_part,
            labels=list(manifest.labels),
            demonstration=manifest.demonstration,
            intended_use=manifest.intended_use,
        )


def installed(settings: Settings | None = None) -> tuple[list[Bundle], dict[Path, str]]:
    """The installed bundles, and the folders that are not readable bundles (with why)."""
    from sahay.models.registry import scan

    return scan(settings or get_settings())


def installed_models(settings: Settings | None = None) -> list[ModelOut]:
    return [ModelOut.of(bundle.manifest) for bundle in installed(settings)[0]]


def check_installed(name: str, settings: Settings | None = None) -> None:
    """A server runs installed models only: a name, never a path on the server."""
    names = {model.name for model in installed_models(settings)}
    if name not in names:
        raise ModelUnavailable(
            f"no installed model is named {name[:100]!r}; installed: {', '.join(sorted(names)) or 'none'}"
        )


def catalogue() -> list[CatalogEntry]:
    """The models that can be pulled."""
    from sahay.models.catalog import catalog

    return list(catalog().values())


def model_card(name: str, settings: Settings | None = None) -> BundleManifest:
    """An installed model's (or a bundle folder's) manifest: what it is for, how it was made."""
    from sahay.models.registry import locate

    bundle = locate(name, settings or get_settings())
    if bundle is None:
        raise ModelUnavailable(f"no installed model named {name!r}; `sahay models list` shows them")
    return bundle.manifest


def pull(name: str, settings: Settings | None = None, progress: Progress | None = None) -> Bundle:
    """Download a catalogue model, check its sha256, and install it."""
    from sahay.models.registry import pull as pull_model

    return pull_model(
        name, settings or get_settings(), progress=counter(progress, "downloading", unit="bytes")
    )


def import_model(path: Path, *, force: bool = False, settings: Settings | None = None) -> Bundle:
    """Install a bundle folder, or a provider's weights file checked against its known sha256."""
    from sahay.models.registry import import_path

    return import_path(path, settings or get_settings(), force=force)


def remove(name: str, settings: Settings | None = None) -> Path:
    from sahay.models.registry import remove as remove_model

    return remove_model(name, settings or get_settings())


def fit_ood(
    model: str,
    data: Path,
    *,
    percentile: float = 99.0,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> Bundle:
    """Fit a model's out-of-domain reference from images it should accept."""
    from sahay.training.reference import fit_ood as fit

    return fit(
        model,
        data,
        percentile=percentile,
        settings=settings,
        progress=counter(progress, "reading images", unit="images"),
        **dataset_options,
    )
