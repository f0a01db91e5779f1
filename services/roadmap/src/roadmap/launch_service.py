"""Launch use cases: launches, their checklists, and the workspace's checklist template.

A launch's checklist is part of its state: every change of an entry is a new version of the
launch, emitted whole as `launch.upserted`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prodops.contract import ChecklistEntry, LaunchDeleted, new_id
from prodops.runtime.db import Connection
from roadmap import postgres, tracker_sql
from roadmap.domain import (
    ChecklistEntryPatch,
    ChecklistTemplate,
    DeliveryRollup,
    Launch,
    LaunchInput,
    LaunchPatch,
    checklist_of,
    seeded_checklist,
)
from roadmap.service import (
    After,
    ConflictError,
    NotFoundError,
    emit,
    items_by_id,
    launch_of,
    unprocessable,
)


async def _template(conn: Connection) -> ChecklistTemplate:
    row = await conn.fetchrow(postgres.SELECT_SETTINGS)
    entries = row["checklist_template"] if row else []
    return ChecklistTemplate.model_validate({"entries": entries})


async def get_checklist_template(*, conn: Connection) -> ChecklistTemplate:
    """The entries every new launch of the workspace starts with."""
    return await _template(conn)


async def put_checklist_template(
    *, conn: Connection, workspace: str, template: ChecklistTemplate
) -> ChecklistTemplate:
    """Replace the template; launches made before keep their checklists."""
    entries = [e.model_dump(mode="json") for e in template.entries]
    await conn.execute(postgres.SET_CHECKLIST_TEMPLATE, workspace, entries)
    return template


def _stored_checklist(entries: list[ChecklistEntry]) -> list[dict[str, Any]]:
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise unprocessable("checklist entry ids must be unique")
    return [e.model_dump(mode="json") for e in entries]


async def with_launch_rollups(conn: Connection, launches: list[Launch]) -> list[Launch]:
    """The launches with the roll-up of the issues linked to them or their items, in one query."""
    if not launches:
        return launches
    rows = await conn.fetch(tracker_sql.LAUNCH_ROLLUPS, [launch.key for launch in launches])
    found = {r["key"]: DeliveryRollup.model_validate(dict(r)) for r in rows}
    return [
        launch.model_copy(update={"delivery": found.get(launch.key, DeliveryRollup())})
        for launch in launches
    ]


async def create_launch(*, conn: Connection, workspace: str, data: LaunchInput) -> Launch:
    """Store a launch (its checklist from the template unless given); emits `launch.upserted`."""
    if data.checklist is None:
        checklist = seeded_checklist(await _template(conn), new_id)
    else:
        checklist = checklist_of(data.checklist, new_id)
    row = await conn.fetchrow(
        postgres.INSERT_LAUNCH,
        new_id(),
        workspace,
        data.key,
        data.name,
        data.target_date,
        data.status,
        _stored_checklist(checklist),
    )
    if row is None:
        raise ConflictError(f"launch key {data.key!r} is taken in this workspace")
    launch = launch_of(row)
    await emit(conn, workspace, launch.event())
    # Issues may name the key before the launch exists (a fixVersion made ahead).
    [rolled] = await with_launch_rollups(conn, [launch])
    return rolled


async def find_launch(*, conn: Connection, id_or_key: str) -> Launch:
    """One launch of the transaction's workspace, by id or by key."""
    try:
        row = await conn.fetchrow(postgres.SELECT_LAUNCH, UUID(id_or_key))
    except ValueError:
        row = await conn.fetchrow(postgres.SELECT_LAUNCH_BY_KEY, id_or_key)
    if row is None:
        raise NotFoundError("launch")
    [launch] = await with_launch_rollups(conn, [launch_of(row)])
    return launch


async def list_launches(
    *, conn: Connection, status: str | None, after: After, limit: int
) -> list[Launch]:
    """Launches newest first, after a cursor position."""
    rows = await conn.fetch(postgres.LIST_LAUNCHES, status, *after, limit)
    return await with_launch_rollups(conn, [launch_of(r) for r in rows])


async def _change_launch(
    conn: Connection, workspace: str, id_or_key: str, change: dict[str, Any]
) -> Launch:
    """Write the changed fields (name, target_date, status, checklist) as a new version."""
    found = await find_launch(conn=conn, id_or_key=id_or_key)
    row = await conn.fetchrow(postgres.LOCK_LAUNCH, found.id)
    if row is None:
        raise NotFoundError("launch")
    current = {
        "name": row["name"],
        "target_date": row["target_date"],
        "status": row["status"],
        "checklist": row["checklist"],
    }
    proposed = current | change
    if proposed == current:
        return found
    updated = await conn.fetchrow(postgres.UPDATE_LAUNCH, found.id, *proposed.values())
    launch = launch_of(updated)
    await emit(conn, workspace, launch.event())
    return launch.model_copy(update={"delivery": found.delivery})


async def patch_launch(
    *, conn: Connection, workspace: str, id_or_key: str, patch: LaunchPatch
) -> Launch:
    """Change the fields sent; emits `launch.upserted` when something changed."""
    return await _change_launch(
        conn, workspace, id_or_key, patch.model_dump(include=patch.model_fields_set)
    )


async def replace_checklist(
    *, conn: Connection, workspace: str, id_or_key: str, entries: list[ChecklistEntry]
) -> Launch:
    """Replace a launch's whole checklist; emits `launch.upserted`."""
    return await _change_launch(
        conn, workspace, id_or_key, {"checklist": _stored_checklist(entries)}
    )


async def patch_checklist_entry(
    *,
    conn: Connection,
    workspace: str,
    id_or_key: str,
    entry_id: UUID,
    patch: ChecklistEntryPatch,
) -> Launch:
    """Change one checklist entry (tick it done, mostly); emits `launch.upserted`."""
    found = await find_launch(conn=conn, id_or_key=id_or_key)
    # Locked before reading the checklist, so two entries ticked at once both stay ticked.
    row = await conn.fetchrow(postgres.LOCK_LAUNCH, found.id)
    if row is None:
        raise NotFoundError("launch")
    checklist = [ChecklistEntry.model_validate(e) for e in row["checklist"]]
    if entry_id not in {e.id for e in checklist}:
        raise NotFoundError("checklist entry")
    sent = patch.model_dump(include=patch.model_fields_set)
    entries = [e.model_copy(update=sent) if e.id == entry_id else e for e in checklist]
    return await replace_checklist(
        conn=conn, workspace=workspace, id_or_key=str(found.id), entries=entries
    )


async def delete_launch(*, conn: Connection, workspace: str, id_or_key: str) -> None:
    """Delete a launch: its items are unlinked (`item.upserted` each), then `launch.deleted`."""
    found = await find_launch(conn=conn, id_or_key=id_or_key)
    row = await conn.fetchrow(postgres.LOCK_LAUNCH, found.id)
    if row is None:
        raise NotFoundError("launch")
    item_ids = [r["id"] for r in await conn.fetch(postgres.UNLINK_LAUNCH, found.id)]
    items = await items_by_id(conn, item_ids)
    await conn.execute(postgres.DELETE_LAUNCH, found.id)
    deleted = LaunchDeleted(id=found.id, key=found.key, version=row["version"] + 1)
    await emit(conn, workspace, *(i.event() for i in items), deleted)
