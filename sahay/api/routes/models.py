"""The models installed on this server, and what the server offers (from the registries)."""

from __future__ import annotations

from fastapi import APIRouter

from sahay.api.deps import CurrentUser, ServiceDep
from sahay.services.capabilities import Capabilities, capabilities
from sahay.services.models import ModelOut, installed_models

router = APIRouter(tags=["models"])


@router.get("/models", response_model=list[ModelOut])
def installed(user: CurrentUser, service: ServiceDep) -> list[ModelOut]:
    return installed_models(service.settings)


@router.get("/capabilities", response_model=Capabilities)
def offered(user: CurrentUser, service: ServiceDep) -> Capabilities:
    """Explanation methods, report formats, architectures, chat backends, dataset layouts, models."""
    return capabilities(service.settings)
