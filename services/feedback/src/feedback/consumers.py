"""Feedback's broker subscribers: a projection of roadmap item keys, to resolve tag links.

A tag `roadmap-<key>` naming an item feedback has not heard of yet stays a pending link; the
`item.upserted` that brings the key resolves it in the same transaction as the projection.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedback import postgres, service
from prodops.contract import Event, ItemDeleted, ItemUpserted
from prodops.messaging.consumer import EventConsumer
from prodops.messaging.handlers import Handler
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings

CONSUMER = "feedback-items"
LIVE, DELETED = False, True  # the item_key.deleted flag


async def apply_item_upserted(conn: Connection, event: Event) -> None:
    """Project a newer item key and link the feedback that was waiting for it."""
    data = event.parsed()
    assert isinstance(data, ItemUpserted)
    applied = await conn.fetchval(
        postgres.UPSERT_ITEM_KEY, event.workspace, data.id, data.key, data.version, LIVE
    )
    if applied is not None:
        await service.resolve_pending_links(conn=conn, workspace=event.workspace, item_key=data.key)


async def apply_item_deleted(conn: Connection, event: Event) -> None:
    """Forget a deleted item's key for new tags (links already made stay)."""
    data = event.parsed()
    assert isinstance(data, ItemDeleted)
    await conn.execute(
        postgres.UPSERT_ITEM_KEY, event.workspace, data.id, data.key, data.version, DELETED
    )


def handlers() -> dict[str, Handler]:
    """The handler of each roadmap item event type."""
    return {ItemUpserted.TYPE: apply_item_upserted, ItemDeleted.TYPE: apply_item_deleted}


def consumers(pool: Pool, settings: Settings) -> Sequence[EventConsumer]:
    """One durable consumer of roadmap item events, feeding the item-key projection."""
    return [
        EventConsumer(
            name=CONSUMER,
            pool=pool,
            settings=settings,
            handlers=handlers(),
            filter_subject="item.>",
        )
    ]
