"""Events into facts: the newest state of each aggregate, and what each change touches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from insights import facts_sql as sql
from prodops.contract import (
    AccountUpserted,
    Deleted,
    Event,
    EventData,
    FeedbackDeleted,
    FeedbackReceived,
    FeedbackState,
    FeedbackUpdated,
    ItemDeleted,
    ItemUpserted,
    LaunchDeleted,
    LaunchUpserted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
)
from prodops.runtime.db import Connection

COMMITTED = frozenset({"planned", "in_progress"})


@dataclass
class Touch:
    """What the events of a batch changed, in one workspace: the work left for its end."""

    groups: set[UUID] = field(default_factory=set)
    items: set[UUID] = field(default_factory=set)
    item_keys: set[str] = field(default_factory=set)
    launches: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    all_scopes: bool = False


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


async def apply_fact(conn: Connection, event: Event, touch: Touch) -> None:
    """Apply one event if it is newer than what is held; note in `touch` what it changed."""
    data = event.parsed()
    if not await _is_newer(conn, event, data):
        return
    await _APPLY[type(data)](conn, event.workspace, data, touch)


async def _is_newer(conn: Connection, event: Event, data: EventData) -> bool:
    version: int = data.version  # type: ignore[attr-defined]
    status: str = await conn.execute(
        sql.UPSERT_PROJECTION,
        event.workspace,
        AGGREGATES[event.type],
        data.aggregate_id(),
        version,
        isinstance(data, Deleted | FeedbackDeleted),
        event.data,
        event.id,
    )
    return status.endswith(" 1")


def account_key(data: FeedbackState) -> str:
    """Who a feedback item counts for: its account, else its customer, else itself."""
    if data.account_external_id:
        return f"account:{data.account_external_id}"
    customer = data.customer
    if customer is not None and (customer.email or customer.external_id):
        return f"customer:{(customer.email or '').lower() or customer.external_id}"
    return f"feedback:{data.id}"


async def _feedback(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    await _forget_feedback(conn, ws, data.id, touch)
    group = data.merged_into or data.id
    await conn.execute(
        sql.UPSERT_FEEDBACK,
        ws,
        data.id,
        group,
        account_key(data),
        data.account_external_id,
        data.priority,
        data.sentiment,
        data.status,
        data.created_at,
        data.item_keys,
        data.tags,
    )
    # Support volume counts the feedback that stands on its own (not archived or merged away).
    counted = data.status == "open" and data.merged_into is None
    negative = data.sentiment is not None and data.sentiment < 0
    await conn.execute(
        sql.INSERT_FEEDBACK_ITEMS, ws, data.id, data.item_keys, data.created_at, negative, counted
    )
    touch.groups.add(group)
    touch.item_keys.update(data.item_keys)


async def _forget_feedback(conn: Connection, ws: str, feedback_id: UUID, touch: Touch) -> None:
    before = await conn.fetchrow(sql.FEEDBACK_BEFORE, ws, feedback_id)
    if before is not None:
        touch.groups.add(before["group_id"])
        touch.item_keys.update(before["item_keys"])
    await conn.execute(sql.DELETE_FEEDBACK_ITEMS, ws, feedback_id)


async def _feedback_deleted(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    await _forget_feedback(conn, ws, data.id, touch)
    await conn.execute(sql.DELETE_FEEDBACK, ws, data.id)


async def _account(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    await conn.execute(sql.UPSERT_ACCOUNT, ws, data.external_id, data.arr)
    rows = await conn.fetch(sql.GROUPS_OF_ACCOUNT, ws, data.external_id)
    touch.groups.update(r["group_id"] for r in rows)


async def _objective(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    if isinstance(data, ObjectiveUpserted):
        active = data.status == "active"
        await conn.execute(sql.UPSERT_OBJECTIVE, ws, data.id, data.name, data.weight, active)
    else:
        await conn.execute(sql.DELETE_OBJECTIVE, ws, data.id)
    touch.items.update(r["id"] for r in await conn.fetch(sql.ITEMS_OF_OBJECTIVE, ws, data.id))
    touch.all_scopes = True


async def _item(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    before = await conn.fetchrow(sql.ITEM_BEFORE, ws, data.id)
    if isinstance(data, ItemUpserted):
        for stale in await conn.fetch(sql.FREE_ITEM_KEY, ws, data.key, data.id):
            touch.items.add(stale["id"])
        await conn.execute(
            sql.UPSERT_ITEM,
            ws,
            data.id,
            data.key,
            data.title,
            data.status,
            data.effort,
            data.area,
            data.objective_ids,
            data.launch_key,
            data.shipped_at,
        )
        touch.launches.update(k for k in (data.launch_key,) if k)
        touch.scopes.update(s for s in ("", data.area) if s is not None)
    else:
        await conn.execute(sql.DELETE_ITEM, ws, data.id)
    touch.items.add(data.id)
    touch.item_keys.add(data.key)
    if before is not None:
        touch.launches.update(k for k in (before["launch_key"],) if k)
        touch.scopes.update(s for s in ("", before["area"]) if s is not None)
    # Feedback on the item is covered or not, and in its area or not, by the item's state:
    # only a change of that state touches the item's feedback.
    if before is None or _coverage(before) != _coverage(data):
        rows = await conn.fetch(sql.GROUPS_OF_ITEM, ws, data.key)
        touch.groups.update(r["group_id"] for r in rows)


def _coverage(item: Any) -> tuple[Any, ...]:
    if isinstance(item, ItemDeleted):
        return ()
    if isinstance(item, ItemUpserted):
        return (item.status, item.area, item.shipped_at)
    return (item["status"], item["area"], item["shipped_at"])


async def _launch(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    if isinstance(data, LaunchUpserted):
        before = await conn.fetchval(sql.LAUNCH_BEFORE, ws, data.id)
        await conn.execute(sql.FREE_LAUNCH_KEY, ws, data.key, data.id)
        checklist = [entry.model_dump(mode="json") for entry in data.checklist]
        await conn.execute(
            sql.UPSERT_LAUNCH,
            ws,
            data.id,
            data.key,
            data.name,
            data.status,
            data.target_date,
            data.item_keys,
            checklist,
        )
        touch.launches.update(k for k in (before, data.key) if k)
    else:
        touch.launches.update(r["key"] for r in await conn.fetch(sql.DELETE_LAUNCH, ws, data.id))
        touch.launches.add(data.key)


async def _issue(conn: Connection, ws: str, data: Any, touch: Touch) -> None:
    before = await conn.fetchrow(sql.ISSUE_BEFORE, ws, data.id)
    if before is not None:
        touch.launches.update(before["launch_keys"])
        touch.item_keys.update(before["item_keys"])
    if isinstance(data, TrackerIssueUpserted):
        await conn.execute(sql.UPSERT_ISSUES, [issue_row(ws, data)])
        touch.launches.update(data.launch_keys)
        touch.item_keys.update(data.item_keys)
    else:
        await conn.execute(sql.DELETE_ISSUE, ws, data.id)


def issue_row(ws: str, data: TrackerIssueUpserted) -> dict[str, Any]:
    """An issue's state as a row of `UPSERT_ISSUES`."""
    return {
        "workspace": ws,
        "id": data.id,
        "key": data.key,
        "state": data.state,
        "kind": data.kind,
        "priority": data.priority,
        "labels": data.labels,
        "item_keys": data.item_keys,
        "launch_keys": data.launch_keys,
        "closed_at": data.closed_at,
    }


_Apply = Callable[[Connection, str, Any, Touch], Awaitable[None]]
_APPLY: dict[type[EventData], _Apply] = {
    FeedbackReceived: _feedback,
    FeedbackUpdated: _feedback,
    FeedbackDeleted: _feedback_deleted,
    AccountUpserted: _account,
    ObjectiveUpserted: _objective,
    ObjectiveDeleted: _objective,
    ItemUpserted: _item,
    ItemDeleted: _item,
    LaunchUpserted: _launch,
    LaunchDeleted: _launch,
    TrackerIssueUpserted: _issue,
    TrackerIssueDeleted: _issue,
}
