"""A deliberately naive reference of roadmap's tracker rules: operations in, issues and links out.

Pure Python, one operation at a time, everything recomputed from the whole state: no batches, no
plans of what changed, no SQL. The field merge (`merged_fields`) and what an issue's fields name
(`convention_keys`) are the rules themselves and are used as they are; links, Jira inheritance,
children, versions and events are restated here from design.md §4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roadmap.tracker_merge import ExplicitLink, Operation
from roadmap.tracker_rules import MUTABLE_FIELDS, convention_keys, merged_fields
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels

Ident = tuple[str, str]


@dataclass
class Issue:
    """One issue: its fields, its links (target, key) -> by, its version."""

    fields: dict[str, Any]
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    version: int = 0


@dataclass
class Reference:
    """The issues of one workspace, and the events (ident, type, data) in the order made."""

    issues: dict[Ident, Issue] = field(default_factory=dict)
    events: list[tuple[Ident, str, dict[str, Any]]] = field(default_factory=list)

    def apply(self, operation: Operation) -> None:
        """Apply one operation, as one transaction of its own would."""
        ident = (operation.provider, operation.external_id)
        if isinstance(operation, ExplicitLink):
            self._explicit(ident, operation)
        elif operation.deleted:
            self._delete(ident)
        else:
            self._upsert(ident, operation)

    def _upsert(self, ident: Ident, snapshot: TrackerIssueSnapshot) -> None:
        issue = self.issues.get(ident)
        if issue is None:
            issue = self.issues[ident] = Issue(merged_fields(None, snapshot))
            issue.links = self._named_links(ident, issue.fields, {})
            self._announce(ident)
            self._recompute_children(ident)
            return
        fields = merged_fields(issue.fields, snapshot)
        links = self._named_links(ident, fields, issue.links)
        if fields == issue.fields and links == issue.links:
            return
        moved = set(links) != set(issue.links) or fields["key"] != issue.fields["key"]
        issue.fields, issue.links = fields, links
        self._announce(ident)
        if moved:
            self._recompute_children(ident)

    def _delete(self, ident: Ident) -> None:
        issue = self.issues.get(ident)
        if issue is None or issue.fields["deleted"]:
            return
        issue.fields = {**issue.fields, "deleted": True}
        issue.links = {link: by for link, by in issue.links.items() if by == "api"}
        issue.version += 1
        self.events.append((ident, "deleted", {"version": issue.version}))
        self._recompute_children(ident)

    def _explicit(self, ident: Ident, change: ExplicitLink) -> None:
        issue = self.issues.get(ident)
        if issue is None or issue.fields["deleted"]:
            return
        before = set(issue.links)
        link = (change.target, change.key)
        issue.links.pop(link, None)
        if change.linked:
            issue.links[link] = "api"
        if set(issue.links) != before:
            self._announce(ident)
        self._recompute_children(ident)

    def _named_links(
        self, ident: Ident, fields: dict[str, Any], links: dict[tuple[str, str], str]
    ) -> dict[tuple[str, str], str]:
        """Explicit links as they are, then every convention link the fields name."""
        items, launches = convention_keys(ident[0], fields)
        if ident[0] == "jira" and fields["parent_key"]:
            items = [*items, *self._parent_items(fields["parent_key"])]
        named = {("item", key) for key in items} | {("launch", key) for key in launches}
        out = {link: by for link, by in links.items() if by == "api"}
        for link in named:
            out.setdefault(link, "convention")
        return out

    def _parent_items(self, parent_key: str) -> list[str]:
        """What every stored Jira issue of this key links by itself: explicitly or by label."""
        found = []
        for (provider, _), parent in self.issues.items():
            if provider != "jira" or parent.fields["deleted"] or parent.fields["key"] != parent_key:
                continue
            labelled = item_keys_from_labels(parent.fields["labels"])
            found += [
                key
                for (target, key), by in parent.links.items()
                if target == "item" and (by == "api" or key in labelled)
            ]
        return found

    def _recompute_children(self, ident: Ident) -> None:
        parent = self.issues[ident]
        if ident[0] != "jira":
            return
        for child_ident, child in self.issues.items():
            if (
                child_ident == ident
                or child_ident[0] != "jira"
                or child.fields["deleted"]
                or child.fields["parent_key"] != parent.fields["key"]
            ):
                continue
            links = self._named_links(child_ident, child.fields, child.links)
            if set(links) != set(child.links):
                child.links = links
                self._announce(child_ident)

    def _announce(self, ident: Ident) -> None:
        issue = self.issues[ident]
        issue.version += 1
        data = {name: issue.fields[name] for name in MUTABLE_FIELDS}
        data["version"] = issue.version
        data["item_keys"] = sorted(k for t, k in issue.links if t == "item")
        data["launch_keys"] = sorted(k for t, k in issue.links if t == "launch")
        self.events.append((ident, "upserted", data))
