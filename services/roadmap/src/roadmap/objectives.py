"""Objectives over HTTP: decode, delegate to the service functions, encode."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from prodops.http.auth import RoadmapRead, RoadmapWrite
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.http.routes import changes, creates, deletes, newest_first
from prodops.runtime.db import request_transaction
from roadmap import service
from roadmap.domain import Objective, ObjectiveInput, ObjectivePatch, ObjectiveStatus

router = APIRouter(prefix="/v1/objectives", tags=["objectives"], responses=PROBLEM_RESPONSES)


@creates(router, Objective)
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
    return newest_first(rows, limit)


@router.get("/{objective_id}", response_model=Objective)
async def get_objective(request: Request, objective_id: UUID, principal: RoadmapRead) -> Objective:
    """One objective."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.get_objective(conn=conn, objective_id=objective_id)


@changes(router, "PATCH", "/{objective_id}", Objective)
async def patch_objective(
    request: Request, objective_id: UUID, body: ObjectivePatch, principal: RoadmapWrite
) -> Objective:
    """Change only the fields sent; emits `objective.upserted` when something changed."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_objective(
            conn=conn, workspace=principal.workspace, objective_id=objective_id, patch=body
        )


@deletes(router, "/{objective_id}")
async def delete_objective(request: Request, objective_id: UUID, principal: RoadmapWrite) -> None:
    """Delete an objective and emit `objective.deleted`.

    Items that named it stop naming it (an `item.upserted` each), and its child objectives lose
    their parent (an `objective.upserted` each).
    """
    async with request_transaction(request, principal.workspace) as conn:
        await service.delete_objective(
            conn=conn, workspace=principal.workspace, objective_id=objective_id
        )
