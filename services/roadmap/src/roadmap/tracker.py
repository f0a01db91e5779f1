"""Tracker issues: deliveries from GitHub, GitLab, Jira and Linear, their links, their events.

Links follow design.md §4: `roadmap:<item-key>` labels name items, and a Jira issue is linked to
the items its stored epic/parent is itself linked to (by its labels or explicitly; inherited links
are not passed on further); the milestone (GitHub, GitLab), fixVersions (Jira) or project (Linear)
named with a launch key names a launch (GitLab's hooks name milestones by id only: with an API token
the title is read from GitLab, see `roadmap.gitlab_milestones`). When a Jira issue's item links
change, its stored direct children are recomputed in the same transaction. Such
`convention` links are recomputed from every delivery; `api` links are made over the API and
win: a delivery never removes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prodops.contract import (
    EventData,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
    make_event,
    new_id,
    utcnow,
)
from prodops.messaging import outbox
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent
from prodops.webhooks.endpoint import Delivery, Normalizer, Provider
from roadmap import tracker_sql as sql
from roadmap.domain import TrackerIssueSnapshot, TrackerName, item_keys_from_labels
from roadmap.gitlab_milestones import MilestoneTitles
from roadmap.tracker_links import Links, as_rows, read_links, sync_convention_links
from roadmap.webhooks import Snapshots, github, gitlab, jira, linear

SERVICE = "roadmap"
_TRACKERS = (github, gitlab, jira, linear)
PROVIDERS: dict[str, Provider] = {m.PROVIDER.name: m.PROVIDER for m in _TRACKERS}
_SNAPSHOTS: dict[str, Snapshots] = {m.PROVIDER.name: m.snapshots for m in _TRACKERS}
# GitHub and GitLab send the whole issue, so None there means "none"; Jira and Linear may leave
# out what they do not know, and None there keeps what is stored.
_COMPLETE = frozenset({"github", "gitlab"})
_DEFAULTS: dict[str, Any] = {
    "title": "",
    "state": "open",
    "kind": "task",
    "priority": "none",
    "labels": [],
    "assignees": [],
    "fix_versions": [],
}
# Computed from the other fields, or merged by a rule of their own (the cycle).
_DERIVED = frozenset({"blocker", "deleted", "cycle"})

LinkTarget = Literal["item", "launch"]
LinkKeys = list[tuple[str, str]]


class TrackerLink(BaseModel):
    """A link of an issue to a roadmap item or launch, and what made it."""

    target: LinkTarget
    key: str
    by: Literal["convention", "api"]


class TrackerIssue(TrackerIssueUpserted):
    """A tracker issue as the API shows it: its event state, plus what only the API shows."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state_reason: str | None
    assignees: list[str]
    milestone: str | None
    fix_versions: list[str]
    project: str | None
    parent_key: str | None
    is_pull_request: bool
    merged: bool | None
    links: list[TrackerLink]

    def event(self) -> TrackerIssueUpserted:
        """The `tracker_issue.upserted` data of this state."""
        fields = set(TrackerIssueUpserted.model_fields)
        return TrackerIssueUpserted.model_validate(self.model_dump(include=fields))


class IssueRef(BaseModel):
    """Which issue an explicit link is about: provider and external id, or its URL."""

    model_config = ConfigDict(extra="forbid")

    provider: TrackerName | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    url: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _named(self) -> IssueRef:
        if self.url is None and (self.provider is None or self.external_id is None):
            raise ValueError("send provider and external_id, or url")
        return self


class TrackerIssueFilters(BaseModel):
    """What a list of tracker issues is narrowed to; every filter given must hold."""

    model_config = ConfigDict(frozen=True)

    provider: TrackerName | None = None
    state: Literal["open", "closed"] | None = None
    kind: Literal["bug", "feature", "task"] | None = None
    priority: Literal["urgent", "high", "medium", "low", "none"] | None = None
    blocker: bool | None = None
    item: str | None = Field(default=None, max_length=100, description="Linked item key")
    launch: str | None = Field(default=None, max_length=100, description="Linked launch key")
    cycle: str | None = Field(
        default=None, max_length=200, description="Linear cycle: its id, number or name"
    )


