"""Roadmap items over HTTP: decode, delegate to the service functions, encode.

An item is addressed by its id or by its key (`ITEM-12`, case-insensitive).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from prodops.http.auth import RoadmapRead, RoadmapWrite
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.http.routes import changes, creates, deletes, newest_first
from prodops.runtime.db import request_transaction
from roadmap import service
from roadmap.domain import Item, ItemFilters, ItemInput, ItemPatch, StatusChange

router = APIRouter(prefix="/v1/items", tags=["items"], responses=PROBLEM_RESPONSES)


@creates(router, Item)
async def create_item(
    request: Request, response: Response, body: ItemInput, principal: RoadmapWrite
) -> Item:
    """Store an item under the workspace's next key (`<PREFIX>-<n>`); emits `item.upserted`."""
    async with request_transaction(request, principal.workspace) as conn:
        item = await service.create_item(conn=conn, workspace=principal.workspace, data=body)
    response.headers["Location"] = f"/v1/items/{item.key}"
    return item


@router.get("", response_model=Page[Item])
async def list_items(
    request: Request,
    principal: RoadmapRead,
    filters: Annotated[ItemFilters, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Item]:
    """Items, newest first, narrowed by status, horizon, objective id, launch key and area."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await service.list_items(
            conn=conn, filters=filters, after=time_id_after(cursor), limit=limit + 1
        )
    return newest_first(rows, limit)


@router.get("/{id_or_key}", response_model=Item)
async def get_item(request: Request, id_or_key: str, principal: RoadmapRead) -> Item:
    """One item, by id or key."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.find_item(conn=conn, id_or_key=id_or_key)


@router.get("/{id_or_key}/history", response_model=list[StatusChange])
async def get_item_history(
    request: Request, id_or_key: str, principal: RoadmapRead
) -> list[StatusChange]:
    """Every status the item has had, oldest first, from the one it was created with."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.item_history(conn=conn, id_or_key=id_or_key)


@changes(router, "PATCH", "/{id_or_key}", Item)
async def patch_item(
    request: Request, id_or_key: str, body: ItemPatch, principal: RoadmapWrite
) -> Item:
    """Change only the fields sent; emits `item.upserted` when something changed.

    Becoming `shipped` sets `shipped_at`; leaving `shipped` clears it. Moving to another launch
    is a new version of both launches (`launch.upserted`), since they carry their item keys.
    """
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_item(
            conn=conn, workspace=principal.workspace, id_or_key=id_or_key, patch=body
        )


@deletes(router, "/{id_or_key}")
async def delete_item(request: Request, id_or_key: str, principal: RoadmapWrite) -> None:
    """Delete an item and emit `item.deleted`; its children lose their parent."""
    async with request_transaction(request, principal.workspace) as conn:
        await service.delete_item(conn=conn, workspace=principal.workspace, id_or_key=id_or_key)
