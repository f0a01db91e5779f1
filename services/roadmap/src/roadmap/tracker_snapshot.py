"""Tracker issues, tracker-neutral: the snapshot one event gives, and the normalising rules.

Every vendor module (`roadmap.webhooks.*`) turns its payload into a `TrackerIssueSnapshot` with
these helpers, so priority, kind and item links read the same from GitHub, GitLab, Jira and Linear.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prodops.contract import TrackerCycle, TrackerPriority

TrackerName = Literal["github", "gitlab", "jira", "linear"]
IssueKind = Literal["bug", "feature", "task"]
ClearableField = Literal["milestone", "cycle", "project"]

_PRIORITY_LABEL = re.compile(r"^(?:p([0-3])|priority[:/ -](urgent|critical|high|medium|low|none))$")
_BY_NUMBER: dict[str, TrackerPriority] = {"0": "urgent", "1": "high", "2": "medium", "3": "low"}
_BY_WORD: dict[str, TrackerPriority] = {
    "urgent": "urgent",
    "critical": "urgent",
    "high": "high",
    "medium": "medium",
    "low": "low",
    "none": "none",
}
_JIRA_PRIORITY: dict[str, TrackerPriority] = {
    "highest": "urgent",
    "blocker": "urgent",
    "critical": "urgent",
    "high": "high",
    "major": "high",
    "medium": "medium",
    "low": "low",
    "minor": "low",
    "lowest": "low",
    "trivial": "low",
}
_LINEAR_PRIORITY: dict[int, TrackerPriority] = {
    0: "none",
    1: "urgent",
    2: "high",
    3: "medium",
    4: "low",
}
_BUG = {"bug", "type:bug", "kind/bug", "type/bug", "defect", "incident"}
_FEATURE = {"feature", "enhancement", "type:feature", "kind/feature", "type/feature", "story"}


class TrackerIssueSnapshot(BaseModel):
    """What one tracker event says about an issue (or pull/merge request), tracker-neutral.

    A field left None is not known from this event and stays as stored, unless it is named in
    `cleared` (the event says it is empty). Links follow design.md §4: labels
    `roadmap:<item-key>`, and the milestone / fixVersions / Linear project named with a launch key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: TrackerName
    external_id: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=300, description="acme/shop#17, SHOP-77, ENG-12")
    url: str | None = None
    title: str | None = None
    state: Literal["open", "closed"] | None = None
    state_reason: str | None = None
    kind: IssueKind | None = None
    priority: TrackerPriority | None = None
    labels: list[str] | None = None
    estimate: float | None = None
    assignees: list[str] | None = None
    milestone: str | None = None
    fix_versions: list[str] | None = None
    project: str | None = None
    parent_key: str | None = None
    is_pull_request: bool = False
    merged: bool | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None
    deleted: bool = False
    cycle: TrackerCycle | None = None
    # Trackers that omit empty fields (Linear) or send only an id (GitLab milestones) make None
    # ambiguous: these fields are known to be empty.
    cleared: frozenset[ClearableField] = frozenset()


def priority_from_labels(labels: list[str]) -> TrackerPriority | None:
    """`P0`..`P3` or `priority:<word>` labels, the most urgent winning; None when none match."""
    found: list[TrackerPriority] = []
    for label in labels:
        match = _PRIORITY_LABEL.fullmatch(label.strip().lower())
        if match:
            found.append(_BY_NUMBER[match[1]] if match[1] else _BY_WORD[match[2]])
    if not found:
        return None
    rank: dict[TrackerPriority, int] = {"urgent": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
    return min(found, key=rank.__getitem__)


def jira_priority(name: str | None) -> TrackerPriority:
    """Jira's priority names (Highest … Lowest, and the older Blocker … Trivial)."""
    return _JIRA_PRIORITY.get((name or "").strip().lower(), "none")


def linear_priority(value: int | None) -> TrackerPriority:
    """Linear's 0 (none), 1 (urgent) … 4 (low)."""
    return _LINEAR_PRIORITY.get(value if value is not None else 0, "none")


def kind_of(labels: list[str], issue_type: str | None = None) -> IssueKind:
    """bug, feature or task: from the tracker's issue type, else from labels."""
    if issue_type:
        lowered = issue_type.strip().lower()
        if lowered in {"bug", "defect", "incident"}:
            return "bug"
        if lowered in {"story", "feature", "epic", "new feature", "improvement"}:
            return "feature"
        return "task"
    lowered_labels = {label.strip().lower() for label in labels}
    if lowered_labels & _BUG:
        return "bug"
    if lowered_labels & _FEATURE:
        return "feature"
    return "task"


def item_keys_from_labels(labels: list[str]) -> list[str]:
    """Item keys named by `roadmap:<item-key>` labels, upper-cased, in order, once each."""
    keys: dict[str, None] = {}
    for label in labels:
        name, sep, key = label.strip().partition(":")
        if sep and name.strip().lower() == "roadmap" and key.strip():
            keys.setdefault(key.strip().upper(), None)
    return list(keys)
