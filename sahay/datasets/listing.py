"""Unlabelled image lists: every file under a folder, or the image column of a CSV.

For jobs that need no labels (``sahay models check-site``). The reader decides by content what
is an image, so every non-hidden file is listed.
"""

from __future__ import annotations

from pathlib import Path

from sahay.datasets.csv_table import is_csv_table, list_csv_images
from sahay.errors import BadInput


def list_images(source: Path, *, image_column: str | None = None) -> list[tuple[Path, dict[str, str]]]:
    """Image paths with their CSV row (empty for a folder), in a stable order."""
    if is_csv_table(source):
        return list_csv_images(source, image_column)
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file() and not any(x.startswith(".") for x in p.relative_to(source).parts)
        )
        if not files:
            raise BadInput(f"{source} holds no files; give a folder of images or a CSV of image paths.")
        return [(path, {}) for path in files]
    if not source.exists():
        raise BadInput(f"{source} does not exist; give a folder of images or a CSV of image paths.")
    raise BadInput(
        f"{source} is neither a folder nor a .csv file; give a folder of images or a CSV of image paths."
    )
