"""The task catalogue, so clients can discover tasks and their parameters."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import TenantDep
from api.schemas import TaskOut
from models.tasks import CATALOGUE

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get("", response_model=list[TaskOut])
def list_tasks(_tenant: TenantDep) -> list[TaskOut]:
    return [
        TaskOut(
            name=spec.name.value,
            description=spec.description,
            accepts=sorted(k.value for k in spec.accepts),
            params_schema=spec.params.model_json_schema(),
        )
        for spec in CATALOGUE.values()
    ]
