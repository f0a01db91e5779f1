"""Feedback use cases: one keyword-only function per action.

Every change locks the item's row, bumps its version once, and writes its events to the outbox
in the caller's transaction: `feedback.linked` / `.unlinked` / `.merged` carry the version after
the change, followed by the `feedback.updated` of that same version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from feedback import postgres
from feedback.domain import (
    MUTABLE_FIELDS,
    Feedback,
    FeedbackFilters,
    FeedbackInput,
    FeedbackPatch,
    FeedbackView,
    Link,
    LinkChange,
    TicketSnapshot,
    canonical_item_key,
    changed_fields,
    input_fields,
    link_events,
    new_ticket_fields,
    roadmap_keys,
    snapshot_fields,
    state_event,
)
from prodops.contract import (
    Customer,
    EventData,
    FeedbackDeleted,
    FeedbackMerged,
    FeedbackReceived,
    FeedbackSource,
    FeedbackUpdated,
    make_event,
    new_id,
    utcnow,
)
from prodops.http.problems import ProblemError
from prodops.messaging import outbox
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent

SERVICE = "feedback"


class FeedbackNotFoundError(ProblemError):
    """No such feedback item (or link) in the caller's workspace."""

    def __init__(self, detail: str = "no such feedback item in this workspace") -> None:
        super().__init__(404, "Not Found", detail)


class FeedbackConflictError(ProblemError):
    """The change contradicts the item's state (a merge into itself, or of a merged item)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, "Conflict", detail)


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


def view_of(row: Any) -> FeedbackView:
    """The item as the API shows it; `merged` (from `merged_duplicates`) lists its duplicates."""
    state = state_of(row)
    merged = row.get("merged") or []
    return FeedbackView(
        **state.model_dump(),
        merged_from=[d["id"] for d in merged],
        provenance=[state.source, *(FeedbackSource.model_validate(d) for d in merged)],
    )


async def _emit(conn: Connection, workspace: str, *data: EventData) -> None:
    traceparent = current_traceparent()
    events = [
        make_event(d, service=SERVICE, workspace=workspace, traceparent=traceparent) for d in data
    ]
    await outbox.add(conn, *events)


async def create_feedback(
    *,
    conn: Connection,
    workspace: str,
    data: FeedbackInput,
    created_at: datetime | None = None,
) -> tuple[FeedbackView, bool]:
    """Store a feedback item, emit `feedback.received`; (item, False) if its external id exists."""
    source = FeedbackSource(provider="api", external_id=data.external_id)
    row = await _insert(conn, workspace, source, input_fields(data), created_at)
    if row is None:
        existing = await conn.fetchrow(postgres.SELECT_BY_EXTERNAL_ID, "api", data.external_id)
        return view_of(existing), False
    return await announce_new(conn, workspace, row), True


async def _insert(
    conn: Connection,
    workspace: str,
    source: FeedbackSource,
    fields: dict[str, Any],
    created_at: datetime | None,
) -> Any:
    """The new row, or None when the workspace has the (source, external id) already."""
    # Items are keyed by the registered source they came from, or by `api`.
    source_key = str(source.source_id) if source.source_id else source.provider
    return await conn.fetchrow(
        postgres.INSERT_FEEDBACK,
        new_id(),
        workspace,
        source_key,
        source.provider,
        source.source_id,
        source.external_id,
        *(fields[name] for name in MUTABLE_FIELDS),
        created_at or utcnow(),
    )


async def upsert_from_source(
    *, conn: Connection, workspace: str, source_id: UUID, provider: str, snapshot: TicketSnapshot
) -> Feedback:
    """Apply a support-desk snapshot to its item keyed (source, external id), creating it."""
    source = FeedbackSource(
        provider=provider, source_id=source_id, external_id=snapshot.external_id
    )
    fields = new_ticket_fields(snapshot)
    # A concurrent delivery may insert the row first, or a delete remove it under us: try again.
    for _ in range(3):
        row = await _insert(conn, workspace, source, fields, snapshot.created_at)
        if row is not None:
            return await announce_new(conn, workspace, row)
        args = (workspace, str(source_id), snapshot.external_id)
        row = await conn.fetchrow(postgres.LOCK_BY_EXTERNAL_ID, *args)
        if row is not None:
            proposed = snapshot_fields(list(row["tags"]), snapshot)
            return await _apply_changes(conn, workspace, row, proposed)
    raise RuntimeError(f"feedback {snapshot.external_id!r} kept changing; try the delivery again")


async def announce_new(conn: Connection, workspace: str, row: Any) -> FeedbackView:
    """Link a newly stored item's roadmap tags and emit `feedback.received` (and any links)."""
    links = await _sync_tag_links(conn, workspace, row["id"], [], list(row["tags"]))
    if links:
        row = await conn.fetchrow(postgres.REFRESH_ITEM_KEYS, row["id"])
    state = view_of(row)
    await _emit(conn, workspace, state_event(FeedbackReceived, state), *link_events(state, links))
    return state


