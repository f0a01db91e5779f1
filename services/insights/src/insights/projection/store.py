"""The projection's store: a batch's facts loaded and its changes written, set-wise.

`apply_events` is the one path by which events become facts: the live consumer's batch, its
careful pass (a batch of one, in the consumer's savepoint) and the rebuild's chunks of the
stream all run it. A batch costs a fixed number of statements whatever its size: one load per
aggregate it holds events of, one write of the version gates, at most two writes per fact
table, and one read of the look-ups its touch needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from insights.projection import rules
from insights.projection import store_sql as sql
from insights.projection.facts import Touch
from insights.projection.rules import Facts, Key, Needs
from insights.projection.touch import LookUps, touched
from prodops.contract import Event
from prodops.runtime.db import Connection


async def apply_events(conn: Connection, events: Sequence[Event]) -> dict[str, Touch]:
    """Apply events in their order, each only if newer than what is held; what they touched."""
    parsed = rules.parse(events)
    facts = await load(conn, rules.needs(parsed))
    applied = [change for p in parsed if (change := rules.fold(facts, *p)) is not None]
    await write(conn, facts)
    touches, look_ups = touched(applied)
    if look_ups:
        await look_up(conn, look_ups, touches)
    return touches


async def load(conn: Connection, needs: Needs) -> Facts:
    """The facts `needs` names, with their version gates: a statement per aggregate."""
    facts = Facts()
    for aggregate, ids in needs.ids.items():
        keys = needs.keys.get(aggregate, set())
        args: list[Any] = [*_columns(ids)]
        if aggregate in rules.KEYED:
            args += _columns(keys)
        table, columns = facts.tables[aggregate], sql.COLUMNS[aggregate]
        for r in await conn.fetch(sql.LOAD[aggregate], *args):
            key = (r["workspace"], r["id"])
            if r["by_id"] and r["version"] is not None:
                facts.versions[r["workspace"], aggregate, str(r["id"])] = r["version"]
            row = {c: r[c] for c in columns} if r["held"] else None
            table.hold(key, row)
            if row is not None and aggregate in rules.KEYED:
                facts.holders[aggregate][r["workspace"], row["key"]] = r["id"]
        for key in ids:
            table.hold(key, None)  # a row asked for and not found is not there
        for ws_key in keys:
            facts.holders[aggregate].setdefault(ws_key, None)
    return facts


async def write(conn: Connection, facts: Facts) -> None:
    """Write the version gates the batch moved, then each fact table's changes."""
    if facts.projections:
        gates = [
            {
                "workspace": ws,
                "aggregate": aggregate,
                "id": ident,
                "version": p.version,
                "deleted": p.deleted,
                "state": p.state,
                "event_id": p.event_id,
            }
            for (ws, aggregate, ident), p in facts.projections.items()
        ]
        await conn.execute(sql.PUT_PROJECTIONS, gates)
    for aggregate in rules.tables_in_order():
        if facts.tables[aggregate].written:
            await _write_table(conn, aggregate, rules.changes(facts, aggregate))


async def _write_table(conn: Connection, aggregate: str, changes: rules.Changes) -> None:
    if aggregate == "feedback":
        # Its feedback_item rows go with it, and come back with the rows put.
        written = changes.removed + [key for key, _ in changes.put]
        if written:
            removed = _columns(changes.removed)
            await conn.execute(sql.REMOVE[aggregate], *removed, *_columns(written))
    elif changes.removed:
        await conn.execute(sql.REMOVE[aggregate], *_columns(changes.removed))
    if changes.put:
        records = [{"workspace": ws, "id": ident, **row} for (ws, ident), row in changes.put]
        await conn.execute(sql.PUT[aggregate], records)


async def look_up(conn: Connection, look_ups: LookUps, touches: dict[str, Touch]) -> None:
    """Add to `touches` what `look_ups` finds in the facts as written."""
    rows = await conn.fetch(
        sql.LOOK_UP,
        *_columns(look_ups.account_groups),
        *_columns(look_ups.item_key_groups),
        *_columns(look_ups.objective_items),
    )
    for r in rows:
        touch = touches.setdefault(r["workspace"], Touch())
        (touch.groups if r["kind"] == "group" else touch.items).add(r["id"])


def _columns(keys: Any) -> tuple[list[str], list[Any]]:
    """(workspace, value) pairs as the two parallel arrays an `unnest` takes."""
    pairs: list[Key] = sorted(keys)
    return [ws for ws, _ in pairs], [value for _, value in pairs]
