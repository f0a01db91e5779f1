"""The vocabulary of facts: the aggregates insights keeps, and what a batch of events touched.

Facts are the typed latest state of each aggregate (`insights.projection` keeps them); the
contributions and signals read them, and a `Touch` names what a batch's changes moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from prodops.contract import (
    AccountUpserted,
    FeedbackDeleted,
    FeedbackReceived,
    FeedbackUpdated,
    ItemDeleted,
    ItemUpserted,
    LaunchDeleted,
    LaunchUpserted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
)

COMMITTED = frozenset({"planned", "in_progress"})


@dataclass
class Touch:
    """What the events of a batch changed, in one workspace: the work left for its end."""

    groups: set[UUID] = field(default_factory=set)
    items: set[UUID] = field(default_factory=set)
    item_keys: set[str] = field(default_factory=set)
    launches: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    all_scopes: bool = False

    def update(self, other: Touch) -> None:
        """Add what `other` touched."""
        self.groups |= other.groups
        self.items |= other.items
        self.item_keys |= other.item_keys
        self.launches |= other.launches
        self.scopes |= other.scopes
        self.all_scopes |= other.all_scopes


# The aggregate (the version gate's `projection.aggregate`) of each event type insights applies.
AGGREGATES: dict[str, str] = {
    FeedbackReceived.TYPE: "feedback",
    FeedbackUpdated.TYPE: "feedback",
    FeedbackDeleted.TYPE: "feedback",
    AccountUpserted.TYPE: "account",
    ObjectiveUpserted.TYPE: "objective",
    ObjectiveDeleted.TYPE: "objective",
    ItemUpserted.TYPE: "item",
    ItemDeleted.TYPE: "item",
    LaunchUpserted.TYPE: "launch",
    LaunchDeleted.TYPE: "launch",
    TrackerIssueUpserted.TYPE: "tracker_issue",
    TrackerIssueDeleted.TYPE: "tracker_issue",
}
