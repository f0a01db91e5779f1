"""Feedback rules that need no I/O."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prodops.contract import (
    Customer,
    EventData,
    FeedbackLinked,
    FeedbackReceived,
    FeedbackSource,
    FeedbackState,
    FeedbackUnlinked,
    FeedbackUpdated,
    Priority,
)

_TAG = re.compile(r"^[^\s,]{1,100}$")
ITEM_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_ITEM_KEY = re.compile(ITEM_KEY_PATTERN)
ROADMAP_TAG_PREFIX = "roadmap-"

# The columns a snapshot or a PATCH may change; everything else is identity or bookkeeping.
MUTABLE_FIELDS = (
    "url",
    "title",
    "body",
    "customer",
    "account_external_id",
    "tags",
    "priority",
    "sentiment",
    "status",
)


class FeedbackInput(BaseModel):
    """What a caller sends to create a feedback item."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=500)
    body: str = Field(default="", max_length=100_000)
    customer: Customer | None = None
    account_external_id: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=100)
    priority: Priority = "normal"
    url: str | None = Field(default=None, max_length=2000)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("tags")
    @classmethod
    def _normalise_tags(cls, tags: list[str]) -> list[str]:
        return normalise_tags(tags)


class FeedbackPatch(BaseModel):
    """A partial change of a feedback item: only the fields sent change (JSON merge patch)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=500)
    body: str | None = Field(default=None, max_length=100_000)
    customer: Customer | None = None
    account_external_id: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=100)
    priority: Priority | None = None
    status: Literal["open", "archived"] | None = None
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("tags")
    @classmethod
    def _normalise_tags(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else normalise_tags(tags)

    @model_validator(mode="after")
    def _required_stay_set(self) -> FeedbackPatch:
        for name in ("title", "body", "tags", "priority", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def proposed(self, current_customer: Mapping[str, Any] | None) -> dict[str, Any]:
        """The sent fields as stored columns; `customer` merges into the stored one (RFC 7396)."""
        values = {name: getattr(self, name) for name in self.model_fields_set}
        if self.customer is not None:
            sent = self.customer.model_dump(include=self.customer.model_fields_set)
            merged = {**(current_customer or {}), **sent}
            values["customer"] = {k: v for k, v in merged.items() if v is not None} or None
        return values


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, de-duplicated tags in first-seen order; a tag has no spaces or commas."""
    seen: dict[str, None] = {}
    for tag in tags:
        value = tag.strip().lower()
        if not _TAG.fullmatch(value):
            raise ValueError(f"tag {tag!r} must be 1-100 characters without spaces or commas")
        seen.setdefault(value, None)
    return list(seen)


def stored_customer(customer: Customer | None) -> dict[str, Any] | None:
    """A customer as the `customer` column holds it."""
    return customer.model_dump(exclude_none=True) if customer else None


def item_key_of_tag(tag: str) -> str | None:
    """The canonical (upper-case) item key a `roadmap-<item-key>` tag names, if it names one."""
    if not tag.startswith(ROADMAP_TAG_PREFIX):
        return None
    key = tag.removeprefix(ROADMAP_TAG_PREFIX)
    return canonical_item_key(key) if _ITEM_KEY.fullmatch(key) else None


def roadmap_keys(tags: Iterable[str]) -> set[str]:
    """Every item key the tags name."""
    return {key for tag in tags if (key := item_key_of_tag(tag)) is not None}


def canonical_item_key(key: str) -> str:
    """Item keys compare case-insensitively; the stored form is upper case (`CK-12`)."""
    return key.strip().upper()


def placeholder_title(external_id: str) -> str:
    """The title of a ticket whose first event carried none."""
    return f"Ticket {external_id}"


def input_fields(data: FeedbackInput) -> dict[str, Any]:
    """The columns of an item created over the API."""
    return {
        "url": data.url,
        "title": data.title,
        "body": data.body,
        "customer": stored_customer(data.customer),
        "account_external_id": data.account_external_id,
        "tags": data.tags,
        "priority": data.priority,
        "sentiment": None,
        "status": "open",
    }


def new_ticket_fields(snapshot: TicketSnapshot) -> dict[str, Any]:
    """The columns of an item a ticket's first event creates; what it lacks takes defaults."""
    defaults: dict[str, Any] = {
        "url": None,
        "title": placeholder_title(snapshot.external_id),
        "body": "",
        "customer": None,
        "account_external_id": None,
        "tags": [],
        "priority": "normal",
        "sentiment": None,
        "status": "open",
    }
    return defaults | snapshot_fields([], snapshot)


