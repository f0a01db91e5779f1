"""Roadmap rules that need no I/O: objectives, items, launches and their checklists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prodops.contract import ChecklistEntry, ItemUpserted, LaunchUpserted

ObjectiveStatus = Literal["active", "achieved", "dropped"]
ItemStatus = Literal["idea", "planned", "in_progress", "shipped", "dropped"]
Horizon = Literal["now", "next", "later"]
LaunchStatus = Literal["planned", "in_progress", "launched", "cancelled"]
ChecklistCategory = Literal[
    "engineering", "qa", "docs", "support", "marketing", "legal", "sales", "other"
]
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
PREFIX_PATTERN = r"^[A-Z][A-Z0-9]{0,19}$"


def _refuse_nulls(model: BaseModel, names: tuple[str, ...]) -> None:
    for name in names:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


def _check_period(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError("period_end must not be before period_start")


class ObjectiveInput(BaseModel):
    """What a caller sends to create an objective."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    weight: float = Field(default=1, gt=0, le=1_000_000)
    status: ObjectiveStatus = "active"
    period_start: date | None = None
    period_end: date | None = None
    parent_id: UUID | None = None

    @model_validator(mode="after")
    def _period(self) -> ObjectiveInput:
        _check_period(self.period_start, self.period_end)
        return self


class ObjectivePatch(BaseModel):
    """A partial change of an objective: only the fields sent change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    weight: float | None = Field(default=None, gt=0, le=1_000_000)
    status: ObjectiveStatus | None = None
    period_start: date | None = None
    period_end: date | None = None
    parent_id: UUID | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> ObjectivePatch:
        _refuse_nulls(self, ("name", "description", "weight", "status"))
        return self


class Objective(BaseModel):
    """An objective as the API shows it."""

    id: UUID
    name: str
    description: str
    weight: float
    status: ObjectiveStatus
    period_start: date | None
    period_end: date | None
    parent_id: UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class ItemInput(BaseModel):
    """What a caller sends to create a roadmap item; its key is handed out by the workspace."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=100_000)
    status: ItemStatus = "idea"
    horizon: Horizon | None = None
    effort: float = Field(default=1, gt=0, le=1_000_000)
    area: str | None = Field(default=None, min_length=1, max_length=200)
    objective_ids: list[UUID] = Field(default_factory=list, max_length=100)
    launch_id: UUID | None = None
    parent_id: UUID | None = None


class ItemPatch(BaseModel):
    """A partial change of an item: only the fields sent change; the key never does."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=100_000)
    status: ItemStatus | None = None
    horizon: Horizon | None = None
    effort: float | None = Field(default=None, gt=0, le=1_000_000)
    area: str | None = Field(default=None, min_length=1, max_length=200)
    objective_ids: list[UUID] | None = Field(default=None, max_length=100)
    launch_id: UUID | None = None
    parent_id: UUID | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> ItemPatch:
        _refuse_nulls(self, ("title", "description", "status", "effort", "objective_ids"))
        return self


class DeliveryRollup(BaseModel):
    """The tracker issues linked to an item or launch: how many, how many closed, their points."""

    model_config = ConfigDict(frozen=True)

    issues_total: int = 0
    issues_open: int = 0
    issues_closed: int = 0
    estimate_total: float = Field(default=0, description="Estimates summed; none counts 0")
    estimate_done: float = Field(default=0, description="Estimates of the closed issues")


class Item(ItemUpserted):
    """A roadmap item as the API shows it: its event state, plus what only the API shows."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    description: str
    launch_id: UUID | None
    parent_id: UUID | None
    created_at: datetime
    delivery: DeliveryRollup = Field(default_factory=DeliveryRollup)

    def event(self) -> ItemUpserted:
        """The `item.upserted` data of this state."""
        return ItemUpserted.model_validate(self.model_dump(include=set(ItemUpserted.model_fields)))


