"""Feedback HTTP API: decode, delegate to the service functions, encode."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from feedback import service
from feedback.domain import FeedbackFilters, FeedbackInput, FeedbackPatch, FeedbackView
from feedback.links import router as links_router
from prodops.http.auth import FeedbackRead, FeedbackWrite
from prodops.http.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, require_json
from prodops.http.routes import changes, deletes
from prodops.runtime.db import request_transaction

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackView,
    dependencies=[Depends(require_json)],
    responses={200: {"model": FeedbackView, "description": "An item with this external id exists"}},
)
async def create_feedback(
    request: Request, response: Response, body: FeedbackInput, principal: FeedbackWrite
) -> FeedbackView:
    """Store a feedback item and emit `feedback.received`.

    With an `external_id` the call is idempotent: an item that already has it is answered 200.
    """
    async with request_transaction(request, principal.workspace) as conn:
        item, created = await service.create_feedback(
            conn=conn, workspace=principal.workspace, data=body
        )
    response.headers["Location"] = f"/v1/feedback/{item.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return item


@router.get("", response_model=Page[FeedbackView])
async def list_feedback(
    request: Request,
    principal: FeedbackRead,
    filters: Annotated[FeedbackFilters, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[FeedbackView]:
    """Feedback items, newest first; merged duplicates only with `include_merged=true`."""
    after = _position(cursor, filters) if cursor else None
    async with request_transaction(request, principal.workspace) as conn:
        items = await service.list_feedback(
            conn=conn, limit=limit + 1, after=after, filters=filters
        )
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(
            [last.created_at.isoformat(), str(last.id), filters.fingerprint()]
        )
    return Page[FeedbackView](items=items, next_cursor=next_cursor)


def _position(cursor: str, filters: FeedbackFilters) -> tuple[datetime, UUID]:
    """Where a cursor continues; it must come from a list with the same filters."""
    values = decode_cursor(cursor)
    if len(values) != 3 or values[2] != filters.fingerprint():
        raise ProblemError(400, "Bad Request", "cursor is not valid for these filters")
    try:
        return datetime.fromisoformat(str(values[0])), UUID(str(values[1]))
    except ValueError as exc:
        raise ProblemError(400, "Bad Request", "cursor is not valid") from exc


@router.get("/{feedback_id}", response_model=FeedbackView)
async def get_feedback(
    request: Request, feedback_id: UUID, principal: FeedbackRead
) -> FeedbackView:
    """One feedback item, with the ids and sources of the duplicates merged into it."""
    async with request_transaction(request, principal.workspace) as conn:
        item = await service.get_feedback(conn=conn, feedback_id=feedback_id)
    if item is None:
        raise service.FeedbackNotFoundError
    return item


@changes(router, "PATCH", "/{feedback_id}", FeedbackView)
async def patch_feedback(
    request: Request, feedback_id: UUID, body: FeedbackPatch, principal: FeedbackWrite
) -> FeedbackView:
    """Change only the fields sent; emits `feedback.updated` when something changed."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.patch_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id, patch=body
        )


@deletes(router, "/{feedback_id}")
async def delete_feedback(request: Request, feedback_id: UUID, principal: FeedbackWrite) -> None:
    """Delete a feedback item and emit `feedback.deleted`; its external id may come again."""
    async with request_transaction(request, principal.workspace) as conn:
        await service.delete_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id
        )


router.include_router(links_router)
