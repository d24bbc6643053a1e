"""Installed bundles in ``$SAHAY_HOME/models``: list, pull, import, and pick one for an image."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sahay.analysis import ImageInfo
from sahay.config import Settings
from sahay.errors import BadInput, IntegrityError, ModelUnavailable, SahayError
from sahay.fileio import sha256_file
from sahay.models.bundle import MANIFEST_NAME, NAME_PATTERN, Bundle, load_bundle, save_bundle

if TYPE_CHECKING:  # the catalogue and the weights reader load torch and torchxrayvision: only to install
    from sahay.models.catalog import CatalogEntry
    from sahay.models.download import ProgressCallback

log = logging.getLogger(__name__)
CHEST_RADIOGRAPH_MODALITIES = {"CR", "DX"}
CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG"}


def scan(settings: Settings) -> tuple[list[Bundle], dict[Path, str]]:
    """Valid bundles under the models folder by name, and the folders that fail to load, with why."""
    bundles, problems = [], {}
    for folder in _bundle_folders(settings):
        try:
            bundles.append(load_bundle(folder))
        except SahayError as exc:
            problems[folder] = str(exc)
    return sorted(bundles, key=lambda b: b.name), problems


def installed(settings: Settings) -> list[Bundle]:
    return scan(settings)[0]


def _bundle_folders(settings: Settings) -> list[Path]:
    root = settings.models_dir
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST_NAME).exists())


def model_folder(name: str, settings: Settings) -> Path:
    """The folder of the installed model ``name``; a name is one path component, never a path."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadInput(
            f"{name!r} is not a model name (letters, digits, '.', '_' and '-'); "
            "give a bundle folder's path or an installed model's name"
        )
    return settings.models_dir / name


def find_bundle(name_or_path: str, settings: Settings) -> Bundle:
    """Like ``locate``, but a missing model is an error."""
    bundle = locate(name_or_path, settings)
    if bundle is None:
        raise ModelUnavailable(f"no installed model named {name_or_path!r} and no bundle folder at that path")
    return bundle


def check_bundle_destination(folder: Path) -> None:
    """A bundle may replace only an earlier bundle or an empty folder, never other files."""
    if folder.is_file() or folder.is_symlink():
        raise BadInput(f"{folder} is a file; give a folder for the bundle")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST_NAME).is_file():
        raise BadInput(
            f"{folder} already holds files that are not a model bundle; give a new or empty folder"
        )


def find_installed(name: str, settings: Settings) -> Bundle | None:
    folder = model_folder(name, settings)
    return load_bundle(folder) if (folder / MANIFEST_NAME).is_file() else None


def locate(name_or_path: str, settings: Settings) -> Bundle | None:
    """A bundle folder given by path, or an installed model given by name; None if not installed."""
    candidate = Path(name_or_path).expanduser()
    if (candidate / MANIFEST_NAME).is_file():
        return load_bundle(candidate)
    if candidate.exists():
        raise ModelUnavailable(f"{candidate} is not a model bundle: it has no {MANIFEST_NAME}")
    if len(candidate.parts) > 1:
        raise ModelUnavailable(f"there is no bundle folder at {candidate}; check the path")
    return find_installed(name_or_path, settings)


def import_hint(entry: CatalogEntry) -> str:
    return (
        f"On a machine with internet, download {entry.url} and copy it here, then run: "
        f"sahay models import {entry.filename}"
    )


def pull(name: str, settings: Settings, progress: ProgressCallback | None = None) -> Bundle:
    """Download a catalogue model, check it, convert it, and install it as a bundle."""
    from sahay.models.catalog import catalog
    from sahay.models.download import download_file, rewrite_for_mirror

    entries = catalog()
    if name not in entries:
        raise ModelUnavailable(
            f"no model named {name!r} in the catalogue; `sahay models list --available` shows them"
        )
    entry = entries[name]
    url = rewrite_for_mirror(entry.url, settings.model_mirror)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.models_dir, prefix=".pull-") as tmp:
        target = Path(tmp) / entry.filename
        try:
            download_file(
                url,
                target,
                expected_sha256=entry.sha256,
                expected_size=entry.size,
                timeout_s=settings.download_timeout_s,
                progress=progress,
            )
        except ModelUnavailable as exc:
            raise ModelUnavailable(
                f"could not download {name}: {exc}.",
                hints={
                    "cli": f"{import_hint(entry)}. To try Sahay with no internet, run `sahay demo`.",
                    "api": "An administrator can install it without internet: see docs/models.md.",
                },
            ) from exc
        return _install_from_weights_file(entry, target, settings)


