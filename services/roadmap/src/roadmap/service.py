"""Roadmap use cases: one keyword-only function per action.

Every change locks the aggregate's row, bumps its version once, and writes its events to the
outbox in the caller's transaction. What a change does to other aggregates is emitted too: a
deleted objective leaves the items that named it (`item.upserted`), a deleted launch unlinks its
items, and an item joining or leaving a launch is a new version of that launch (its item keys).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from prodops.contract import (
    EventData,
    ItemDeleted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    make_event,
    new_id,
)
from prodops.http.problems import ProblemError
from prodops.messaging import outbox
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent
from roadmap import postgres, tracker_sql
from roadmap.domain import (
    DeliveryRollup,
    Item,
    ItemFilters,
    ItemInput,
    ItemPatch,
    Launch,
    Objective,
    ObjectiveInput,
    ObjectivePatch,
    StatusChange,
    item_key,
)

SERVICE = "roadmap"
_OBJECTIVE_FIELDS = (
    "name",
    "description",
    "weight",
    "status",
    "period_start",
    "period_end",
    "parent_id",
)
_ITEM_FIELDS = (
    "title",
    "description",
    "status",
    "horizon",
    "effort",
    "area",
    "objective_ids",
    "launch_id",
    "parent_id",
)
After = tuple[datetime | None, UUID | None]


class NotFoundError(ProblemError):
    """No such objective, item or launch in the caller's workspace."""

    def __init__(self, what: str) -> None:
        super().__init__(404, "Not Found", f"no such {what} in this workspace")


class ConflictError(ProblemError):
    """The change contradicts what is stored (a key taken, a parent cycle)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, "Conflict", detail)


def unprocessable(detail: str) -> ProblemError:
    """A request well-formed but naming what this workspace does not have."""
    return ProblemError(422, "Unprocessable Content", detail)


async def emit(conn: Connection, workspace: str, *data: EventData) -> None:
    """Write events to the outbox in the caller's transaction."""
    traceparent = current_traceparent()
    events = [
        make_event(d, service=SERVICE, workspace=workspace, traceparent=traceparent) for d in data
    ]
    await outbox.add(conn, *events)


def objective_of(row: Any) -> Objective:
    """An objective as stored."""
    return Objective.model_validate(dict(row))


def _objective_event(objective: Objective) -> ObjectiveUpserted:
    return ObjectiveUpserted.model_validate(
        objective.model_dump(include=set(ObjectiveUpserted.model_fields))
    )


def item_of(row: Any) -> Item:
    """An item as stored, with its launch's and parent's keys."""
    return Item.model_validate({**dict(row), "objective_ids": list(row["objective_ids"])})


async def with_item_rollups(conn: Connection, items: list[Item]) -> list[Item]:
    """The items with the delivery roll-up of their linked tracker issues, in one query."""
    if not items:
        return items
    rows = await conn.fetch(tracker_sql.ITEM_ROLLUPS, [i.key for i in items])
    found = {r["key"]: DeliveryRollup.model_validate(dict(r)) for r in rows}
    return [i.model_copy(update={"delivery": found.get(i.key, DeliveryRollup())}) for i in items]


def launch_of(row: Any) -> Launch:
    """A launch as stored, with its checklist and the keys of its items."""
    return Launch.model_validate(
        {**dict(row), "item_keys": list(row["item_keys"]), "checklist": row["checklist"]}
    )


# --- objectives -------------------------------------------------------------------------------


async def _check_objective_parent(
    conn: Connection, objective_id: UUID | None, parent: UUID
) -> None:
    if await conn.fetchrow(postgres.SELECT_OBJECTIVE, parent) is None:
        raise unprocessable("parent_id names no objective of this workspace")
    if objective_id is not None:
        ancestors = {r["id"] for r in await conn.fetch(postgres.OBJECTIVE_ANCESTORS, parent)}
        if objective_id in ancestors:
            raise ConflictError("an objective cannot be its own ancestor")


async def create_objective(*, conn: Connection, workspace: str, data: ObjectiveInput) -> Objective:
    """Store an objective and emit `objective.upserted`."""
    if data.parent_id is not None:
        await _check_objective_parent(conn, None, data.parent_id)
    values = [getattr(data, name) for name in _OBJECTIVE_FIELDS]
    row = await conn.fetchrow(postgres.INSERT_OBJECTIVE, new_id(), workspace, *values)
    objective = objective_of(row)
    await emit(conn, workspace, _objective_event(objective))
    return objective


async def get_objective(*, conn: Connection, objective_id: UUID) -> Objective:
    """One objective of the transaction's workspace."""
    row = await conn.fetchrow(postgres.SELECT_OBJECTIVE, objective_id)
    if row is None:
        raise NotFoundError("objective")
    return objective_of(row)


