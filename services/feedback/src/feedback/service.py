"""Feedback use cases: one keyword-only function per action."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from feedback import postgres
from feedback.domain import Feedback, FeedbackInput
from prodops import outbox
from prodops.db import Connection
from prodops.events import Customer, FeedbackReceived, FeedbackSource, make_event, new_id, utcnow
from prodops.telemetry import current_traceparent

SERVICE = "feedback"


def state_of(row: Any) -> Feedback:
    """The whole state of a stored feedback item, as its events carry it."""
    return Feedback(
        id=row["id"],
        source=FeedbackSource(
            provider=row["provider"],
            source_id=row["source_id"],
            external_id=row["external_id"],
            url=row["url"],
        ),
        title=row["title"],
        body=row["body"],
        customer=Customer.model_validate(row["customer"]) if row["customer"] else None,
        account_external_id=row["account_external_id"],
        tags=list(row["tags"]),
        priority=row["priority"],
        sentiment=row["sentiment"],
        status=row["status"],
        item_keys=list(row["item_keys"]),
        merged_into=row["merged_into"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


async def create_feedback(
    *,
    conn: Connection,
    workspace: str,
    data: FeedbackInput,
    created_at: datetime | None = None,
) -> tuple[Feedback, bool]:
    """Store a feedback item, emit `feedback.received`; (item, False) if its external id exists."""
    row = await conn.fetchrow(
        postgres.INSERT_FEEDBACK,
        new_id(),
        workspace,
        "api",
        "api",
        None,
        data.external_id,
        data.url,
        data.title,
        data.body,
        data.customer.model_dump(exclude_none=True) if data.customer else None,
        data.account_external_id,
        data.tags,
        data.priority,
        created_at or utcnow(),
    )
    if row is None:
        existing = await conn.fetchrow(postgres.SELECT_BY_EXTERNAL_ID, "api", data.external_id)
        return state_of(existing), False
    state = state_of(row)
    received = FeedbackReceived.model_validate(state.model_dump())
    event = make_event(
        received, service=SERVICE, workspace=workspace, traceparent=current_traceparent()
    )
    await outbox.add(conn, event)
    return state, True


async def get_feedback(*, conn: Connection, feedback_id: UUID) -> Feedback | None:
    """One feedback item of the transaction's workspace."""
    row = await conn.fetchrow(postgres.SELECT_FEEDBACK, feedback_id)
    return state_of(row) if row else None


async def list_feedback(
    *, conn: Connection, limit: int, after: tuple[datetime, UUID] | None
) -> list[Feedback]:
    """Feedback items newest first, after a cursor position."""
    rows = await conn.fetch(postgres.LIST_FEEDBACK, *(after or (None, None)), limit)
    return [state_of(r) for r in rows]
