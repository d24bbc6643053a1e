"""The models installed on this server, and what the server offers (from the registries)."""

from __future__ import annotations

from fastapi import APIRouter

from sahay.api.deps import CurrentUser, ServiceDep
from sahay.services.capabilities import Capabilities, capabilities
from sahay.services.models import CardOut, ModelOut, card, check_installed, installed_models

router = APIRouter(tags=["models"])


@router.get("/models", response_model=list[ModelOut])
def installed(user: CurrentUser, service: ServiceDep) -> list[ModelOut]:
    return installed_models(service.settings)


@router.get("/models/{name}/card", response_model=CardOut)
def model_card(name: str, user: CurrentUser, service: ServiceDep) -> CardOut:
    """The model's card: intended use and not, data, published evidence, failure modes, calibration."""
    check_installed(name, service.settings)  # a name only, never a path on the server
    return card(name, service.settings)


@router.get("/capabilities", response_model=Capabilities)
def offered(user: CurrentUser, service: ServiceDep) -> Capabilities:
    """Explanation methods, report formats, architectures, chat backends, dataset layouts, models."""
    return capabilities(service.settings)