def import_path(path: Path, settings: Settings, *, force: bool = False) -> Bundle:
    """Install a bundle folder, or a provider's weights file fetched on another machine."""
    path = path.expanduser()
    if path.is_dir():
        return _import_bundle_folder(path, settings, force=force)
    if not path.is_file():
        raise BadInput(f"{path} does not exist; give a bundle folder or a downloaded weights file")
    return _import_weights_file(path, settings, force=force)


def _import_bundle_folder(folder: Path, settings: Settings, *, force: bool) -> Bundle:
    source = load_bundle(folder)
    source.load_model()  # checks sha256 and that the weights fit the architecture
    destination = model_folder(source.name, settings)
    if destination.resolve() == folder.resolve():
        return source
    _refuse_overwrite(destination, force)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.models_dir, prefix=".import-"))
    try:
        for name in source.files():
            shutil.copy2(folder / name, staging / name)
        _export_onnx_on_install(load_bundle(staging), settings)
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(destination)


def _import_weights_file(path: Path, settings: Settings, *, force: bool) -> Bundle:
    from sahay.models.catalog import catalog

    digest = sha256_file(path)
    entries = list(catalog().values())
    by_sha = [e for e in entries if e.sha256 == digest]
    by_name = [e for e in entries if e.filename == path.name]
    matches = by_sha or by_name
    if not matches:
        raise BadInput(
            f"{path} is neither a bundle folder nor a known weights file (sha256 {digest}). Known files: "
            + ", ".join(e.filename for e in entries)
        )
    entry = matches[0]
    if entry.sha256 is not None and entry.sha256 != digest:
        raise IntegrityError(
            f"{path} is named like {entry.name}'s weights but its sha256 is {digest}, not {entry.sha256}; "
            "the download is corrupt or is a different file. Download it again."
        )
    _refuse_overwrite(model_folder(entry.name, settings), force)
    return _install_from_weights_file(entry, path, settings)


def _install_from_weights_file(entry: CatalogEntry, weights_file: Path, settings: Settings) -> Bundle:
    from sahay.models.providers.xrv_weights import load_xrv_state_dict

    state = entry.convert(load_xrv_state_dict(weights_file))
    manifest = entry.manifest(source_sha256=sha256_file(weights_file))  # verified only if it matches
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.models_dir, prefix=".install-"))
    try:
        bundle = save_bundle(staging, manifest, state)
        bundle.load_model()
        _export_onnx_on_install(bundle, settings)
        destination = model_folder(entry.name, settings)
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(destination)


def _export_onnx_on_install(bundle: Bundle, settings: Settings) -> None:
    """Export the staged bundle to ONNX when the onnx extra is installed, so that its analyses run
    torch-free from the first one. A failed export leaves it on torch, with a warning."""
    from sahay.models.runtimes import onnx_export_installed

    if not settings.onnx_on_install or bundle.onnx_path is not None or not onnx_export_installed():
        return
    from sahay.models.onnx_export import export_onnx

    try:
        export_onnx(bundle)
    except Exception as exc:  # an optimisation only: no failure of it may fail the install
        log.warning("model %s runs on torch: its ONNX export failed: %s", bundle.name, exc)


def verify_weights(name: str, sha256: str, *, source: str | None, settings: Settings) -> Bundle:
    """Record that the user confirmed an installed model's weights against a published checksum."""
    from datetime import UTC, datetime

    from sahay.models.bundle import with_manifest

    given = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", given):
        raise BadInput(f"{sha256!r} is not a sha256 (64 hexadecimal digits)")
    bundle = find_installed(name, settings)
    if bundle is None:
        raise ModelUnavailable(f"no installed model named {name!r}; `sahay models list` shows them")
    bundle.verify()
    weights = bundle.manifest.weights
    recorded = weights.source_sha256 or weights.sha256
    if given != recorded:
        raise IntegrityError(
            f"model {name}: its weights were made from a file with sha256 {recorded}, not {given}; "
            "they are not the published file. Remove the model and install the published weights."
        )
    today = datetime.now(UTC).date().isoformat()
    confirmed = weights.model_copy(
        update={
            "verified": True,
            "verified_by": f"confirmed by the user on {today}" + (f" against {source}" if source else ""),
        }
    )
    return with_manifest(bundle, bundle.manifest.model_copy(update={"weights": confirmed}))


def _refuse_overwrite(destination: Path, force: bool) -> None:
    if destination.exists() and not force:
        raise BadInput(f"a model is already installed at {destination}; remove it first or pass --force")


