"""``sahay models export-onnx``: an installed model's ONNX export, for the torch-free ONNX Runtime path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sahay.progress import Progress, report

if TYPE_CHECKING:
    from sahay.config import Settings
    from sahay.models.bundle import Bundle


def export_onnx(
    name: str, *, int8: bool = False, settings: Settings | None = None, progress: Progress | None = None
) -> Bundle:
    """Export the installed model ``name`` (or a bundle folder) to ONNX and record it in its bundle."""
    from sahay.config import get_settings
    from sahay.models.onnx_export import export_onnx as export
    from sahay.models.registry import find_bundle

    bundle = find_bundle(name, settings or get_settings())
    report(
        progress, "exporting to ONNX and checking it against torch" + (", then quantizing" if int8 else "")
    )
    return export(bundle, int8=int8)
