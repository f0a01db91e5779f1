"""The facts a replay of the stream leaves, folded in memory (the rules of facts.py, no I/O).

A rebuild applies every event once and keeps only what the last applicable version of each
aggregate left behind, so it folds the stream here, in stream order, and writes the result in
bulk. Each rule mirrors its statement in facts_sql.py, key takeovers included: an item or launch
upsert frees its key from any other item or launch, whatever the order of their versions.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from insights.facts import AGGREGATES, account_key
from prodops.contract import (
    CATALOGUE,
    AccountUpserted,
    Deleted,
    Event,
    EventData,
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
    envelope_model,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
Gate = tuple[str, str, int, bool]  # aggregate, id, version, deleted: a projection row's key
# An applied event, in stream order: its claim, and its projection row when it was newer then
# (id, workspace, type, aggregate, aggregate id, version, deleted, state; all None after type).
Applied = tuple[Any, ...]
_STALE = (None, None, None, None, None)
_MAX_VERSION = 2**31 - 1  # projection.version is an integer column
_NUL = "\\u0000"


class UnstorableEventError(ValueError):
    """Data PostgreSQL would refuse, so the live engine could never apply the event either."""


@dataclass
class Rebuilt:
    """What a rebuild read and applied."""

    messages: int = 0
    applied: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class WorkspaceFacts:
    """One workspace's facts as the live engine would hold them after the same events."""

    # (aggregate, id) -> (version, deleted, event id): the version gate (the states it holds
    # are written as the stream is read: Replay.applied).
    projection: dict[tuple[str, str], tuple[int, bool, UUID]] = field(default_factory=dict)
    feedback: dict[UUID, Row] = field(default_factory=dict)
    accounts: dict[str, float] = field(default_factory=dict)
    objectives: dict[UUID, Row] = field(default_factory=dict)
    items: dict[UUID, Row] = field(default_factory=dict)
    item_ids: dict[str, UUID] = field(default_factory=dict)  # key -> id, item_fact_key
    launches: dict[UUID, Row] = field(default_factory=dict)
    launch_ids: dict[str, UUID] = field(default_factory=dict)  # key -> id, launch_fact_key
    issues: dict[UUID, Row] = field(default_factory=dict)
    # Scopes an item event refreshed: the workspace's own alignment exists from then on.
    touched_scopes: set[str] = field(default_factory=set)

    def fold(self, event: Event, data: EventData) -> Gate | None:
        """Apply one event if it is newer than what is held; returns its projection key then."""
        version: int = data.version  # type: ignore[attr-defined]
        key = (AGGREGATES[event.type], data.aggregate_id())
        held = self.projection.get(key)
        if held is not None and held[0] >= version:
            return None
        deleted = isinstance(data, Deleted | FeedbackDeleted)
        self.projection[key] = (version, deleted, event.id)
        _FOLD[type(data)](self, data)
        return (*key, version, deleted)

    def feedback_items(self) -> Iterator[tuple[UUID, str, datetime, bool, bool]]:
        """The feedback_item rows: one per feedback and item key."""
        for f in self.feedback.values():
            for key in f["item_keys"]:
                yield f["id"], key, f["created_at"], f["negative"], f["counted"]


