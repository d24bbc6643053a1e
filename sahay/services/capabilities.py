"""What this installation offers, read from the registries: the one source for CLI help, API
validation, the ``GET /api/v1/capabilities`` endpoint and the browser UI.

Light on purpose (no pydantic, torch or database): the command line builds its help from it.

Example:
    >>> caps = capabilities(include_models=False)
    >>> "gradcam" in [m.name for m in caps.explain_methods] and "pdf" in [f.name for f in caps.report_formats]
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahay.chat import AUDIENCES
from sahay.chat.backends import BACKENDS
from sahay.datasets import LAYOUTS
from sahay.explain.methods import METHODS
from sahay.explain.options import DEFAULT_METHOD
from sahay.models.providers import providers
from sahay.reports.formats import FORMATS

if TYPE_CHECKING:
    from sahay.config import Settings

__all__ = ["AUDIENCES", "Capabilities", "capabilities", "described"]


@dataclass(frozen=True)
class Named:
    name: str
    description: str


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    family: str
    class_specific: bool
    cost: str


@dataclass(frozen=True)
class FormatInfo:
    name: str
    title: str
    media_type: str
    suffix: str
    needs_dicom: bool


@dataclass(frozen=True)
class Capabilities:
    explain_methods: list[MethodInfo]
    report_formats: list[FormatInfo]
    architectures: list[Named]
    llm_backends: list[Named]
    dataset_layouts: list[Named]
    audiences: list[str]
    models: list[Any] = field(default_factory=list)
    """``services.models.ModelOut`` of each installed model."""
    default_explain_method: str = DEFAULT_METHOD
    """The method an analysis uses unless told otherwise (the UI selects it first)."""


def explain_methods() -> list[MethodInfo]:
    return [MethodInfo(m.name, m.title, m.family, m.class_specific, m.cost) for m in METHODS.values()]


def report_formats() -> list[FormatInfo]:
    return [FormatInfo(f.name, f.title, f.media_type, f.suffix, f.needs_dicom) for f in FORMATS.values()]


def architectures() -> list[Named]:
    return [Named(p.architecture, p.description) for p in providers()]


def llm_backends() -> list[Named]:
    return [Named(b.name, b.description) for b in BACKENDS.values()]


def dataset_layouts() -> list[Named]:
    return [Named(layout.name, layout.description) for layout in LAYOUTS.values()]


def described(entries: list[Named]) -> str:
    """``name: description; ...`` for help text."""
    return "; ".join(f"{entry.name}: {entry.description}" for entry in entries)


def capabilities(settings: Settings | None = None, *, include_models: bool = True) -> Capabilities:
    models: list[Any] = []
    if include_models:
        from sahay.services.models import installed_models

        models = list(installed_models(settings))
    return Capabilities(
        explain_methods=explain_methods(),
        report_formats=report_formats(),
        architectures=architectures(),
        llm_backends=llm_backends(),
        dataset_layouts=dataset_layouts(),
        audiences=list(AUDIENCES),
        models=models,
    )
