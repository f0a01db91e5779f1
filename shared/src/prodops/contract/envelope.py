"""The CloudEvents 1.0 envelope (JSON structured mode) every event travels in."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, create_model

from prodops.contract.base import EventData, Workspace, new_id, utcnow
from prodops.contract.catalogue import CATALOGUE


class Event(BaseModel):
    """A CloudEvents 1.0 envelope in JSON structured mode, with our `workspace` extension."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    source: str
    type: str
    specversion: Literal["1.0"] = "1.0"
    time: datetime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    workspace: Workspace
    traceparent: str | None = None
    data: dict[str, Any]

    def parsed(self) -> EventData:
        """The typed `data` of a catalogued type (raises on an unknown type or invalid data)."""
        model = CATALOGUE.get(self.type)
        if model is None:
            raise UnknownEventTypeError(self.type)
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        """The JSON structured-mode body."""
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, body: bytes) -> Event:
        """Parse a structured-mode body."""
        return cls.model_validate(orjson.loads(body))

    def subject_tokens(self) -> str:
        """`<aggregate>.<verb>.<workspace>`: the subject below the deployment's prefix."""
        return f"{type_tokens(self.type)}.{self.workspace}"

    def nats_subject(self, prefix: str) -> str:
        """`<prefix>.<aggregate>.<verb>.<workspace>`, e.g. `prodops.feedback.received.acme`."""
        return f"{prefix}.{self.subject_tokens()}"


class UnknownEventTypeError(ValueError):
    """An event type outside the catalogue."""


def type_tokens(event_type: str) -> str:
    """`prodops.feedback.received.v1` -> `feedback.received`."""
    return event_type.removeprefix("prodops.").rsplit(".", 1)[0]


def make_event(
    data: EventData, *, service: str, workspace: str, traceparent: str | None = None
) -> Event:
    """Wrap `data` in a new envelope from `service` for `workspace`."""
    return Event(
        id=new_id(),
        source=f"/prodops/{service}",
        type=data.TYPE,
        time=utcnow(),
        subject=data.aggregate_id(),
        workspace=workspace,
        traceparent=traceparent,
        data=data.model_dump(mode="json", by_alias=True),
    )


def envelope_model(data: type[EventData]) -> type[Event]:
    """The envelope with its `data` typed: documents one event type in AsyncAPI."""
    name = f"{data.__name__}Event"
    model: type[Event] = create_model(name, __base__=Event, data=(data, ...))
    model.__doc__ = f"`{data.TYPE}`: {data.__doc__}"
    return model
