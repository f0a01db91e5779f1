"""Launches and their checklists over HTTP: decode, delegate to the service, encode.

A launch is addressed by its id or by its key (case-insensitive).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from prodops.contract import new_id
from prodops.http.auth import RoadmapRead, RoadmapWrite
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.http.routes import changes, creates, deletes, newest_first
from prodops.runtime.db import request_transaction
from roadmap import launch_service as service
from roadmap.domain import (
    Checklist,
    ChecklistEntryPatch,
    Launch,
    LaunchInput,
    LaunchPatch,
    LaunchStatus,
    checklist_of,
)

router = APIRouter(prefix="/v1/launches", tags=["launches"], responses=PROBLEM_RESPONSES)


@creates(router, Launch)
async def create_launch(
    request: Request, response: Response, body: LaunchInput, principal: RoadmapWrite
) -> Launch:
    """Store a launch and emit `launch.upserted`; 409 when its key is taken.

    Without a `checklist` it starts with the workspace's checklist template.
    """
    async with request_transaction(request, principal.workspace) as conn:
        launch = await service.create_launch(conn=conn, workspace=principal.workspace, data=body)
    response.headers["Location"] = f"/v1/launches/{launch.key}"
    return launch


@router.get("", response_model=Page[Launch])
async def list_launches(
    request: Request,
    principal: RoadmapRead,
    status: LaunchStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Launch]:
    """Launches, newest first."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await service.list_launches(
            conn=conn, status=status, after=time_id_after(cursor), limit=limit + 1
        )
    return newest_first(rows, limit)


@router.get("/{id_or_key}", response_model=Launch)
async def get_launch(request: Request, id_or_key: str, principal: RoadmapRead) -> Launch:
    """One launch, with its checklist and the keys of its items."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.find_launch(conn=conn, id_or_key=id_or_key)


@changes(router, "PATCH", "/{id_or_key}", Launch)
async def patch_launch(
    request: Request, id_or_key: str, body: LaunchPatch, principal: RoadmapWrite
) -> Launch:
    """Change only the fields sent; emits `launch.upserted` when something changed."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_launch(
            conn=conn, workspace=principal.workspace, id_or_key=id_or_key, patch=body
        )


@changes(router, "PUT", "/{id_or_key}/checklist", Launch)
async def replace_checklist(
    request: Request, id_or_key: str, body: Checklist, principal: RoadmapWrite
) -> Launch:
    """Replace the whole checklist; entries sent without an id get one."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.replace_checklist(
            conn=conn,
            workspace=principal.workspace,
            id_or_key=id_or_key,
            entries=checklist_of(body.entries, new_id),
        )


@changes(router, "PATCH", "/{id_or_key}/checklist/{entry_id}", Launch)
async def patch_checklist_entry(
    request: Request,
    id_or_key: str,
    entry_id: UUID,
    body: ChecklistEntryPatch,
    principal: RoadmapWrite,
) -> Launch:
    """Change one checklist entry (tick `done`, mostly); answers the whole launch."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_checklist_entry(
            conn=conn,
            workspace=principal.workspace,
            id_or_key=id_or_key,
            entry_id=entry_id,
            patch=body,
        )


@deletes(router, "/{id_or_key}")
async def delete_launch(request: Request, id_or_key: str, principal: RoadmapWrite) -> None:
    """Delete a launch and emit `launch.deleted`; its items are unlinked (`item.upserted`)."""
    async with request_transaction(request, principal.workspace) as conn:
        await service.delete_launch(conn=conn, workspace=principal.workspace, id_or_key=id_or_key)