async def _apply_changes(
    conn: Connection, workspace: str, row: Any, proposed: dict[str, Any]
) -> FeedbackView:
    """Write what differs from the locked row as one new version, with its events."""
    changes = changed_fields(row, proposed)
    if not changes:
        unchanged = await conn.fetchrow(postgres.SELECT_FEEDBACK, row["id"])
        return view_of(unchanged)
    links: list[LinkChange] = []
    if "tags" in changes:
        links = await _sync_tag_links(conn, workspace, row["id"], row["tags"], changes["tags"])
    values = [changes.get(name, row[name]) for name in MUTABLE_FIELDS]
    state = view_of(await conn.fetchrow(postgres.UPDATE_FEEDBACK, row["id"], *values))
    await _emit(conn, workspace, *link_events(state, links), state_event(FeedbackUpdated, state))
    return state


async def _sync_tag_links(
    conn: Connection, workspace: str, feedback_id: UUID, old: list[str], new: list[str]
) -> list[LinkChange]:
    """Link the item keys newly tagged, unlink those untagged; returns what became visible."""
    before, after = roadmap_keys(old), roadmap_keys(new)
    added, removed = sorted(after - before), sorted(before - after)
    changes: list[LinkChange] = []
    if added:
        await conn.execute(postgres.LOCK_ITEM_KEYS, workspace, added)
        rows = await conn.fetch(postgres.INSERT_TAG_LINKS, workspace, feedback_id, added)
        changes += [("linked", r["item_key"], "tag") for r in rows if r["status"] == "linked"]
    if removed:
        rows = await conn.fetch(postgres.DELETE_TAG_LINKS, feedback_id, removed)
        changes += [("unlinked", r["item_key"], "tag") for r in rows if r["status"] == "linked"]
    return changes


async def get_feedback(*, conn: Connection, feedback_id: UUID) -> FeedbackView | None:
    """One feedback item of the transaction's workspace."""
    row = await conn.fetchrow(postgres.SELECT_FEEDBACK, feedback_id)
    return view_of(row) if row else None


async def list_feedback(
    *,
    conn: Connection,
    limit: int,
    after: tuple[datetime, UUID] | None,
    filters: FeedbackFilters | None = None,
) -> list[FeedbackView]:
    """Feedback items newest first, narrowed by `filters`, after a cursor position."""
    f = filters or FeedbackFilters()
    rows = await conn.fetch(
        postgres.LIST_FEEDBACK,
        f.status,
        f.tag.lower() if f.tag else None,
        f.account,
        f.item,
        f.source,
        f.created_after,
        f.created_before,
        f.include_merged,
        *(after or (None, None)),
        limit,
    )
    return [view_of(r) for r in rows]


async def _lock(conn: Connection, feedback_id: UUID) -> Any:
    row = await conn.fetchrow(postgres.LOCK_FEEDBACK, feedback_id)
    if row is None:
        raise FeedbackNotFoundError
    return row


async def patch_feedback(
    *, conn: Connection, workspace: str, feedback_id: UUID, patch: FeedbackPatch
) -> FeedbackView:
    """Change the fields sent; emits `feedback.updated` (and link events) if anything changed."""
    row = await _lock(conn, feedback_id)
    return await _apply_changes(conn, workspace, row, patch.proposed(row["customer"]))


async def delete_feedback(*, conn: Connection, workspace: str, feedback_id: UUID) -> None:
    """Delete an item (its duplicates become items of their own again); emits `.deleted`."""
    row = await _lock(conn, feedback_id)
    restored = await conn.fetch(postgres.UNMERGE_DUPLICATES_OF, feedback_id)
    await conn.execute(postgres.DELETE_FEEDBACK, feedback_id)
    await _emit(
        conn,
        workspace,
        *(state_event(FeedbackUpdated, state_of(r)) for r in restored),
        FeedbackDeleted(id=feedback_id, version=row["version"] + 1),
    )


async def _bump(conn: Connection, *feedback_ids: UUID) -> list[FeedbackView]:
    rows = await conn.fetch(postgres.BUMP_FEEDBACK, list(feedback_ids))
    return [view_of(r) for r in rows]