async def list_objectives(
    *, conn: Connection, status: str | None, after: After, limit: int
) -> list[Objective]:
    """Objectives newest first, after a cursor position."""
    rows = await conn.fetch(postgres.LIST_OBJECTIVES, status, *after, limit)
    return [objective_of(r) for r in rows]


async def patch_objective(
    *, conn: Connection, workspace: str, objective_id: UUID, patch: ObjectivePatch
) -> Objective:
    """Change the fields sent; emits `objective.upserted` when something changed."""
    row = await conn.fetchrow(postgres.LOCK_OBJECTIVE, objective_id)
    if row is None:
        raise NotFoundError("objective")
    values = {name: row[name] for name in _OBJECTIVE_FIELDS}
    proposed = values | patch.model_dump(include=patch.model_fields_set)
    if proposed == values:
        return objective_of(row)
    start, end = proposed["period_start"], proposed["period_end"]
    if start is not None and end is not None and end < start:
        raise unprocessable("period_end must not be before period_start")
    if proposed["parent_id"] is not None and proposed["parent_id"] != row["parent_id"]:
        await _check_objective_parent(conn, objective_id, proposed["parent_id"])
    updated = await conn.fetchrow(
        postgres.UPDATE_OBJECTIVE, objective_id, *(proposed[n] for n in _OBJECTIVE_FIELDS)
    )
    objective = objective_of(updated)
    await emit(conn, workspace, _objective_event(objective))
    return objective


async def delete_objective(*, conn: Connection, workspace: str, objective_id: UUID) -> None:
    """Delete an objective: items stop naming it, children lose their parent; all emitted."""
    row = await conn.fetchrow(postgres.LOCK_OBJECTIVE, objective_id)
    if row is None:
        raise NotFoundError("objective")
    children = [
        objective_of(r) for r in await conn.fetch(postgres.ORPHAN_CHILD_OBJECTIVES, objective_id)
    ]
    item_ids = [r["id"] for r in await conn.fetch(postgres.UNLINK_OBJECTIVE, objective_id)]
    items = await items_by_id(conn, item_ids)
    await conn.execute(postgres.DELETE_OBJECTIVE, objective_id)
    await emit(
        conn,
        workspace,
        *(_objective_event(c) for c in children),
        *items,
        ObjectiveDeleted(id=objective_id, version=row["version"] + 1),
    )


# --- items ------------------------------------------------------------------------------------


async def items_by_id(conn: Connection, ids: list[UUID]) -> list[Item]:
    """The items of these ids, in key order."""
    if not ids:
        return []
    return [item_of(r) for r in await conn.fetch(postgres.SELECT_ITEMS, ids)]


async def _check_item_refs(conn: Connection, item_id: UUID | None, changed: dict[str, Any]) -> None:
    """Objectives, launch and parent must be of the workspace (RLS hides the others)."""
    wanted = set(changed.get("objective_ids") or [])
    if wanted:
        known = {r["id"] for r in await conn.fetch(postgres.KNOWN_OBJECTIVES, list(wanted))}
        if wanted - known:
            raise unprocessable("objective_ids name objectives unknown in this workspace")
    launch_id = changed.get("launch_id")
    if launch_id is not None and await conn.fetchrow(postgres.SELECT_LAUNCH, launch_id) is None:
        raise unprocessable("launch_id names no launch of this workspace")
    parent = changed.get("parent_id")
    if parent is not None:
        if await conn.fetchrow(postgres.SELECT_ITEM, parent) is None:
            raise unprocessable("parent_id names no item of this workspace")
        ancestors = {r["id"] for r in await conn.fetch(postgres.ITEM_ANCESTORS, parent)}
        if item_id is not None and item_id in ancestors:
            raise ConflictError("an item cannot be its own ancestor")


async def _record_status(
    conn: Connection, workspace: str, item_id: UUID, before: str | None, after: str
) -> None:
    await conn.execute(postgres.INSERT_STATUS_CHANGE, new_id(), workspace, item_id, before, after)


async def _touch_launches(conn: Connection, workspace: str, *launch_ids: UUID | None) -> None:
    """A new version of launches whose items changed, emitted."""
    ids = sorted({i for i in launch_ids if i is not None})
    if ids:
        rows = await conn.fetch(postgres.BUMP_LAUNCHES, ids)
        await emit(conn, workspace, *(launch_of(r).event() for r in rows))


