"""The one tracker path: load what a batch can reach, merge its operations, write the end state.

A webhook delivery is a batch of one snapshot or a few; the normaliser hands over a workspace's
deliveries as one batch; an explicit link over the API is a batch of one operation. Whatever the
size, a batch costs a fixed number of statements: lock the named issues, lock the stored Jira
children and read the Jira parents of their keys, read their links, then insert the new issues,
update the changed ones, and delete and upsert the links that changed, each set-wise. The merge
itself (`roadmap.tracker_merge`) is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prodops.contract import make_event, utcnow
from prodops.messaging import outbox
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent
from roadmap import tracker_sql as sql
from roadmap.tracker_merge import IssueState, Operation, TrackerBatch
from roadmap.tracker_rules import Links
from roadmap.tracker_snapshot import TrackerIssueSnapshot

SERVICE = "roadmap"


class ConcurrentIssueError(Exception):
    """An issue the batch found missing was inserted meanwhile: the batch is to be run again."""


async def apply_operations(
    conn: Connection, workspace: str, operations: Sequence[Operation]
) -> tuple[TrackerBatch, list[IssueState | None]]:
    """Apply operations in order; the batch as left, and the issue each operation left."""
    if not operations:
        return TrackerBatch(workspace, utcnow(), []), []
    batch = await load(conn, workspace, operations)
    left = [batch.apply(operation) for operation in operations]
    await write(conn, batch)
    return batch, left


async def load(conn: Connection, workspace: str, operations: Sequence[Operation]) -> TrackerBatch:
    """The issues these operations name, locked, with the Jira issues their keys reach."""
    idents = sorted({(op.provider, op.external_id) for op in operations})
    now = await conn.fetchval(sql.NOW)
    providers, external_ids = [p for p, _ in idents], [e for _, e in idents]
    rows = list(await conn.fetch(sql.LOCK_MANY, workspace, providers, external_ids))
    snapshots = [op for op in operations if isinstance(op, TrackerIssueSnapshot)]
    jira = [row for row in rows if row["provider"] == "jira"]
    keys = {row["key"] for row in jira} | {s.key for s in snapshots if s.provider == "jira"}
    if keys:
        # Children a batch may recompute, and the issues whose links those children inherit.
        named = {row["parent_key"] for row in jira} | {s.parent_key for s in snapshots}
        parents = {key for key in named if key} | keys
        rows += await conn.fetch(sql.LOCK_JIRA_CHILDREN, workspace, sorted(keys))
        rows += await conn.fetch(sql.JIRA_KEYED, workspace, sorted(parents))
    unique = {row["id"]: row for row in reversed(rows)}  # a locked read wins over a plain one
    links: dict[UUID, Links] = {issue_id: {} for issue_id in unique}
    if unique:
        for link in await conn.fetch(sql.LINKS_OF_MANY, list(unique)):
            links[link["tracker_issue_id"]][link["target"], link["target_key"]] = link["by"]
    loaded = [(dict(row.items()), links[issue_id]) for issue_id, row in unique.items()]
    return TrackerBatch(workspace, now, loaded)


async def write(conn: Connection, batch: TrackerBatch) -> None:
    """Store the batch's end state and its events, a statement per kind of change."""
    changed = [issue for issue in batch.issues.values() if issue.changed]
    new = [issue.row for issue in changed if issue.loaded is None]
    if new:
        inserted = await conn.fetch(sql.INSERT_ISSUES, sql.issue_rows(new))
        if len(inserted) != len(new):
            raise ConcurrentIssueError("a tracker issue was stored meanwhile; run the batch again")
    stored = [issue.row for issue in changed if issue.loaded is not None]
    if stored:
        await conn.execute(sql.UPDATE_ISSUES, sql.issue_rows(stored))
    await _write_links(conn, batch.workspace, list(batch.issues.values()))
    traceparent = current_traceparent()
    events = [
        make_event(data, service=SERVICE, workspace=batch.workspace, traceparent=traceparent)
        for data in batch.events
    ]
    await outbox.add(conn, *events)


async def _write_links(conn: Connection, workspace: str, issues: Sequence[IssueState]) -> None:
    """Delete the links the batch removed; insert those it made or whose maker it changed."""
    gone: list[tuple[Any, ...]] = []
    made: list[tuple[Any, ...]] = []
    for issue in issues:
        issue_id = issue.row["id"]
        gone += [(issue_id, *link) for link in issue.loaded_links if link not in issue.links]
        made += [
            (issue_id, *link, by)
            for link, by in issue.links.items()
            if issue.loaded_links.get(link) != by
        ]
    if gone:
        await conn.execute(sql.DELETE_LINKS, *map(list, zip(*gone, strict=True)))
    if made:
        await conn.execute(sql.UPSERT_LINKS, workspace, *map(list, zip(*made, strict=True)))
