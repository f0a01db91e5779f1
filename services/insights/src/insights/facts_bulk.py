"""Tracker-issue events into facts set-wise: a batch's issues in a few statements.

Issue events are the bulk of what trackers send. Applied one at a time, each costs three round
trips (version gate, the state before, the write); here a round of distinct issues costs three in
all, and a batch takes as many rounds as the most changes of any one issue in it. The outcome,
facts and what each change touches, is the same as `facts.apply_fact`'s event by event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from insights import facts_sql as sql
from insights.facts import AGGREGATES, Touch, issue_row
from prodops.contract import Event, TrackerIssueDeleted, TrackerIssueUpserted
from prodops.runtime.db import Connection

ISSUE_TYPES = frozenset({TrackerIssueUpserted.TYPE, TrackerIssueDeleted.TYPE})
_AGGREGATE = AGGREGATES[TrackerIssueUpserted.TYPE]

# The version gate of `facts_sql.UPSERT_PROJECTION` for many aggregates (each at most once).
UPSERT_PROJECTIONS = """
INSERT INTO projection (workspace, aggregate, id, version, deleted, state, event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bool[], $6::jsonb[],
                     $7::uuid[])
ON CONFLICT (workspace, aggregate, id) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, state = EXCLUDED.state,
    event_id = EXCLUDED.event_id, updated_at = now()
WHERE projection.version < EXCLUDED.version
RETURNING workspace, id
"""
ISSUES_BEFORE = """
SELECT i.workspace, i.id, i.item_keys, i.launch_keys
FROM issue_fact AS i
JOIN unnest($1::text[], $2::uuid[]) AS k (workspace, id)
    ON i.workspace = k.workspace AND i.id = k.id
"""
DELETE_ISSUES = """
DELETE FROM issue_fact AS i USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE i.workspace = k.workspace AND i.id = k.id
"""

_Parsed = tuple[Event, TrackerIssueUpserted | TrackerIssueDeleted]


def rounds(events: Sequence[Event]) -> list[list[_Parsed]]:
    """The events in rounds of distinct issues: round k holds each issue's k-th event.

    Issues do not read one another, so only each issue's own order matters.
    """
    out: list[list[_Parsed]] = []
    seen: dict[tuple[str, str], int] = {}
    for event in events:
        data = event.parsed()
        assert isinstance(data, TrackerIssueUpserted | TrackerIssueDeleted), event.type
        key = (event.workspace, data.aggregate_id())
        k = seen[key] = seen.get(key, -1) + 1
        if k == len(out):
            out.append([])
        out[k].append((event, data))
    return out


async def apply_issues(
    conn: Connection, events: Sequence[Event], touches: dict[str, Touch]
) -> None:
    """Apply tracker-issue events in their order per issue; note what changed in `touches`."""
    for round_ in rounds(events):
        newer = await _newer(conn, round_)
        if newer:
            await _write(conn, newer, touches)


async def _newer(conn: Connection, round_: list[_Parsed]) -> list[_Parsed]:
    """Those of a round that are newer than what is held, their projections written."""
    keys = [(e.workspace, d.aggregate_id()) for e, d in round_]
    rows = await conn.fetch(
        UPSERT_PROJECTIONS,
        [ws for ws, _ in keys],
        [_AGGREGATE] * len(round_),
        [ident for _, ident in keys],
        [d.version for _, d in round_],
        [isinstance(d, TrackerIssueDeleted) for _, d in round_],
        [e.data for e, _ in round_],
        [e.id for e, _ in round_],
    )
    written = {(r["workspace"], r["id"]) for r in rows}
    return [parsed for parsed, key in zip(round_, keys, strict=True) if key in written]


async def _write(conn: Connection, newer: list[_Parsed], touches: dict[str, Touch]) -> None:
    keys = ([e.workspace for e, _ in newer], [d.id for _, d in newer])
    before: Mapping[tuple[str, Any], Any] = {
        (r["workspace"], r["id"]): r for r in await conn.fetch(ISSUES_BEFORE, *keys)
    }
    upserts: list[dict[str, Any]] = []
    deleted: tuple[list[str], list[Any]] = ([], [])
    for event, data in newer:
        touch = touches.setdefault(event.workspace, Touch())
        old = before.get((event.workspace, data.id))
        if old is not None:
            touch.launches.update(old["launch_keys"])
            touch.item_keys.update(old["item_keys"])
        if isinstance(data, TrackerIssueUpserted):
            upserts.append(issue_row(event.workspace, data))
            touch.launches.update(data.launch_keys)
            touch.item_keys.update(data.item_keys)
        else:
            deleted[0].append(event.workspace)
            deleted[1].append(data.id)
    if upserts:
        await conn.execute(sql.UPSERT_ISSUES, upserts)  # one statement: linked set-wise
    if deleted[0]:
        await conn.execute(DELETE_ISSUES, *deleted)