async def create_item(*, conn: Connection, workspace: str, data: ItemInput) -> Item:
    """Store an item under the workspace's next key; emits `item.upserted`."""
    data = data.model_copy(update={"objective_ids": list(dict.fromkeys(data.objective_ids))})
    await _check_item_refs(conn, None, data.model_dump())
    numbering = await conn.fetchrow(postgres.NEXT_ITEM_NUMBER, workspace)
    assert numbering is not None  # an upsert with RETURNING always answers a row
    key = item_key(numbering["item_key_prefix"], numbering["last_item_number"])
    values = [getattr(data, name) for name in _ITEM_FIELDS]
    item_id = new_id()
    row = await conn.fetchrow(postgres.INSERT_ITEM, item_id, workspace, key, *values)
    await _record_status(conn, workspace, item_id, None, data.status)
    item = item_of(row)
    await emit(conn, workspace, item.event())
    await _touch_launches(conn, workspace, data.launch_id)
    # Issues may name the key before the item exists (a label written ahead).
    [rolled] = await with_item_rollups(conn, [item])
    return rolled


async def find_item(*, conn: Connection, id_or_key: str) -> Item:
    """One item of the transaction's workspace, by id or by key."""
    try:
        row = await conn.fetchrow(postgres.SELECT_ITEM, UUID(id_or_key))
    except ValueError:
        # Keys are stored upper case (the prefix is), and looked up case-insensitively.
        row = await conn.fetchrow(postgres.SELECT_ITEM_BY_KEY, id_or_key.strip().upper())
    if row is None:
        raise NotFoundError("item")
    [item] = await with_item_rollups(conn, [item_of(row)])
    return item


async def list_items(
    *, conn: Connection, filters: ItemFilters, after: After, limit: int
) -> list[Item]:
    """Items newest first, narrowed by `filters`, after a cursor position."""
    f = filters
    rows = await conn.fetch(
        postgres.LIST_ITEMS, f.status, f.horizon, f.objective, f.launch, f.area, *after, limit
    )
    return await with_item_rollups(conn, [item_of(r) for r in rows])


async def item_history(*, conn: Connection, id_or_key: str) -> list[StatusChange]:
    """Every status an item has had, oldest first, starting with the one it was created with."""
    item = await find_item(conn=conn, id_or_key=id_or_key)
    rows = await conn.fetch(postgres.SELECT_HISTORY, item.id)
    return [StatusChange.model_validate(dict(r)) for r in rows]


async def patch_item(*, conn: Connection, workspace: str, id_or_key: str, patch: ItemPatch) -> Item:
    """Change the fields sent; emits `item.upserted` (and the launches it left or joined)."""
    found = await find_item(conn=conn, id_or_key=id_or_key)
    row = await conn.fetchrow(postgres.LOCK_ITEM, found.id)
    if row is None:
        raise NotFoundError("item")
    current = {name: row[name] for name in _ITEM_FIELDS}
    current["objective_ids"] = list(current["objective_ids"])
    sent = patch.model_dump(include=patch.model_fields_set)
    if "objective_ids" in sent:
        sent["objective_ids"] = list(dict.fromkeys(sent["objective_ids"]))
    changed = {k: v for k, v in sent.items() if v != current[k]}
    if not changed:
        return found
    await _check_item_refs(conn, found.id, changed)
    proposed = current | changed
    updated = await conn.fetchrow(
        postgres.UPDATE_ITEM, found.id, *(proposed[n] for n in _ITEM_FIELDS)
    )
    if "status" in changed:
        await _record_status(conn, workspace, found.id, row["status"], changed["status"])
    item = item_of(updated)
    await emit(conn, workspace, item.event())
    if "launch_id" in changed:
        await _touch_launches(conn, workspace, row["launch_id"], changed["launch_id"])
    return item.model_copy(update={"delivery": found.delivery})


async def delete_item(*, conn: Connection, workspace: str, id_or_key: str) -> None:
    """Delete an item: its children lose their parent, its launch its key; all emitted."""
    found = await find_item(conn=conn, id_or_key=id_or_key)
    row = await conn.fetchrow(postgres.LOCK_ITEM, found.id)
    if row is None:
        raise NotFoundError("item")
    child_ids = [r["id"] for r in await conn.fetch(postgres.ORPHAN_CHILD_ITEMS, found.id)]
    await conn.execute(postgres.DELETE_ITEM, found.id)
    children = await items_by_id(conn, child_ids)
    deleted = ItemDeleted(id=found.id, key=found.key, version=row["version"] + 1)
    await emit(conn, workspace, *(c.event() for c in children), deleted)
    await _touch_launches(conn, workspace, row["launch_id"])


async def get_item_key_prefix(*, conn: Connection) -> str:
    """The prefix of the workspace's new item keys."""
    row = await conn.fetchrow(postgres.SELECT_SETTINGS)
    return str(row["item_key_prefix"]) if row else "ITEM"


async def set_item_key_prefix(*, conn: Connection, workspace: str, prefix: str) -> str:
    """Change the prefix of new item keys; existing keys and the numbering stay."""
    return str(await conn.fetchval(postgres.SET_ITEM_KEY_PREFIX, workspace, prefix))
