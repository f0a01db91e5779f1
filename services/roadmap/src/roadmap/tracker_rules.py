"""The tracker rules that need no I/O: how a snapshot merges into an issue, what it links.

One place for them: the normaliser (`roadmap.tracker_merge`), the API and the reference
implementation in `tests/roadmap` all follow these. Links follow design.md §4: `roadmap:<item-key>`
labels name items; the milestone (GitHub, GitLab), fixVersions (Jira) or project (Linear) named
with a launch key names a launch. `convention` links are recomputed from every delivery; `api`
links are made over the API and win: a delivery never removes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodops.contract import utcnow
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels

# The fields a delivery can change, in the order the table's statements take them.
MUTABLE_FIELDS = (
    "key",
    "url",
    "title",
    "state",
    "state_reason",
    "kind",
    "priority",
    "labels",
    "estimate",
    "assignees",
    "milestone",
    "fix_versions",
    "project",
    "parent_key",
    "is_pull_request",
    "merged",
    "created_at",
    "closed_at",
    "deleted",
    "cycle",
)
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
# Set by a rule of their own (the cycle), or by what the snapshot is (deleted or not).
_DERIVED = frozenset({"deleted", "cycle"})

# (target, key) -> by: "convention" (labels, milestones, …) or "api" (explicit, which wins).
Links = dict[tuple[str, str], str]


def merged_fields(
    stored: Mapping[str, Any] | None, snapshot: TrackerIssueSnapshot
) -> dict[str, Any]:
    """The issue's fields once `snapshot` is applied over what is stored."""
    # GitLab hooks never carry the milestone's title: unknown, it stays as stored.
    keep_unknown = snapshot.provider not in _COMPLETE
    fields: dict[str, Any] = {}
    for name in MUTABLE_FIELDS:
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


def own_item_keys(labels: Sequence[str], links: Links) -> list[str]:
    """The item keys a Jira parent links by itself: explicitly, or by its `roadmap:` labels.

    What it inherits from its own parent is not passed on to its children.
    """
    named = set(item_keys_from_labels(list(labels)))
    return sorted(
        key
        for (target, key), by in links.items()
        if target == "item" and (by == "api" or key in named)
    )


@dataclass(frozen=True)
class LinkChange:
    """What naming these convention links does to an issue's links."""

    after: Links
    stale: bool  # some convention link is no longer named
    added: bool  # some named link is new


def plan(current: Links, items: Iterable[str], launches: Iterable[str]) -> LinkChange:
    """The links after making the convention links the ones named (api links stay)."""
    wanted = {("item", key) for key in items} | {("launch", key) for key in launches}
    stale = {link for link, by in current.items() if by == "convention" and link not in wanted}
    after = {link: by for link, by in current.items() if link not in stale}
    added = {link: "convention" for link in wanted if link not in current}
    return LinkChange(after | added, bool(stale), bool(added))


def as_rows(links: Links) -> list[dict[str, Any]]:
    """The links as the issue's answer lists them, ordered by target then key."""
    return [{"target": t, "key": k, "by": by} for (t, k), by in sorted(links.items())]
