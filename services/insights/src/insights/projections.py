"""Projections of other services' events: the newest version of each aggregate wins."""

from __future__ import annotations

from insights import postgres
from prodops.consumer import Handler
from prodops.db import Connection
from prodops.events import (
    AccountUpserted,
    Deleted,
    Event,
    FeedbackDeleted,
    FeedbackReceived,
    FeedbackUpdated,
    ItemDeleted,
    ItemUpserted,
    LaunchDeleted,
    LaunchUpserted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    StateData,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
)

# Event type -> the aggregate it describes.
AGGREGATES: dict[str, str] = {
    FeedbackReceived.TYPE: "feedback",
    FeedbackUpdated.TYPE: "feedback",
    FeedbackDeleted.TYPE: "feedback",
    AccountUpserted.TYPE: "account",
    ObjectiveUpserted.TYPE: "objective",
    ObjectiveDeleted.TYPE: "objective",
    ItemUpserted.TYPE: "item",
    ItemDeleted.TYPE: "item",
    LaunchUpserted.TYPE: "launch",
    LaunchDeleted.TYPE: "launch",
    TrackerIssueUpserted.TYPE: "tracker_issue",
    TrackerIssueDeleted.TYPE: "tracker_issue",
}


async def apply_event(conn: Connection, event: Event) -> None:
    """Store the event's state if it is newer than the projection's."""
    data = event.parsed()
    deleted = isinstance(data, Deleted | FeedbackDeleted)
    if not deleted and not isinstance(data, StateData):
        raise TypeError(f"{event.type} carries no state")
    version: int = data.version  # type: ignore[attr-defined]
    await conn.execute(
        postgres.UPSERT_PROJECTION,
        event.workspace,
        AGGREGATES[event.type],
        data.aggregate_id(),
        version,
        deleted,
        event.data,
        event.id,
    )


def handlers() -> dict[str, Handler]:
    """The projection handler for every state-carrying event type."""
    return dict.fromkeys(AGGREGATES, apply_event)