class ItemFilters(BaseModel):
    """What a list of items is narrowed to; every filter given must hold."""

    model_config = ConfigDict(frozen=True)

    status: ItemStatus | None = None
    horizon: Horizon | None = None
    objective: UUID | None = Field(default=None, description="Linked objective id")
    launch: str | None = Field(
        default=None, pattern=KEY_PATTERN, description="Launch key the item ships in"
    )
    area: str | None = Field(default=None, min_length=1, max_length=200)


class StatusChange(BaseModel):
    """One entry of an item's status history."""

    from_status: ItemStatus | None
    to_status: ItemStatus
    changed_at: datetime


class ItemKeyPrefix(BaseModel):
    """The prefix of the keys a workspace's new items get (`<PREFIX>-<n>`)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(pattern=PREFIX_PATTERN, description="Upper-case letters and digits")


class ChecklistEntryInput(BaseModel):
    """One checklist entry as a caller sends it; a new entry gets an id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: UUID | None = None
    title: str = Field(min_length=1, max_length=500)
    category: ChecklistCategory = "other"
    required: bool = True
    done: bool = False
    owner: str | None = Field(default=None, max_length=200)
    due_date: date | None = None


class ChecklistEntryPatch(BaseModel):
    """A partial change of one checklist entry (ticking `done`, mostly)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=500)
    category: ChecklistCategory | None = None
    required: bool | None = None
    done: bool | None = None
    owner: str | None = Field(default=None, max_length=200)
    due_date: date | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> ChecklistEntryPatch:
        _refuse_nulls(self, ("title", "category", "required", "done"))
        return self


class TemplateEntry(BaseModel):
    """One entry of the workspace's checklist template, copied into every new launch."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=500)
    category: ChecklistCategory = "other"
    required: bool = True
    owner: str | None = Field(default=None, max_length=200)


class ChecklistTemplate(BaseModel):
    """The entries every new launch starts with."""

    model_config = ConfigDict(extra="forbid")

    entries: list[TemplateEntry] = Field(default_factory=list, max_length=200)


class Checklist(BaseModel):
    """A launch's whole checklist as a caller sends it; entries sent without an id are new."""

    model_config = ConfigDict(extra="forbid")

    entries: list[ChecklistEntryInput] = Field(default_factory=list, max_length=200)


class LaunchInput(BaseModel):
    """What a caller sends to create a launch; without a checklist it gets the template's."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    target_date: date | None = None
    status: LaunchStatus = "planned"
    checklist: list[ChecklistEntryInput] | None = Field(default=None, max_length=200)


class LaunchPatch(BaseModel):
    """A partial change of a launch; its key never changes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=300)
    target_date: date | None = None
    status: LaunchStatus | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> LaunchPatch:
        _refuse_nulls(self, ("name", "status"))
        return self


class Launch(LaunchUpserted):
    """A launch as the API shows it: its event state and when it was created."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    created_at: datetime
    delivery: DeliveryRollup = Field(default_factory=DeliveryRollup)

    def event(self) -> LaunchUpserted:
        """The `launch.upserted` data of this state."""
        fields = set(LaunchUpserted.model_fields)
        return LaunchUpserted.model_validate(self.model_dump(include=fields))


def checklist_of(
    entries: list[ChecklistEntryInput], new_id: Callable[[], UUID]
) -> list[ChecklistEntry]:
    """Entries as stored: each keeps the id it was sent with, or gets a new one."""
    return [
        ChecklistEntry(**entry.model_dump(exclude={"id"}), id=entry.id or new_id())
        for entry in entries
    ]


def seeded_checklist(
    template: ChecklistTemplate, new_id: Callable[[], UUID]
) -> list[ChecklistEntry]:
    """A new launch's checklist from the workspace template: every entry open."""
    return [ChecklistEntry(**entry.model_dump(), id=new_id()) for entry in template.entries]


def item_key(prefix: str, number: int) -> str:
    """The key of a workspace's n-th item under its prefix (`CK-12`)."""
    return f"{prefix}-{number}"
