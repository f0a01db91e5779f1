"""Objectives over HTTP: decode, delegate to the service functions, encode."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from prodops.http.auth import RoadmapRead, RoadmapWrite
from prodops.http.pagination import Cursor, Limit, Page, page_of, time_id_after, time_id_key
from prodops.http.problems import PROBLEM_RESPONSES, require_json
from prodops.runtime.db import request_transaction
from roadmap import service
from roadmap.domain import Objective, ObjectiveInput, ObjectivePatch, ObjectiveStatus

router = APIRouter(prefix="/v1/objectives", tags=["objectives"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Objective,
    dependencies=[Depends(require_json)],
)
async def create_objective(
    request: Request, response: Response, body: ObjectiveInput, principal: RoadmapWrite
) -> Objective:
    """Store an objective and emit `objective.upserted`."""
    async with request_transaction(request, principal.workspace) as conn:
        objective = await service.create_objective(
            conn=conn, workspace=principal.workspace, data=body
        )
    response.headers["Location"] = f"/v1/objectives/{objective.id}"
    return objective


@router.get("", response_model=Page[Objective])
async def list_objectives(
    request: Request,
    principal: RoadmapRead,
    status: ObjectiveStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Objective]:
    """Objectives, newest first."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await service.list_objectives(
            conn=conn, status=status, after=time_id_after(cursor), limit=limit + 1
        )
    return page_of(rows, limit, lambda o: time_id_key(o.created_at, o.id))


@router.get("/{objective_id}", response_model=Objective)
async def get_objective(request: Request, objective_id: UUID, principal: RoadmapRead) -> Objective:
    """One objective."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.get_objective(conn=conn, objective_id=objective_id)


@router.patch("/{objective_id}", response_model=Objective, dependencies=[Depends(require_json)])
async def patch_objective(
    request: Request, objective_id: UUID, body: ObjectivePatch, principal: RoadmapWrite
) -> Objective:
    """Change only the fields sent; emits `objective.upserted` when something changed."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_objective(
            conn=conn, workspace=principal.workspace, objective_id=objective_id, patch=body
        )


@router.delete("/{objective_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_objective(request: Request, objective_id: UUID, principal: RoadmapWrite) -> None:
    """Delete an objective and emit `objective.deleted`.

    Items that named it stop naming it (an `item.upserted` each), and its child objectives lose
    their parent (an `objective.upserted` each).
    """
    async with request_transaction(request, principal.workspace) as conn:
        await service.delete_objective(
            conn=conn, workspace=principal.workspace, objective_id=objective_id
        )
