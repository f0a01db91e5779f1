"""A batch of tracker operations merged in order over the issues they touch, without I/O.

`roadmap.tracker_write` loads every issue a batch can reach (the issues named, and for Jira the
stored parents and children of their keys), this module applies the snapshots and explicit link
changes one after another in memory, exactly as one transaction per operation would, and the
writer stores the end state in a fixed number of statements. Each operation that changes an issue
is one new version with its event, so a batch of one and a batch of many agree.

Jira: an issue is linked to the items its epic/parent links by itself (explicitly or by its
labels; inherited links are not passed on further). When an issue's item links or key change,
or it is created or deleted, or its links are changed over the API, its direct children are
recomputed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from prodops.contract import EventData, TrackerIssueDeleted, TrackerIssueUpserted, new_id
from roadmap.tracker_rules import (
    MUTABLE_FIELDS,
    Links,
    convention_keys,
    merged_fields,
    own_item_keys,
    plan,
)
from roadmap.tracker_snapshot import TrackerIssueSnapshot

LinkTarget = Literal["item", "launch"]
Ident = tuple[str, str]  # (provider, external id)


@dataclass(frozen=True)
class ExplicitLink:
    """A link made (`linked`) or removed over the API; explicit links win over conventions."""

    provider: str
    external_id: str
    target: LinkTarget
    key: str
    linked: bool


Operation = TrackerIssueSnapshot | ExplicitLink


@dataclass
class IssueState:
    """One issue as loaded, and as the batch leaves it: its row (every column) and its links."""

    row: dict[str, Any]
    links: Links
    loaded: Mapping[str, Any] | None = None  # None: the batch creates it
    loaded_links: Links = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the batch wrote a new version."""
        return self.loaded is None or self.row["version"] != self.loaded["version"]


def upserted(row: Mapping[str, Any], links: Links) -> TrackerIssueUpserted:
    """The `tracker_issue.upserted` data of an issue's row and links."""
    fields = {name: row[name] for name in TrackerIssueUpserted.model_fields if name in row}
    ordered = sorted(links)
    return TrackerIssueUpserted(
        **fields,
        item_keys=[key for target, key in ordered if target == "item"],
        launch_keys=[key for target, key in ordered if target == "launch"],
    )


class TrackerBatch:
    """The issues a batch may touch, one workspace's, and the events its operations emit."""

    def __init__(
        self,
        workspace: str,
        now: datetime,
        loaded: Iterable[tuple[Mapping[str, Any], Links]],
        make_id: Callable[[], UUID] = new_id,
    ) -> None:
        self.workspace, self.now, self._make_id = workspace, now, make_id
        self.issues: dict[UUID, IssueState] = {}
        self._by_ident: dict[Ident, UUID] = {}
        self.events: list[EventData] = []
        for row, links in loaded:
            state = IssueState(dict(row), dict(links), row, dict(links))
            self._add(state)

    def _add(self, state: IssueState) -> None:
        self.issues[state.row["id"]] = state
        self._by_ident[state.row["provider"], state.row["external_id"]] = state.row["id"]

    def find(self, provider: str, external_id: str) -> IssueState | None:
        """The issue of this tracker and external id, deleted or not; None if never stored."""
        issue_id = self._by_ident.get((provider, external_id))
        return None if issue_id is None else self.issues[issue_id]

    def apply(self, operation: Operation) -> IssueState | None:
        """Apply one operation; the issue it leaves, None when deleted or unknown."""
        if isinstance(operation, ExplicitLink):
            return self._link(operation)
        return self._snapshot(operation)

    def _snapshot(self, snapshot: TrackerIssueSnapshot) -> IssueState | None:
        issue = self.find(snapshot.provider, snapshot.external_id)
        if issue is None:
            return None if snapshot.deleted else self._create(snapshot)
        if snapshot.deleted:
            self._delete(issue)
            return None
        row = issue.row
        fields = merged_fields(row, snapshot)
        before = issue.links
        after = self._convention_links(row["provider"], fields, before)
        if all(row[name] == fields[name] for name in MUTABLE_FIELDS) and after == before:
            return issue
        key_before = row["key"]
        row.update(fields)
        issue.links = after
        self._announce(issue)
        if after.keys() != before.keys() or fields["key"] != key_before:
            self._refresh_children(issue)
        return issue

    def _create(self, snapshot: TrackerIssueSnapshot) -> IssueState:
        fields = merged_fields(None, snapshot)
        row = {
            "id": self._make_id(),
            "workspace": self.workspace,
            "provider": snapshot.provider,
            "external_id": snapshot.external_id,
            "version": 0,
            "updated_at": self.now,
            **fields,
        }
        issue = IssueState(row, {})
        self._add(issue)
        issue.links = self._convention_links(snapshot.provider, fields, {})
        self._announce(issue)
        self._refresh_children(issue)
        return issue

    def _delete(self, issue: IssueState) -> None:
        """Mark the issue deleted and drop its convention links (explicit ones stay)."""
        if issue.row["deleted"]:
            return
        issue.links = {link: by for link, by in issue.links.items() if by == "api"}
        issue.row.update(deleted=True, version=issue.row["version"] + 1, updated_at=self.now)
        self.events.append(TrackerIssueDeleted(id=issue.row["id"], version=issue.row["version"]))
        self._refresh_children(issue)

    def _link(self, change: ExplicitLink) -> IssueState | None:
        issue = self.find(change.provider, change.external_id)
        if issue is None or issue.row["deleted"]:
            return None
        before = set(issue.links)
        link = (change.target, change.key)
        if change.linked:
            issue.links = {**issue.links, link: "api"}
        else:
            issue.links = {k: by for k, by in issue.links.items() if k != link}
        if set(issue.links) != before:
            self._announce(issue)
        self._refresh_children(issue)
        return issue

    def _convention_links(self, provider: str, fields: Mapping[str, Any], current: Links) -> Links:
        """The issue's links once its convention links are what its fields name."""
        items, launches = convention_keys(provider, fields)
        if provider == "jira" and fields["parent_key"]:
            items = list(dict.fromkeys([*items, *self._inherited(fields["parent_key"])]))
        return plan(current, items, launches).after

    def _inherited(self, parent_key: str) -> list[str]:
        """The item keys the children of a Jira key inherit from the stored issues of that key."""
        keys: list[str] = []
        for parent in self._jira_issues(lambda row: row["key"] == parent_key):
            keys += own_item_keys(parent.row["labels"], parent.links)
        return list(dict.fromkeys(keys))

    def _refresh_children(self, issue: IssueState) -> None:
        """Recompute the convention links of a Jira issue's direct children; announce changes."""
        row = issue.row
        if row["provider"] != "jira":
            return
        children = self._jira_issues(
            lambda child: child["parent_key"] == row["key"] and child["id"] != row["id"]
        )
        for child in sorted(children, key=lambda c: c.row["id"]):
            after = self._convention_links("jira", child.row, child.links)
            if after.keys() != child.links.keys():
                child.links = after
                self._announce(child)

    def _jira_issues(self, where: Callable[[Mapping[str, Any]], bool]) -> list[IssueState]:
        return [
            state
            for state in self.issues.values()
            if state.row["provider"] == "jira" and not state.row["deleted"] and where(state.row)
        ]

    def _announce(self, issue: IssueState) -> None:
        """A new version of the issue, and its `tracker_issue.upserted` with its whole state."""
        issue.row.update(version=issue.row["version"] + 1, updated_at=self.now)
        self.events.append(upserted(issue.row, issue.links))
