"""A batch of tracker deliveries applied set-wise: what `upsert_tracker_issue` does one at a time.

The webhook normaliser hands each workspace's share of a batch here. Snapshots are applied in
rounds of distinct issues, in order (an issue's next snapshot waits for the next round), each
round with a fixed number of statements whatever its size: lock the issues, read their links,
write the inserts and updates (which return the rows the events carry) and the link changes. Jira
snapshots (parents and children link each other) and deletions take the one-at-a-time path in
their place in the order. The result, rows, links and events, is the one-at-a-time result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prodops.contract import new_id
from prodops.runtime.db import Connection
from prodops.webhooks.endpoint import Delivery
from prodops.webhooks.intake import ManyNormalizer
from roadmap import tracker_sql as sql
from roadmap.domain import TrackerIssueSnapshot
from roadmap.gitlab_milestones import MilestoneTitles
from roadmap.tracker import (
    announce_row,
    convention_keys,
    merged_fields,
    snapshots_of,
    upsert_tracker_issue,
)
from roadmap.tracker_links import Links, plan

# Issues of these trackers link only to items and launches, never to each other.
_SET_WISE = frozenset({"github", "gitlab", "linear"})


def many_normalizer(milestones: MilestoneTitles) -> ManyNormalizer:
    """The webhook normaliser's batch form, reading GitLab milestone titles with `milestones`."""

    async def normalize(conn: Connection, deliveries: Sequence[Delivery]) -> list[bool]:
        return await normalize_many(conn, deliveries, milestones)

    return normalize


async def normalize_many(
    conn: Connection, deliveries: Sequence[Delivery], milestones: MilestoneTitles | None = None
) -> list[bool]:
    """Apply one workspace's deliveries in order; for each, whether it named an issue."""
    found = [await snapshots_of(conn, delivery, milestones) for delivery in deliveries]
    if deliveries:
        snapshots = [snapshot for named in found for snapshot in named]
        await upsert_many(conn, deliveries[0].workspace, snapshots)
    return [bool(named) for named in found]


async def upsert_many(
    conn: Connection, workspace: str, snapshots: Sequence[TrackerIssueSnapshot]
) -> None:
    """Apply snapshots in order, as one `upsert_tracker_issue` after another would."""
    batch = _Round()
    for snapshot in snapshots:
        ident = (snapshot.provider, snapshot.external_id)
        if snapshot.provider not in _SET_WISE or snapshot.deleted:
            await batch.apply(conn, workspace)
            batch = _Round()
            await upsert_tracker_issue(conn=conn, workspace=workspace, snapshot=snapshot)
            continue
        if ident in batch.issues:
            await batch.apply(conn, workspace)
            batch = _Round()
        batch.issues[ident] = snapshot
    await batch.apply(conn, workspace)


@dataclass
class _Round:
    """Snapshots of distinct issues, applied together."""

    issues: dict[tuple[str, str], TrackerIssueSnapshot] = field(default_factory=dict)
    inserts: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    stale_links: list[tuple[Any, ...]] = field(default_factory=list)
    new_links: list[tuple[Any, ...]] = field(default_factory=list)
    changed: dict[UUID, Links] = field(default_factory=dict)

    async def apply(self, conn: Connection, workspace: str) -> None:
        if not self.issues:
            return
        keys = sorted(self.issues)
        providers = [provider for provider, _ in keys]
        external_ids = [external_id for _, external_id in keys]
        # Planned for these keys and the table as it is now (a plan cached while the table was
        # young read every issue of the workspace once per key), in one round trip.
        rows = await conn.fetch(sql.LOCK_MANY, workspace, providers, external_ids)
        stored = {(r["provider"], r["external_id"]): r for r in rows}
        links: dict[UUID, Links] = {r["id"]: {} for r in rows}
        if rows:
            for link in await conn.fetch(sql.LINKS_OF_MANY, list(links)):
                links[link["tracker_issue_id"]][link["target"], link["target_key"]] = link["by"]
        for ident, snapshot in self.issues.items():
            row = stored.get(ident)
            self._plan(workspace, snapshot, row, links[row["id"]] if row is not None else {})
        if not self.changed:  # redeliveries that change nothing
            return
        written = {r["id"]: r for r in await self._write(conn)}
        for issue_id, after in self.changed.items():  # in the order of the snapshots
            await announce_row(conn, workspace, written[issue_id], after)

    def _plan(
        self, workspace: str, snapshot: TrackerIssueSnapshot, row: Any, current: Links
    ) -> None:
        fields = merged_fields(row, snapshot)
        items, launches = convention_keys(snapshot.provider, fields)
        change = plan(current, items, launches)
        values = [fields[name] for name in sql.MUTABLE_FIELDS]
        if row is None:
            issue_id = new_id()
            ident = (snapshot.provider, snapshot.external_id)
            self.inserts.append((issue_id, workspace, *ident, *values))
        else:
            issue_id = row["id"]
            unchanged = all(row[name] == fields[name] for name in sql.MUTABLE_FIELDS)
            if unchanged and change.after.keys() == current.keys():
                return
            self.updates.append((issue_id, *values))
        if change.stale:
            self.stale_links.append((issue_id, items, launches))
        if change.added:
            self.new_links.append((workspace, issue_id, items, launches))
        self.changed[issue_id] = change.after

    async def _write(self, conn: Connection) -> list[Any]:
        """The round's writes: new issues, changed issues and new links each in one statement,
        stale links pipelined over their rows; the issues' rows as written."""
        written: list[Any] = []
        for statement, columns, rows in (
            (sql.INSERT_NEW_ISSUES, sql.INSERTED, self.inserts),
            (sql.UPDATE_ISSUES, sql.UPDATED, self.updates),
        ):
            if rows:
                written += await conn.fetch(statement, sql.issue_rows(columns, rows))
        if self.stale_links:
            await conn.executemany(sql.DELETE_STALE_CONVENTION_LINKS, self.stale_links)
        links = [
            (workspace, issue_id, target, key)
            for workspace, issue_id, items, launches in self.new_links
            for target, keys in (("item", items), ("launch", launches))
            for key in keys
        ]
        if links:
            by_column = [list(column) for column in zip(*links, strict=True)]
            await conn.execute(sql.INSERT_CONVENTION_LINKS_MANY, *by_column)
        return written
