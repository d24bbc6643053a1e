"""The models installed on this server."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from sahay.api.deps import CurrentUser, ServiceDep

router = APIRouter(prefix="/models", tags=["models"])


class ModelOut(BaseModel):
    name: str
    version: str
    task: str
    modalities: list[str]
    body_part: str | None
    labels: list[str]
    demonstration: bool
    intended_use: str


@router.get("", response_model=list[ModelOut])
def installed_models(user: CurrentUser, service: ServiceDep) -> list[ModelOut]:
    from sahay.models.registry import installed

    return [
        ModelOut(
            name=m.name,
            version=m.version,
            task=m.task,
            modalities=list(m.modalities),
            body_part=m.body_part,
            labels=list(m.labels),
            demonstration=m.demonstration,
            intended_use=m.intended_use,
        )
        for m in (bundle.manifest for bundle in installed(service.settings))
    ]
