"""The catalogue of design.md §3: the `data` of every event type, by the service that emits it.

Every event is a fact in the past tense, versioned in its type (`prodops.feedback.received.v1`).
State-carrying events (`*.upserted`, and every `feedback.*` but `feedback.deleted`) carry the
aggregate's `version`; consumers apply one only when it is newer than what they hold.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prodops.contract.base import EventData, Priority, StateData, TrackerPriority

# --- feedback service ---------------------------------------------------------------------------


class FeedbackSource(BaseModel):
    """Where a feedback item came from."""

    model_config = ConfigDict(frozen=True)

    provider: str
    source_id: UUID | None = None
    external_id: str | None = None
    url: str | None = None


class Customer(BaseModel):
    """The person who gave the feedback."""

    model_config = ConfigDict(frozen=True)

    external_id: str | None = None
    email: str | None = None
    name: str | None = None


class FeedbackState(StateData):
    """The whole state of a feedback item."""

    id: UUID
    source: FeedbackSource
    title: str
    body: str = ""
    customer: Customer | None = None
    account_external_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    priority: Priority = "normal"
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    status: Literal["open", "archived"] = "open"
    item_keys: list[str] = Field(default_factory=list)
    merged_into: UUID | None = None
    created_at: datetime


class FeedbackReceived(FeedbackState):
    """A feedback item was received (from a support desk, the API or an import)."""

    TYPE = "prodops.feedback.received.v1"


class FeedbackUpdated(FeedbackState):
    """A feedback item changed."""

    TYPE = "prodops.feedback.updated.v1"


class FeedbackLinked(EventData):
    """A feedback item was linked to a roadmap item."""

    TYPE = "prodops.feedback.linked.v1"
    SUBJECT_FIELD = "feedback_id"
    feedback_id: UUID
    item_key: str
    by: Literal["tag", "api"]
    version: int = Field(ge=1)


class FeedbackUnlinked(FeedbackLinked):
    """A feedback item was unlinked from a roadmap item."""

    TYPE = "prodops.feedback.unlinked.v1"


class FeedbackMerged(EventData):
    """A duplicate feedback item was folded into another."""

    TYPE = "prodops.feedback.merged.v1"
    SUBJECT_FIELD = "feedback_id"
    feedback_id: UUID
    into_id: UUID
    version: int = Field(ge=1)


class FeedbackDeleted(EventData):
    """A feedback item was deleted."""

    TYPE = "prodops.feedback.deleted.v1"
    id: UUID
    version: int = Field(ge=1)


class AccountUpserted(StateData):
    """A customer account was created or changed."""

    TYPE = "prodops.account.upserted.v1"
    SUBJECT_FIELD = "external_id"
    external_id: str
    name: str | None = None
    arr: float = Field(default=0, ge=0)
    segment: str | None = None
    plan: str | None = None


# --- roadmap service ----------------------------------------------------------------------------


class ObjectiveUpserted(StateData):
    """An objective was created or changed."""

    TYPE = "prodops.objective.upserted.v1"
    id: UUID
    name: str
    weight: float = Field(gt=0)
    status: Literal["active", "achieved", "dropped"]
    period_start: date | None = None
    period_end: date | None = None
    parent_id: UUID | None = None


class Deleted(EventData):
    """An aggregate was deleted; `version` orders it after its last upsert."""

    id: UUID
    version: int = Field(ge=1)


class ObjectiveDeleted(Deleted):
    """An objective was deleted."""

    TYPE = "prodops.objective.deleted.v1"


class ItemUpserted(StateData):
    """A roadmap item was created or changed."""

    TYPE = "prodops.item.upserted.v1"
    id: UUID
    key: str
    title: str
    status: Literal["idea", "planned", "in_progress", "shipped", "dropped"]
    horizon: Literal["now", "next", "later"] | None = None
    effort: float = Field(default=1, gt=0)
    area: str | None = None
    objective_ids: list[UUID] = Field(default_factory=list)
    launch_key: str | None = None
    parent_key: str | None = None
    shipped_at: datetime | None = None


class ItemDeleted(Deleted):
    """A roadmap item was deleted."""

    TYPE = "prodops.item.deleted.v1"
    key: str


class ChecklistEntry(BaseModel):
    """One entry of a launch checklist."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    title: str
    category: Literal[
        "engineering", "qa", "docs", "support", "marketing", "legal", "sales", "other"
    ]
    required: bool = True
    done: bool = False
    owner: str | None = None
    due_date: date | None = None