def replace_folder(staging: Path, destination: Path) -> None:
    """Swap the staged bundle into place; the old one is removed only after the new one is there."""
    check_bundle_destination(destination)
    old = None
    if destination.exists():
        old = destination.with_name(f".old-{destination.name}")
        shutil.rmtree(old, ignore_errors=True)
        destination.rename(old)
    staging.rename(destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove(name: str, settings: Settings) -> Path:
    folder = model_folder(name, settings)
    if not (folder / MANIFEST_NAME).is_file():
        raise ModelUnavailable(f"no installed model named {name!r}")
    shutil.rmtree(folder)
    return folder


def resolve(
    requested: str | None,
    info: ImageInfo | None,
    settings: Settings,
    progress: ProgressCallback | None = None,
) -> tuple[Bundle, list[str]]:
    """Pick the bundle for an image: by path, by name, or by the image's modality and body part.

    Returns the bundle and notes for the user about the choice. An image with no modality (a PNG
    or JPEG) is taken to be a chest radiograph: the default chest model if installed, else another
    installed chest radiograph model, else the default is pulled when ``auto_pull`` is on.
    Demonstration models are never picked by themselves.
    """
    if requested:
        bundle = locate(requested, settings)
        return bundle or _installed_or_pulled(requested, settings, progress), []
    candidates = [b for b in installed(settings) if not b.manifest.demonstration]
    matches = [b for b in candidates if _suits(b, info)]
    if matches:
        return matches[0], []
    if info is not None and not _may_be_chest_radiograph(info):
        kind = " ".join(v for v in (info.modality, info.body_part) if v)
        raise ModelUnavailable(
            f"no installed model is made for {kind} images.",
            hints={
                "cli": "Name one with --model (`sahay models list` shows what is installed).",
                "api": "Name one in the model field (GET /api/v1/models lists them).",
            },
        )
    notes: list[str] = []
    chest_models = [b for b in candidates if _made_for_chest_radiographs(b)]
    default = next((b for b in chest_models if b.name == settings.default_chest_model), None)
    chosen = default or (chest_models[0] if chest_models else None)
    if info is None or info.modality is None:
        name = chosen.name if chosen else settings.default_chest_model
        notes.append(
            f"The image carries no modality; it was taken to be a chest radiograph, so the model {name} "
            "was chosen. Choose another model if it is not one."
        )
    if chosen is not None:
        return chosen, notes
    try:
        return _installed_or_pulled(settings.default_chest_model, settings, progress), notes
    except ModelUnavailable as exc:
        # Plain words for every door; why the default could not be had goes to the doors' hints.
        raise ModelUnavailable(
            "no installed model fits this image, and the default chest model "
            f"{settings.default_chest_model} is not installed here.",
            hints={door: f"({exc.for_door(door)})" for door in ("cli", "api")},
        ) from exc


def _made_for_chest_radiographs(bundle: Bundle) -> bool:
    manifest = bundle.manifest
    modality_ok = bool(set(manifest.modalities) & CHEST_RADIOGRAPH_MODALITIES)
    body_part_ok = not manifest.body_part or manifest.body_part.upper() in CHEST_BODY_PARTS
    return modality_ok and body_part_ok


def _may_be_chest_radiograph(info: ImageInfo) -> bool:
    modality_ok = not info.modality or info.modality.upper() in CHEST_RADIOGRAPH_MODALITIES
    body_part_ok = not info.body_part or info.body_part.upper() in CHEST_BODY_PARTS
    return modality_ok and body_part_ok


def _suits(bundle: Bundle, info: ImageInfo | None) -> bool:
    manifest = bundle.manifest
    if info is None or not info.modality or not manifest.modalities:
        return False
    if info.modality.upper() not in manifest.modalities:
        return False
    return not (
        manifest.body_part and info.body_part and info.body_part.upper() != manifest.body_part.upper()
    )


def _installed_or_pulled(name: str, settings: Settings, progress: ProgressCallback | None) -> Bundle:
    bundle = find_installed(name, settings)
    if bundle is not None:
        return bundle
    from sahay.models.catalog import catalog

    entries = catalog()
    if name not in entries:
        raise ModelUnavailable(
            f"no installed model named {name!r}.",
            hints={
                "cli": "`sahay models list` shows installed models; "
                "`sahay models list --available` shows those that can be pulled.",
                "api": "GET /api/v1/models lists the installed models.",
            },
        )
    if not settings.auto_pull:
        raise ModelUnavailable(
            f"model {name} is not installed, and downloading models is turned off (SAHAY_AUTO_PULL).",
            hints={
                "cli": f"Run `sahay models pull {name}`, or {import_hint(entries[name])}",
                "api": "An administrator can install it: see docs/models.md.",
            },
        )
    return pull(name, settings, progress)