def snapshot_tags(current: list[str], snapshot: TicketSnapshot) -> list[str]:
    """The full set a snapshot leaves: its tags if given, then its additions and removals."""
    base = current if snapshot.tags is None else snapshot.tags
    removed = set(normalise_tags(snapshot.tags_removed))
    merged = normalise_tags([*base, *snapshot.tags_added])
    return [tag for tag in merged if tag not in removed]


def snapshot_fields(current_tags: list[str], snapshot: TicketSnapshot) -> dict[str, Any]:
    """The columns a snapshot sets; a field it leaves None is not known and not proposed."""
    values: dict[str, Any] = {
        name: getattr(snapshot, name)
        for name in ("url", "title", "body", "account_external_id", "priority", "sentiment")
        if getattr(snapshot, name) is not None
    }
    if not (snapshot.title or "").strip():
        values.pop("title", None)  # a blank title says nothing; the stored one stays
    if snapshot.status is not None:
        values["status"] = snapshot.status
    if snapshot.customer is not None:
        values["customer"] = stored_customer(snapshot.customer)
    if snapshot.tags is not None or snapshot.tags_added or snapshot.tags_removed:
        values["tags"] = snapshot_tags(current_tags, snapshot)
    return values


def changed_fields(current: Mapping[str, Any], proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The proposed values that differ from the current ones (tags compare as sets)."""
    changes: dict[str, Any] = {}
    for name, value in proposed.items():
        if name == "tags":
            if set(value) != set(current["tags"]):
                changes[name] = value
        elif value != current[name]:
            changes[name] = value
    return changes


class Feedback(FeedbackState):
    """A feedback item: its whole current state and version, as its events carry it."""


# A change of an item's links: (event kind, canonical item key, who made it).
LinkChange = tuple[Literal["linked", "unlinked"], str, Literal["tag", "api"]]
_STATE_FIELDS = set(FeedbackState.model_fields)


def state_event(model: type[FeedbackReceived | FeedbackUpdated], state: Feedback) -> EventData:
    """The `feedback.received` / `.updated` data of a state (a view's extra fields left out)."""
    return model.model_validate(state.model_dump(include=_STATE_FIELDS))


def link_events(state: Feedback, changes: list[LinkChange]) -> list[EventData]:
    """The `feedback.linked` / `.unlinked` data of changes, at the state's version."""
    kinds = {"linked": FeedbackLinked, "unlinked": FeedbackUnlinked}
    return [
        kinds[kind](feedback_id=state.id, item_key=key, by=by, version=state.version)
        for kind, key, by in changes
    ]


class FeedbackView(Feedback):
    """A feedback item as the API shows it: its state, plus the duplicates merged into it."""

    merged_from: list[UUID] = Field(
        default_factory=list, description="Ids of the duplicates merged into this item"
    )
    provenance: list[FeedbackSource] = Field(
        default_factory=list,
        description="Every source this item stands for: its own, then its merged duplicates'",
    )


class Link(BaseModel):
    """A link from a feedback item to a roadmap item."""

    feedback_id: UUID
    item_key: str
    by: Literal["tag", "api"]


class FeedbackFilters(BaseModel):
    """What a list of feedback is narrowed to; every filter given must hold."""

    # Not extra="forbid": as a query model it shares the query string with limit and cursor.
    model_config = ConfigDict(frozen=True)

    status: Literal["open", "archived"] | None = None
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    account: str | None = Field(
        default=None, min_length=1, max_length=200, description="Account external id"
    )
    item: str | None = Field(
        default=None, pattern=ITEM_KEY_PATTERN, description="Linked roadmap item key"
    )
    source: str | None = Field(
        default=None, min_length=1, max_length=200, description="Source id, `api` or `import`"
    )
    created_after: datetime | None = Field(default=None, description="Created at or after")
    created_before: datetime | None = Field(default=None, description="Created before")
    include_merged: bool = Field(default=False, description="Also list merged duplicates")

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is taken as UTC.
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

    def fingerprint(self) -> str:
        """A short digest of the filters, so a cursor only continues the list it came from."""
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]


class TicketSnapshot(BaseModel):
    """What one support-desk event says about a ticket or conversation, vendor-neutral.

    A field left None is not known from this event and stays as stored; `tags_added` and
    `tags_removed` serve vendors that announce tag changes one by one instead of the full set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    title: str | None = None
    body: str | None = None
    url: str | None = None
    status: Literal["open", "archived"] | None = None
    tags: list[str] | None = None
    tags_added: list[str] = Field(default_factory=list)
    tags_removed: list[str] = Field(default_factory=list)
    priority: Priority | None = None
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    customer: Customer | None = None
    account_external_id: str | None = None
    created_at: datetime | None = None
