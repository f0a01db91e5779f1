"""Roadmap HTTP API plumbing, and the workspace's roadmap settings (key prefix, template)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from prodops.http.auth import Admin, RoadmapRead
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.http.routes import changes
from prodops.runtime.db import request_transaction
from roadmap import launch_service, service
from roadmap.domain import ChecklistTemplate, ItemKeyPrefix

router = APIRouter(prefix="/v1", tags=["settings"], responses=PROBLEM_RESPONSES)


@router.get("/settings/item-key-prefix", response_model=ItemKeyPrefix)
async def get_item_key_prefix(request: Request, principal: RoadmapRead) -> ItemKeyPrefix:
    """The prefix of new item keys (`<PREFIX>-<n>`); `ITEM` until changed."""
    async with request_transaction(request, principal.workspace) as conn:
        return ItemKeyPrefix(prefix=await service.get_item_key_prefix(conn=conn))


@changes(router, "PUT", "/settings/item-key-prefix", ItemKeyPrefix)
async def put_item_key_prefix(
    request: Request, body: ItemKeyPrefix, principal: Admin
) -> ItemKeyPrefix:
    """Change the prefix of new item keys; existing keys stay, and numbering goes on."""
    async with request_transaction(request, principal.workspace) as conn:
        prefix = await service.set_item_key_prefix(
            conn=conn, workspace=principal.workspace, prefix=body.prefix
        )
    return ItemKeyPrefix(prefix=prefix)


@router.get("/checklist-template", response_model=ChecklistTemplate)
async def get_checklist_template(request: Request, principal: RoadmapRead) -> ChecklistTemplate:
    """The checklist every new launch starts with (unless it is created with its own)."""
    async with request_transaction(request, principal.workspace) as conn:
        return await launch_service.get_checklist_template(conn=conn)


@changes(router, "PUT", "/checklist-template", ChecklistTemplate)
async def put_checklist_template(
    request: Request, body: ChecklistTemplate, principal: Admin
) -> ChecklistTemplate:
    """Replace the template; launches created before keep their checklists."""
    async with request_transaction(request, principal.workspace) as conn:
        return await launch_service.put_checklist_template(
            conn=conn, workspace=principal.workspace, template=body
        )