async def link_feedback(
    *, conn: Connection, workspace: str, feedback_id: UUID, item_key: str
) -> tuple[Link, bool]:
    """Link an item to a roadmap item explicitly; (link, False) when it was linked already."""
    await _lock(conn, feedback_id)
    existing = await conn.fetchrow(postgres.SELECT_LINK, feedback_id, item_key)
    if existing is not None and existing["linked_by"] == "api":
        return Link(feedback_id=feedback_id, item_key=existing["item_key"], by="api"), False
    if existing is not None:
        key: str = existing["item_key"]
        await conn.execute(postgres.PROMOTE_LINK, feedback_id, key)
    else:
        key = await conn.fetchval(
            postgres.INSERT_API_LINK, workspace, feedback_id, canonical_item_key(item_key)
        )
    [state] = await _bump(conn, feedback_id)
    events = link_events(state, [("linked", key, "api")])
    await _emit(conn, workspace, *events, state_event(FeedbackUpdated, state))
    return Link(feedback_id=feedback_id, item_key=key, by="api"), existing is None


async def unlink_feedback(
    *, conn: Connection, workspace: str, feedback_id: UUID, item_key: str
) -> None:
    """Remove a link, whoever made it; 404 when the item is not linked to that key."""
    await _lock(conn, feedback_id)
    existing = await conn.fetchrow(postgres.SELECT_LINK, feedback_id, item_key)
    if existing is None:
        raise FeedbackNotFoundError(f"this feedback item is not linked to {item_key}")
    await conn.execute(postgres.DELETE_LINK, feedback_id, existing["item_key"])
    if existing["status"] == "linked":
        [state] = await _bump(conn, feedback_id)
        events = link_events(state, [("unlinked", existing["item_key"], "api")])
        await _emit(conn, workspace, *events, state_event(FeedbackUpdated, state))


async def merge_feedback(
    *, conn: Connection, workspace: str, feedback_id: UUID, into: UUID
) -> FeedbackView:
    """Fold a duplicate into another item; returns the survivor, which lists its duplicates."""
    if feedback_id == into:
        raise FeedbackConflictError("a feedback item cannot be merged into itself")
    rows = {r["id"]: r for r in await conn.fetch(postgres.LOCK_FEEDBACKS, [feedback_id, into])}
    if feedback_id not in rows or into not in rows:
        raise FeedbackNotFoundError
    if rows[feedback_id]["merged_into"] is not None:
        raise FeedbackConflictError("this feedback item is merged already; unmerge it first")
    if rows[into]["merged_into"] is not None:
        raise FeedbackConflictError("the target is itself merged into another item")
    if await conn.fetchval(postgres.HAS_DUPLICATES, feedback_id):
        raise FeedbackConflictError("other items are merged into this one; unmerge them first")
    duplicate = view_of(await conn.fetchrow(postgres.SET_MERGED_INTO, feedback_id, into))
    [survivor] = await _bump(conn, into)
    merged = FeedbackMerged(feedback_id=feedback_id, into_id=into, version=duplicate.version)
    updates = (state_event(FeedbackUpdated, duplicate), state_event(FeedbackUpdated, survivor))
    await _emit(conn, workspace, merged, *updates)
    return survivor


async def unmerge_feedback(*, conn: Connection, workspace: str, feedback_id: UUID) -> FeedbackView:
    """Undo a merge: the duplicate stands on its own again; emits `.updated` for both."""
    current = await get_feedback(conn=conn, feedback_id=feedback_id)
    if current is None:
        raise FeedbackNotFoundError
    into = current.merged_into
    if into is None:
        raise FeedbackConflictError("this feedback item is not merged into another")
    rows = {r["id"]: r for r in await conn.fetch(postgres.LOCK_FEEDBACKS, [feedback_id, into])}
    if feedback_id not in rows or rows[feedback_id]["merged_into"] != into:
        raise FeedbackConflictError("the item changed meanwhile; try again")
    restored = view_of(await conn.fetchrow(postgres.SET_MERGED_INTO, feedback_id, None))
    [survivor] = await _bump(conn, into)
    updates = (state_event(FeedbackUpdated, restored), state_event(FeedbackUpdated, survivor))
    await _emit(conn, workspace, *updates)
    return restored


async def resolve_pending_links(*, conn: Connection, workspace: str, item_key: str) -> int:
    """Link the items tagged with a key that has just become known; returns how many."""
    await conn.execute(postgres.LOCK_ITEM_KEYS, workspace, [canonical_item_key(item_key)])
    ids = [r["id"] for r in await conn.fetch(postgres.LOCK_PENDING_FOR_KEY, workspace, item_key)]
    if not ids:
        return 0
    await conn.execute(postgres.RESOLVE_PENDING, workspace, item_key, ids)
    for state in await _bump(conn, *ids):
        events = link_events(state, [("linked", item_key, "tag")])
        await _emit(conn, workspace, *events, state_event(FeedbackUpdated, state))
    return len(ids)