@dataclass
class Replay:
    """The stream folded so far: each workspace's facts, and the events applied."""

    report: Rebuilt = field(default_factory=Rebuilt)
    workspaces: dict[str, WorkspaceFacts] = field(default_factory=dict)
    claims: set[UUID] = field(default_factory=set)
    # Taken (and written) while the stream is still read: the state of each version is kept no
    # longer than that, and PostgreSQL parses it meanwhile.
    applied: deque[Applied] = field(default_factory=deque)

    def add(self, body: bytes) -> None:
        """Fold one message of the stream, counting it as applied, skipped or failed."""
        self.report.messages += 1
        decoded = _decoded(body)
        if decoded is None:
            self._add_checked(body)
            return
        event, raw = decoded
        if event.id in self.claims:
            self.report.skipped += 1  # a second copy of one applied already
            return
        self._fold(event, event.data, raw)

    def _add_checked(self, body: bytes) -> None:
        # Step by step, as the live consumer decodes: it tells a bad envelope (counted, as the
        # live consumer's decode failure) from bad data (logged), and an event not ours.
        try:
            event = Event.from_bytes(body)
        except ValueError:
            self.report.failed += 1
            return
        if event.type not in AGGREGATES or event.id in self.claims:
            self.report.skipped += 1  # not ours, or a second copy of one applied already
            return
        try:
            data = event.parsed()
        except ValueError as exc:
            self._failed(event, exc)
            return
        self._fold(event, data, event.data)

    def _fold(self, event: Event, data: EventData, raw: dict[str, Any]) -> None:
        try:
            # As text: orjson's bytes keep the whole buffer it wrote them into (kilobytes).
            state = orjson.dumps(raw).decode()
            check_storable(data, raw, state)
        except ValueError as exc:
            self._failed(event, exc)
            return
        self.claims.add(event.id)
        facts = self.workspaces.get(event.workspace)
        if facts is None:
            facts = self.workspaces[event.workspace] = WorkspaceFacts()
        gate = facts.fold(event, data)
        row = _STALE if gate is None else (*gate, orjson.Fragment(state))
        self.applied.append((event.id, event.workspace, event.type, *row))
        self.report.applied += 1

    def _failed(self, event: Event, exc: ValueError) -> None:
        # The live consumer would dead-letter it; the rebuild reports it and goes on.
        log.error("rebuild: event %s (%s) could not be applied", event.id, event.type, exc_info=exc)
        self.report.failed += 1


# An envelope with its data typed, per type the facts hold: one validation instead of two.
_TYPED: dict[str, type[Event]] = {t: envelope_model(CATALOGUE[t]) for t in AGGREGATES}


def _decoded(body: bytes) -> tuple[Any, dict[str, Any]] | None:
    """The event with typed data and its raw data; None unless that is all valid and ours."""
    try:
        raw = orjson.loads(body)
        envelope = _TYPED.get(raw["type"]) if type(raw["type"]) is str else None
        if envelope is None:
            return None
        return envelope.model_validate(raw), raw["data"]
    except (ValueError, TypeError, KeyError):
        return None  # the careful path tells what is wrong


def check_storable(data: EventData, raw: dict[str, Any], state: str) -> None:
    """Raise when the live engine's statements would refuse the event (it fails there too)."""
    version: int = data.version  # type: ignore[attr-defined]
    if version > _MAX_VERSION:
        raise UnstorableEventError(f"version {version} is out of the integer range")
    if _NUL in state and _has_nul(raw):
        raise UnstorableEventError("text with a NUL character")
    keys = data.item_keys if isinstance(data, FeedbackReceived | FeedbackUpdated) else []
    if len(set(keys)) != len(keys):
        raise UnstorableEventError("an item key twice (feedback_item's primary key)")
    for name in _TIMESTAMPS.get(type(data), ()):
        try:
            _utc(getattr(data, name))
        except OverflowError as exc:
            raise UnstorableEventError(f"{name} is out of the timestamptz range") from exc


# The datetimes the facts store as timestamptz, by event type.
_TIMESTAMPS: dict[type[EventData], tuple[str, ...]] = {
    FeedbackReceived: ("created_at",),
    FeedbackUpdated: ("created_at",),
    ItemUpserted: ("shipped_at",),
    TrackerIssueUpserted: ("closed_at",),
}


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _utc(moment: datetime | None) -> datetime | None:
    # What timestamptz gives back: asyncpg reads a naive datetime as local time.
    return None if moment is None else moment.astimezone(UTC)


