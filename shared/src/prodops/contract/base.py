"""The contract's ground: ids, time, workspace slugs, and the base of every event's `data`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

WORKSPACE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Workspace = Annotated[str, StringConstraints(pattern=WORKSPACE_PATTERN)]
_WORKSPACE = re.compile(WORKSPACE_PATTERN)

Priority = Literal["low", "normal", "high", "urgent"]
TrackerPriority = Literal["urgent", "high", "medium", "low", "none"]


def new_id() -> UUID:
    """A UUIDv7: time-ordered, so ids sort by creation."""
    return UUID(str(uuid_utils.uuid7()))


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def is_workspace(value: str) -> bool:
    """Whether `value` is a valid workspace slug (safe as a NATS subject token)."""
    return _WORKSPACE.fullmatch(value) is not None


class EventData(BaseModel):
    """The `data` of one event type; subclasses name their type and the aggregate id field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    SUBJECT_FIELD: ClassVar[str] = "id"

    def aggregate_id(self) -> str:
        """The id the envelope's `subject` carries."""
        return str(getattr(self, self.SUBJECT_FIELD))


class StateData(EventData):
    """State-carrying data: the whole current state and its version."""

    version: int = Field(ge=1)
    updated_at: datetime
