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
    from sahay.models.calibration import LabelMethod
    from sahay.models.catalog import CatalogEntry
    from sahay.training.recalibrate import CalibrationReport
    from sahay.training.site_check import SiteCheckReport


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


class CardOut(BaseModel):
    """A model's card for people: the API's and the UI's form of ``sahay models info``."""

    name: str
    version: str
    demonstration: bool
    intended_use: str
    not_intended_for: list[str]
    training_data: str
    training_datasets: list[dict[str, Any]]
    performance: list[dict[str, Any]]
    failure_modes: list[dict[str, Any]]
    calibration: str
    site_calibration: dict[str, Any] | None
    site_check: dict[str, Any] | None
    weights: str
    weights_verified: bool | None
    limitations: list[str]

    @classmethod
    def of(cls, manifest: BundleManifest) -> CardOut:
        details = manifest.details
        weights = manifest.weights
        if weights.verified is False:
            state = weights.unverified_notice(manifest.name)
        elif weights.verified:
            state = f"verified: sha256 {weights.source_sha256} ({weights.verified_by})"
        else:
            state = f"trained by Sahay; sha256 {weights.sha256}"
        calibration = manifest.calibration
        if calibration.site:
            text = (
                f"site calibration ({calibration.site.method}) of {calibration.site.source_model} on "
                f"{calibration.site.data}, {calibration.site.date[:10]}"
            )
        elif calibration.method == "none":
            text = "none: probabilities are the network's raw scores, not calibrated for this site"
        else:
            text = f"temperature {calibration.temperature:.3f}, fitted on {calibration.fitted_on}"
        return cls(
            name=manifest.name,
            version=manifest.version,
            demonstration=manifest.demonstration,
            intended_use=manifest.intended_use,
            not_intended_for=details.not_intended_for,
            training_data=manifest.training_data,
            training_datasets=[d.model_dump() for d in details.training_datasets],
            performance=[p.model_dump() for p in details.performance],
            failure_modes=[m.model_dump() for m in details.failure_modes],
            calibration=text,
            site_calibration=calibration.site.model_dump() if calibration.site else None,
            site_check=manifest.site_check.model_dump() if manifest.site_check else None,
            weights=state,
            weights_verified=weights.verified,
            limitations=manifest.limitations,
        )

    def lines(self) -> list[str]:
        """The card as plain text, one line each, for the CLI and the reports' appendix."""
        lines = [f"{self.name} {self.version}" + (" (demonstration)" if self.demonstration else "")]
        lines += [f"Intended use: {self.intended_use}"]
        lines += [f"Not for: {item}" for item in self.not_intended_for]
        lines += [f"Training data: {self.training_data}"]
        for data in self.training_datasets:
            size = f"{data['images']:,} images" if data.get("images") else ""
            lines.append(f"  {data['name']}: {size} {data.get('mix', '')}".rstrip())
        for item in self.performance:
            lines.append(
                f"Published {item['metric']} for {item['label']}: {item['value']:.3f} on {item['dataset']} "
                f"[{item['source']['title']}]"
            )
        lines += [f"Calibration: {self.calibration}", f"Weights: {self.weights}"]
        for mode in self.failure_modes:
            which = ", ".join(mode["findings"]) or "every finding"
            lines.append(
                f"Known failure ({which}): {mode['description']} "
                f"[{mode['source']['title']}, {mode['source']['url']}]"
            )
        if self.site_check and self.site_check.get("flagged"):
            lines.append(
                f"Site check {self.site_check['date'][:10]}: flagged {', '.join(self.site_check['flagged'])}"
            )
        lines += [f"Limitation: {item}" for item in self.limitations]
        return lines


def card(name: str, settings: Settings | None = None) -> CardOut:
    return CardOut.of(model_card(name, settings))


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


def calibrate(
    model: str,
    data: Path,
    *,
    as_name: str,
    method: LabelMethod = "isotonic",
    target_sensitivity: float | None = None,
    holdout: float = 0.3,
    seed: int = 0,
    min_positives: int = 20,
    report_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> CalibrationReport:
    """Recalibrate an installed model on a site's labelled images; install the result as ``as_name``."""
    from sahay.progress import report
    from sahay.training.recalibrate import calibrate as run

    def on_progress(stage: str, done: int, total: int) -> None:
        report(progress, stage, done, total, unit="images")

    return run(
        model,
        data,
        as_name=as_name,
        method=method,
        target_sensitivity=target_sensitivity,
        holdout=holdout,
        seed=seed,
        min_positives=min_positives,
        report_dir=report_dir,
        settings=settings,
        progress=on_progress,
        **dataset_options,
    )


def check_site(
    model: str,
    data: Path,
    *,
    out: Path,
    image_column: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> SiteCheckReport:
    """Compare a model's predicted rates on a site's unlabelled images with its training data."""
    from sahay.training.site_check import check_site as run

    return run(
        model,
        data,
        out=out,
        image_column=image_column,
        settings=settings,
        progress=counter(progress, "checking images", unit="images"),
    )


def verify(name: str, sha256: str, *, source: str | None = None, settings: Settings | None = None) -> Bundle:
    """Mark an installed model's weights verified when ``sha256`` matches the file it was made from."""
    from sahay.models.registry import verify_weights

    return verify_weights(name, sha256, source=source, settings=settings or get_settings())