def delivery_normalizer(milestones: MilestoneTitles) -> Normalizer:
    """The webhook pipeline's normaliser, reading GitLab milestone titles with `milestones`."""

    async def normalize(conn: Connection, delivery: Delivery) -> bool:
        return await normalize_delivery(conn, delivery, milestones=milestones)

    return normalize


async def normalize_delivery(
    conn: Connection, delivery: Delivery, *, milestones: MilestoneTitles | None = None
) -> bool:
    """Apply one stored tracker delivery to its issues; False when it names none."""
    found = await snapshots_of(conn, delivery, milestones)
    for snapshot in found:
        await upsert_tracker_issue(conn=conn, workspace=delivery.workspace, snapshot=snapshot)
    return bool(found)


async def snapshots_of(
    conn: Connection, delivery: Delivery, milestones: MilestoneTitles | None
) -> list[TrackerIssueSnapshot]:
    """The issue snapshots a stored delivery carries (GitLab milestones titled)."""
    payload = orjson.loads(delivery.body)
    found = _SNAPSHOTS[delivery.provider](delivery.event_type, payload)
    if milestones is not None and delivery.provider == "gitlab":
        # Before any issue row is locked: this may wait on GitLab's API.
        found = await milestones.name_milestones(
            conn,
            source_id=delivery.source_id,
            event_type=delivery.event_type,
            payload=payload,
            found=found,
        )
    return found


def is_blocker(state: str, labels: list[str], priority: str) -> bool:
    """An open issue labelled `blocker` or of priority `urgent` (design.md §4)."""
    lowered = {label.strip().lower() for label in labels}
    return state == "open" and ("blocker" in lowered or priority == "urgent")


def merged_fields(
    stored: Mapping[str, Any] | None, snapshot: TrackerIssueSnapshot
) -> dict[str, Any]:
    """The issue's fields once `snapshot` is applied over what is stored."""
    # GitLab hooks never carry the milestone's title: unknown, it stays as stored.
    keep_unknown = snapshot.provider not in _COMPLETE
    fields: dict[str, Any] = {}
    for name in sql.MUTABLE_FIELDS:
        if name in _DERIVED:
            continue
        value = getattr(snapshot, name)
        kept = (
            keep_unknown
            or name == "created_at"
            or (name, snapshot.provider) == ("milestone", "gitlab")
        ) and name not in snapshot.cleared
        if value is None and kept and stored is not None:
            value = stored[name]
        fields[name] = _DEFAULTS.get(name) if value is None else value
    fields["cycle"] = _cycle(stored, snapshot)
    fields["created_at"] = fields["created_at"] or utcnow()
    if fields["state"] == "open":
        fields["closed_at"] = None
    fields["blocker"] = is_blocker(fields["state"], fields["labels"], fields["priority"])
    fields["deleted"] = False
    return fields


def _cycle(stored: Mapping[str, Any] | None, snapshot: TrackerIssueSnapshot) -> Any:
    """The cycle as stored (JSON); an id-only cycle keeps the number and name known for it."""
    known = stored["cycle"] if stored is not None else None
    if snapshot.cycle is None:
        return None if "cycle" in snapshot.cleared else known
    cycle = snapshot.cycle.model_dump()
    if known is not None and known["id"] == cycle["id"]:
        cycle = {name: known[name] if value is None else value for name, value in cycle.items()}
    return cycle