class LaunchUpserted(StateData):
    """A launch was created or changed (its checklist included)."""

    TYPE = "prodops.launch.upserted.v1"
    id: UUID
    key: str
    name: str
    target_date: date | None = None
    status: Literal["planned", "in_progress", "launched", "cancelled"]
    item_keys: list[str] = Field(default_factory=list)
    checklist: list[ChecklistEntry] = Field(default_factory=list)


class LaunchDeleted(Deleted):
    """A launch was deleted."""

    TYPE = "prodops.launch.deleted.v1"
    key: str


class TrackerCycle(BaseModel):
    """The Linear cycle an issue is in: its id, and its number and name when Linear sent them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    # Numbers count up per Linear team, so only the id tells two teams' cycles apart.
    number: int | None = None
    name: str | None = None


class TrackerIssueUpserted(StateData):
    """An issue-tracker issue (or pull request) was created or changed: the tracker's facts.

    Whether it blocks a launch is the workspace's readiness policy, evaluated in insights. Events
    written before that carry a `blocker` verdict too: it is dropped when read, so the stream
    still replays (any other unknown field is still refused).
    """

    TYPE = "prodops.tracker_issue.upserted.v1"
    id: UUID
    provider: Literal["github", "gitlab", "jira", "linear"]
    external_id: str
    key: str
    url: str | None = None
    title: str
    state: Literal["open", "closed"]
    kind: Literal["bug", "feature", "task"]
    priority: TrackerPriority = "none"
    labels: list[str] = Field(default_factory=list)
    estimate: float | None = None
    item_keys: list[str] = Field(default_factory=list)
    launch_keys: list[str] = Field(default_factory=list)
    created_at: datetime
    closed_at: datetime | None = None
    cycle: TrackerCycle | None = Field(default=None, description="Linear only; null elsewhere")

    @model_validator(mode="before")
    @classmethod
    def _retired_blocker(cls, data: Any) -> Any:
        """Drop the `blocker` verdict that events published before v1's facts-only data carry."""
        if isinstance(data, dict) and "blocker" in data:
            return {name: value for name, value in data.items() if name != "blocker"}
        return data


class TrackerIssueDeleted(Deleted):
    """A tracker issue was deleted or transferred away."""

    TYPE = "prodops.tracker_issue.deleted.v1"


# --- insights service ---------------------------------------------------------------------------


class Reason(BaseModel):
    """Why a signal is what it is, with the ids that show it."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    evidence: list[str] = Field(default_factory=list)


T = TypeVar("T")


class Change(BaseModel, Generic[T]):
    """A value before and after."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: T | None = Field(default=None, alias="from")
    to: T


class LaunchReadinessChanged(EventData):
    """A launch's readiness status changed, or its score moved into another 10-point band."""

    TYPE = "prodops.signal.launch_readiness.changed.v1"
    SUBJECT_FIELD = "launch_key"
    launch_key: str
    status: Change[str]
    score: Change[float]
    components: dict[str, float]
    reasons: list[Reason]


class AlignmentChanged(EventData):
    """Alignment of a workspace (area null) or of one product area moved."""

    TYPE = "prodops.signal.alignment.changed.v1"
    SUBJECT_FIELD = "scope"
    area: str | None = None
    alignment: Change[float]
    strategic: Change[float]
    customer: Change[float]
    reasons: list[Reason]

    @property
    def scope(self) -> str:
        """The subject: the area, or `workspace` for the whole workspace."""
        return self.area or "workspace"


# What each service emits (the design's table of services); each service's app declares its own.
EMITTED_BY: dict[str, tuple[type[EventData], ...]] = {
    "feedback": (
        FeedbackReceived,
        FeedbackUpdated,
        FeedbackLinked,
        FeedbackUnlinked,
        FeedbackMerged,
        FeedbackDeleted,
        AccountUpserted,
    ),
    "roadmap": (
        ObjectiveUpserted,
        ObjectiveDeleted,
        ItemUpserted,
        ItemDeleted,
        LaunchUpserted,
        LaunchDeleted,
        TrackerIssueUpserted,
        TrackerIssueDeleted,
    ),
    "insights": (LaunchReadinessChanged, AlignmentChanged),
}
CATALOGUE: dict[str, type[EventData]] = {
    model.TYPE: model for models in EMITTED_BY.values() for model in models
}
