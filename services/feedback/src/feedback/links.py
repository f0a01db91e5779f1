"""Feedback links to roadmap items, and merges of duplicates: the HTTP routes.

Included in `feedback.api.router`, so these live under `/v1/feedback` too.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from feedback import service
from feedback.domain import ITEM_KEY_PATTERN, FeedbackView, Link
from prodops.http.auth import FeedbackWrite
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.http.routes import changes, deletes
from prodops.runtime.db import request_transaction

router = APIRouter(responses=PROBLEM_RESPONSES)

ItemKey = Annotated[
    str,
    Path(pattern=ITEM_KEY_PATTERN, description="A roadmap item key such as `CK-12` (any case)"),
]


class MergeRequest(BaseModel):
    """Which item a duplicate is folded into."""

    model_config = ConfigDict(extra="forbid")

    into: UUID = Field(description="The id of the item that survives")


@router.put(
    "/{feedback_id}/links/{item_key}",
    response_model=Link,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": Link, "description": "The item was linked already"}},
)
async def link_feedback(
    request: Request,
    response: Response,
    feedback_id: UUID,
    item_key: ItemKey,
    principal: FeedbackWrite,
) -> Link:
    """Link a feedback item to a roadmap item (by key, known yet or not); emits `.linked`."""
    async with request_transaction(request, principal.workspace) as conn:
        link, created = await service.link_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id, item_key=item_key
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return link


@deletes(router, "/{feedback_id}/links/{item_key}")
async def unlink_feedback(
    request: Request, feedback_id: UUID, item_key: ItemKey, principal: FeedbackWrite
) -> None:
    """Remove a link, made by the API or by a tag; emits `feedback.unlinked`."""
    async with request_transaction(request, principal.workspace) as conn:
        await service.unlink_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id, item_key=item_key
        )


@changes(router, "POST", "/{feedback_id}/merge", FeedbackView)
async def merge_feedback(
    request: Request, feedback_id: UUID, body: MergeRequest, principal: FeedbackWrite
) -> FeedbackView:
    """Fold this duplicate into another item; answers the survivor with every source kept.

    Emits `feedback.merged`, then `feedback.updated` for the duplicate and for the survivor.
    """
    async with request_transaction(request, principal.workspace) as conn:
        return await service.merge_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id, into=body.into
        )


@router.post("/{feedback_id}/unmerge", response_model=FeedbackView)
async def unmerge_feedback(
    request: Request, feedback_id: UUID, principal: FeedbackWrite
) -> FeedbackView:
    """Undo a merge: answers the former duplicate; emits `feedback.updated` for both items."""
    async with request_transaction(request, principal.workspace) as conn:
        return await service.unmerge_feedback(
            conn=conn, workspace=principal.workspace, feedback_id=feedback_id
        )