def convention_keys(provider: str, fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The item keys and launch keys an issue names by the linking conventions."""
    if provider == "jira":
        launches = list(fields["fix_versions"])
    else:
        named = fields["project"] if provider == "linear" else fields["milestone"]
        launches = [named] if named else []
    return item_keys_from_labels(fields["labels"]), list(dict.fromkeys(launches))


async def upsert_tracker_issue(
    *, conn: Connection, workspace: str, snapshot: TrackerIssueSnapshot
) -> TrackerIssue | None:
    """Apply a snapshot to its issue keyed (provider, external id); None once it is deleted."""
    ident = (workspace, snapshot.provider, snapshot.external_id)
    # A concurrent delivery may insert the row first: the second pass finds and locks it.
    for _ in range(2):
        row = await conn.fetchrow(sql.LOCK_BY_EXTERNAL_ID, *ident)
        if row is not None:
            return await _apply(conn, workspace, row, snapshot)
        if snapshot.deleted:
            return None
        fields = merged_fields(None, snapshot)
        values = [fields[name] for name in sql.MUTABLE_FIELDS]
        new = sql.issue_rows(sql.INSERTED, [(new_id(), *ident, *values)])
        row = await conn.fetchrow(sql.INSERT_ISSUE, new)
        if row is not None:
            links = await _sync_convention_links(conn, workspace, row, fields, {})
            issue = await announce_row(conn, workspace, row, links)
            await _refresh_children(conn, workspace, row["provider"], row["key"], row["id"])
            return issue
    raise RuntimeError(f"tracker issue {snapshot.key!r} kept changing; replay the delivery")


async def _apply(
    conn: Connection, workspace: str, row: Any, snapshot: TrackerIssueSnapshot
) -> TrackerIssue | None:
    """Write what the snapshot changes as one new version, with its event."""
    if snapshot.deleted:
        await _delete(conn, workspace, row)
        return None
    fields = merged_fields(row, snapshot)
    before = await read_links(conn, row["id"])
    after = await _sync_convention_links(conn, workspace, row, fields, before)
    unchanged = all(row[name] == fields[name] for name in sql.MUTABLE_FIELDS)
    if unchanged and after.keys() == before.keys():
        return None if row["deleted"] else _viewed(row, after)
    values = [fields[name] for name in sql.MUTABLE_FIELDS]
    updated = await conn.fetchrow(sql.UPDATE_ISSUE, row["id"], *values)
    issue = await announce_row(conn, workspace, updated, after)
    if after.keys() != before.keys() or fields["key"] != row["key"]:
        await _refresh_children(conn, workspace, row["provider"], fields["key"], row["id"])
    return issue


async def _delete(conn: Connection, workspace: str, row: Any) -> None:
    """Mark the issue deleted, drop its convention links and emit `tracker_issue.deleted`."""
    if row["deleted"]:
        return
    await conn.execute(sql.DELETE_CONVENTION_LINKS, row["id"])
    version = await conn.fetchval(sql.MARK_DELETED, row["id"])
    await _emit(conn, workspace, TrackerIssueDeleted(id=row["id"], version=version))
    await _refresh_children(conn, workspace, row["provider"], row["key"], row["id"])


async def _sync_convention_links(
    conn: Connection, workspace: str, row: Any, fields: Mapping[str, Any], current: Links
) -> Links:
    """Make the issue's convention links what its fields name; returns its links after."""
    items, launches = convention_keys(row["provider"], fields)
    if row["provider"] == "jira" and fields["parent_key"]:
        inherited = await _parent_item_keys(conn, workspace, fields["parent_key"])
        items = list(dict.fromkeys([*items, *inherited]))
    return await sync_convention_links(
        conn,
        workspace=workspace,
        issue_id=row["id"],
        items=items,
        launches=launches,
        current=current,
    )


def own_item_keys(links: Sequence[Mapping[str, Any]]) -> list[str]:
    """The item keys a Jira parent links by itself: explicitly, or by its `roadmap:` labels."""
    return [
        link["target_key"]
        for link in links
        if link["by"] == "api" or link["target_key"] in item_keys_from_labels(link["labels"])
    ]


async def _parent_item_keys(conn: Connection, workspace: str, parent_key: str) -> list[str]:
    """The item keys a child inherits from its stored Jira epic/parent."""
    rows = await conn.fetch(sql.PARENT_ITEM_LINKS, workspace, parent_key)
    return list(dict.fromkeys(own_item_keys([dict(r) for r in rows])))


async def _refresh_children(
    conn: Connection, workspace: str, provider: str, key: str, issue_id: UUID
) -> None:
    """Recompute the convention links of a Jira issue's direct children; emit those changed."""
    if provider != "jira":
        return
    for child in await conn.fetch(sql.LOCK_JIRA_CHILDREN, workspace, key):
        if child["id"] == issue_id:
            continue
        before = await read_links(conn, child["id"])
        fields = {name: child[name] for name in sql.MUTABLE_FIELDS}
        after = await _sync_convention_links(conn, workspace, child, fields, before)
        if after.keys() != before.keys():
            bumped = await conn.fetchrow(sql.BUMP_VERSION, child["id"])
            await announce_row(conn, workspace, bumped, after)


async def _link_keys(conn: Connection, issue_id: UUID) -> LinkKeys:
    return sorted(await read_links(conn, issue_id))


def _viewed(row: Any, links: Links) -> TrackerIssue:
    """The issue as answered, from its row and its links (read under the row's lock)."""
    return _view({**dict(row.items()), "links": as_rows(links)})


async def announce_row(conn: Connection, workspace: str, row: Any, links: Links) -> TrackerIssue:
    """Emit `tracker_issue.upserted` with the issue's whole current state; the issue."""
    issue = _viewed(row, links)
    await _emit(conn, workspace, issue.event())
    return issue


async def _announce(conn: Connection, workspace: str, issue_id: UUID) -> TrackerIssue:
    """Emit `tracker_issue.upserted` with the issue's whole current state."""
    issue = await get_tracker_issue(conn=conn, issue_id=issue_id)
    assert issue is not None  # the caller holds the row's lock
    await _emit(conn, workspace, issue.event())
    return issue


async def _emit(conn: Connection, workspace: str, data: EventData) -> None:
    traceparent = current_traceparent()
    event = make_event(data, service=SERVICE, workspace=workspace, traceparent=traceparent)
    await outbox.add(conn, event)


async def link_issue(
    *, conn: Connection, workspace: str, ref: IssueRef, target: LinkTarget, key: str
) -> TrackerIssue | None:
    """Link an issue to an item or launch explicitly (over a convention link); None if unknown."""
    row = await _locate(conn, workspace, ref)
    if row is None:
        return None
    before = await _link_keys(conn, row["id"])
    await conn.execute(sql.UPSERT_API_LINK, workspace, row["id"], target, key)
    issue = await _after_link_change(conn, workspace, row["id"], before)
    await _refresh_children(conn, workspace, row["provider"], row["key"], row["id"])
    return issue


async def unlink_issue(
    *, conn: Connection, workspace: str, ref: IssueRef, target: LinkTarget, key: str
) -> TrackerIssue | None:
    """Remove any link of an issue to an item or launch; None if the issue is unknown."""
    row = await _locate(conn, workspace, ref)
    if row is None:
        return None
    before = await _link_keys(conn, row["id"])
    await conn.execute(sql.DELETE_LINK, row["id"], target, key)
    issue = await _after_link_change(conn, workspace, row["id"], before)
    await _refresh_children(conn, workspace, row["provider"], row["key"], row["id"])
    return issue


async def _locate(conn: Connection, workspace: str, ref: IssueRef) -> Any:
    if ref.url is not None:
        return await conn.fetchrow(sql.LOCK_BY_URL, workspace, ref.url)
    row = await conn.fetchrow(sql.LOCK_BY_EXTERNAL_ID, workspace, ref.provider, ref.external_id)
    return None if row is None or row["deleted"] else row


async def _after_link_change(
    conn: Connection, workspace: str, issue_id: UUID, before: LinkKeys
) -> TrackerIssue | None:
    if await _link_keys(conn, issue_id) == before:
        return await get_tracker_issue(conn=conn, issue_id=issue_id)
    await conn.execute(sql.BUMP_VERSION, issue_id)
    return await _announce(conn, workspace, issue_id)


async def get_tracker_issue(*, conn: Connection, issue_id: UUID) -> TrackerIssue | None:
    """One (not deleted) tracker issue of the transaction's workspace."""
    row = await conn.fetchrow(sql.SELECT_ISSUE, issue_id)
    return _view(row) if row is not None else None


async def list_tracker_issues(
    *,
    conn: Connection,
    limit: int,
    after: tuple[datetime | None, UUID | None],
    filters: TrackerIssueFilters,
) -> list[TrackerIssue]:
    """Tracker issues, most recently changed first, narrowed by `filters`, after a position."""
    f = filters
    item = f.item.upper() if f.item else None
    values = (f.provider, f.state, f.kind, f.priority, f.blocker, item, f.launch, f.cycle)
    rows = await conn.fetch(sql.LIST_ISSUES, *values, *after, limit)
    return [_view(row) for row in rows]


def _view(row: Any) -> TrackerIssue:
    fields = dict(row.items())
    links = [TrackerLink(**link) for link in fields.pop("links")]
    return TrackerIssue(
        **fields,
        item_keys=[link.key for link in links if link.target == "item"],
        launch_keys=[link.key for link in links if link.target == "launch"],
        links=links,
    )