def _feedback(ws: WorkspaceFacts, data: Any) -> None:
    ws.feedback[data.id] = {
        "id": data.id,
        "group_id": data.merged_into or data.id,
        "account_key": account_key(data),
        "account_external_id": data.account_external_id,
        "priority": data.priority,
        "sentiment": data.sentiment,
        "status": data.status,
        "created_at": _utc(data.created_at),
        "item_keys": data.item_keys,
        "tags": data.tags,
        # Support volume counts the feedback that stands on its own (facts._feedback).
        "negative": data.sentiment is not None and data.sentiment < 0,
        "counted": data.status == "open" and data.merged_into is None,
    }


def _feedback_deleted(ws: WorkspaceFacts, data: Any) -> None:
    ws.feedback.pop(data.id, None)


def _account(ws: WorkspaceFacts, data: Any) -> None:
    ws.accounts[data.external_id] = data.arr


def _objective(ws: WorkspaceFacts, data: Any) -> None:
    if isinstance(data, ObjectiveUpserted):
        active = data.status == "active"
        ws.objectives[data.id] = {"name": data.name, "weight": data.weight, "active": active}
    else:
        ws.objectives.pop(data.id, None)


def _item(ws: WorkspaceFacts, data: Any) -> None:
    before = _drop_keyed(ws.items, ws.item_ids, data.id)
    if before is not None:
        ws.touched_scopes.update(s for s in ("", before["area"]) if s is not None)
    if isinstance(data, ItemDeleted):
        return
    _drop_keyed(ws.items, ws.item_ids, ws.item_ids.get(data.key))  # FREE_ITEM_KEY
    ws.items[data.id] = {
        "key": data.key,
        "title": data.title,
        "status": data.status,
        "effort": data.effort,
        "area": data.area,
        "objective_ids": data.objective_ids,
        "launch_key": data.launch_key,
        "shipped_at": _utc(data.shipped_at),
    }
    ws.item_ids[data.key] = data.id
    ws.touched_scopes.update(s for s in ("", data.area) if s is not None)


def _launch(ws: WorkspaceFacts, data: Any) -> None:
    _drop_keyed(ws.launches, ws.launch_ids, data.id)
    if isinstance(data, LaunchDeleted):
        return
    _drop_keyed(ws.launches, ws.launch_ids, ws.launch_ids.get(data.key))  # FREE_LAUNCH_KEY
    ws.launches[data.id] = {
        "key": data.key,
        "name": data.name,
        "status": data.status,
        "target_date": data.target_date,
        "item_keys": data.item_keys,
        "checklist": [entry.model_dump(mode="json") for entry in data.checklist],
    }
    ws.launch_ids[data.key] = data.id


def _drop_keyed(rows: dict[UUID, Row], ids: dict[str, UUID], row_id: UUID | None) -> Row | None:
    row = rows.pop(row_id, None) if row_id is not None else None
    if row is not None:
        del ids[row["key"]]
    return row


def _issue(ws: WorkspaceFacts, data: Any) -> None:
    if isinstance(data, TrackerIssueDeleted):
        ws.issues.pop(data.id, None)
        return
    ws.issues[data.id] = {
        "key": data.key,
        "state": data.state,
        "kind": data.kind,
        "priority": data.priority,
        "labels": data.labels,
        "item_keys": data.item_keys,
        "launch_keys": data.launch_keys,
        "closed_at": _utc(data.closed_at),
    }


_FOLD: dict[type[EventData], Callable[[WorkspaceFacts, Any], None]] = {
    FeedbackReceived: _feedback,
    FeedbackUpdated: _feedback,
    FeedbackDeleted: _feedback_deleted,
    AccountUpserted: _account,
    ObjectiveUpserted: _objective,
    ObjectiveDeleted: _objective,
    ItemUpserted: _item,
    ItemDeleted: _item,
    LaunchUpserted: _launch,
    LaunchDeleted: _launch,
    TrackerIssueUpserted: _issue,
    TrackerIssueDeleted: _issue,
}
