"""Feedback HTTP API: decode, delegate to the service functions, encode."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from feedback import service
from feedback.domain import Feedback, FeedbackInput
from prodops.auth import FeedbackRead, FeedbackWrite
from prodops.db import workspace_transaction
from prodops.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from prodops.problems import PROBLEM_RESPONSES, ProblemError, require_json

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Feedback,
    dependencies=[Depends(require_json)],
    responses={200: {"model": Feedback, "description": "An item with this external id exists"}},
)
async def create_feedback(
    request: Request, response: Response, body: FeedbackInput, principal: FeedbackWrite
) -> Feedback:
    """Store a feedback item and emit `feedback.received`.

    With an `external_id` the call is idempotent: an item that already has it is answered 200.
    """
    settings = request.app.state.settings
    async with workspace_transaction(
        request.app.state.pool, principal.workspace, role=settings.app_role
    ) as conn:
        item, created = await service.create_feedback(
            conn=conn, workspace=principal.workspace, data=body
        )
    response.headers["Location"] = f"/v1/feedback/{item.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return item


@router.get("/{feedback_id}", response_model=Feedback)
async def get_feedback(request: Request, feedback_id: UUID, principal: FeedbackRead) -> Feedback:
    """One feedback item."""
    settings = request.app.state.settings
    async with workspace_transaction(
        request.app.state.pool, principal.workspace, role=settings.app_role
    ) as conn:
        item = await service.get_feedback(conn=conn, feedback_id=feedback_id)
    if item is None:
        raise ProblemError(404, "Not Found", "no such feedback item in this workspace")
    return item


@router.get("", response_model=Page[Feedback])
async def list_feedback(
    request: Request, principal: FeedbackRead, limit: Limit = 50, cursor: Cursor = None
) -> Page[Feedback]:
    """Feedback items, newest first."""
    after = None
    if cursor:
        created, ident = decode_cursor(cursor)
        after = (datetime.fromisoformat(created), UUID(ident))
    settings = request.app.state.settings
    async with workspace_transaction(
        request.app.state.pool, principal.workspace, role=settings.app_role
    ) as conn:
        items = await service.list_feedback(conn=conn, limit=limit + 1, after=after)
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)])
    return Page[Feedback](items=items, next_cursor=next_cursor)


WorkspaceDep = Annotated[str, Depends(lambda: None)]
