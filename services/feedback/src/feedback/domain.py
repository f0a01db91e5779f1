"""Feedback rules that need no I/O."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prodops.events import Customer, FeedbackState, Priority

_TAG = re.compile(r"^[^\s,]{1,100}$")


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


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, de-duplicated tags in first-seen order; a tag has no spaces or commas."""
    seen: dict[str, None] = {}
    for tag in tags:
        value = tag.strip().lower()
        if not _TAG.fullmatch(value):
            raise ValueError(f"tag {tag!r} must be 1-100 characters without spaces or commas")
        seen.setdefault(value, None)
    return list(seen)


class Feedback(FeedbackState):
    """A feedback item: its whole current state and version."""


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
