"""Tracker issues: deliveries from GitHub, GitLab, Jira and Linear, their links, their answers.

Every change to an issue goes through `roadmap.tracker_write.apply_operations`, the one path:
the webhook normaliser (a batch of one workspace's deliveries, or of one in the careful pass and
on replay) and the explicit links made and removed over the API. The rules of merging and
linking are in `roadmap.tracker_rules` and `roadmap.tracker_merge`. Roadmap stores and publishes
the facts (labels, priority, kind); whether an issue blocks a launch is the workspace's
readiness policy, evaluated in insights.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prodops.contract import TrackerIssueUpserted
from prodops.runtime.db import Connection
from prodops.webhooks.intake import Delivery
from prodops.webhooks.provider import Provider
from roadmap import tracker_sql as sql
from roadmap.gitlab_milestones import titled
from roadmap.tracker_merge import ExplicitLink, IssueState, LinkTarget
from roadmap.tracker_rules import as_rows
from roadmap.tracker_snapshot import TrackerName
from roadmap.tracker_write import apply_operations
from roadmap.webhooks import Snapshots, github, gitlab, jira, linear

_TRACKERS = (github, gitlab, jira, linear)
PROVIDERS: dict[str, Provider] = {m.PROVIDER.name: m.PROVIDER for m in _TRACKERS}
_SNAPSHOTS: dict[str, Snapshots] = {m.PROVIDER.name: m.snapshots for m in _TRACKERS}


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
    item: str | None = Field(default=None, max_length=100, description="Linked item key")
    launch: str | None = Field(default=None, max_length=100, description="Linked launch key")
    cycle: str | None = Field(
        default=None, max_length=200, description="Linear cycle: its id, number or name"
    )


async def normalise_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[bool]:
    """Apply one workspace's stored deliveries in order; for each, whether it named an issue."""
    if not deliveries:
        return []
    found = [_SNAPSHOTS[d.provider](d.event_type, orjson.loads(d.body)) for d in deliveries]
    found = await titled(conn, deliveries, found)
    snapshots = [snapshot for named in found for snapshot in named]
    await apply_operations(conn, deliveries[0].workspace, snapshots)
    return [bool(named) for named in found]


async def link_issue(
    *, conn: Connection, workspace: str, ref: IssueRef, target: LinkTarget, key: str
) -> TrackerIssue | None:
    """Link an issue to an item or launch explicitly (over a convention link); None if unknown."""
    return await _change_link(conn, workspace, ref, target, key, linked=True)


async def unlink_issue(
    *, conn: Connection, workspace: str, ref: IssueRef, target: LinkTarget, key: str
) -> TrackerIssue | None:
    """Remove any link of an issue to an item or launch; None if the issue is unknown."""
    return await _change_link(conn, workspace, ref, target, key, linked=False)


async def _change_link(
    conn: Connection, workspace: str, ref: IssueRef, target: LinkTarget, key: str, *, linked: bool
) -> TrackerIssue | None:
    if ref.url is not None:
        found = await conn.fetchrow(sql.LOCK_BY_URL, workspace, ref.url)
        if found is None:
            return None
        provider, external_id = found["provider"], found["external_id"]
    else:
        provider, external_id = str(ref.provider), str(ref.external_id)
    change = ExplicitLink(provider, external_id, target, key, linked=linked)
    _, [issue] = await apply_operations(conn, workspace, [change])
    return None if issue is None else viewed(issue)


def viewed(issue: IssueState) -> TrackerIssue:
    """The issue as answered, from its row and links as a batch left them."""
    return _view({**issue.row, "links": as_rows(issue.links)})


async def get_tracker_issue(*, conn: Connection, issue_id: UUID) -> TrackerIssue | None:
    """One (not deleted) tracker issue of the transaction's workspace."""
    row = await conn.fetchrow(sql.SELECT_ISSUE, issue_id)
    return _view(dict(row.items())) if row is not None else None


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
    values = (f.provider, f.state, f.kind, f.priority, item, f.launch, f.cycle)
    rows = await conn.fetch(sql.LIST_ISSUES, *values, *after, limit)
    return [_view(dict(row.items())) for row in rows]


def _view(fields: dict[str, Any]) -> TrackerIssue:
    links = [TrackerLink(**link) for link in fields.pop("links")]
    return TrackerIssue(
        **fields,
        item_keys=[link.key for link in links if link.target == "item"],
        launch_keys=[link.key for link in links if link.target == "launch"],
        links=links,
    )
