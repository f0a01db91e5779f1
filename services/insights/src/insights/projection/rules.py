"""The facts rules as pure functions: each event folded into the facts of what a batch touches.

`Facts` holds, as plain data, the rows a batch reads (loaded by `store`), and `fold` applies one
event to them: only when its version is newer than the version held (a delete leaves a
tombstone with its version); an item or launch upsert takes its key from any other item or
launch that holds it, whatever the order of their versions; a feedback item counts in the group
of the item it is merged into. An event PostgreSQL would refuse raises here, as it would there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from insights.projection.facts import AGGREGATES
from prodops.contract import (
    AccountUpserted,
    Deleted,
    Event,
    EventData,
    FeedbackDeleted,
    FeedbackReceived,
    FeedbackState,
    FeedbackUpdated,
    ItemUpserted,
    LaunchUpserted,
    ObjectiveUpserted,
    TrackerIssueUpserted,
)

Row = dict[str, Any]
Key = tuple[str, Any]  # workspace, and the row's id (an account's external id)
Gate = tuple[str, str, str]  # workspace, aggregate, aggregate id: a `projection` row's key
Parsed = tuple[Event, EventData]

MAX_VERSION = 2**31 - 1  # projection.version is an integer column
KEYED = ("item", "launch")  # aggregates whose key is unique in their workspace
# Tables in the order their changes are written (any order leaves the same facts).
_ORDER = ("feedback", "account", "objective", "launch", "item", "tracker_issue")


class UnstorableEventError(ValueError):
    """Data PostgreSQL would refuse: the event can never be applied."""


@dataclass(frozen=True)
class Projection:
    """A version gate as it is to be written: the newest applied event of an aggregate."""

    version: int
    deleted: bool
    state: dict[str, Any]
    event_id: UUID


@dataclass
class Table:
    """The rows of one fact table a batch reads, by key: as held before it, and now."""

    held: dict[Key, Row | None] = field(default_factory=dict)
    now: dict[Key, Row | None] = field(default_factory=dict)
    written: dict[Key, None] = field(default_factory=dict)  # in order of writing

    def hold(self, key: Key, row: Row | None) -> None:
        """Note a row as loaded (None: there is none)."""
        if key not in self.held:
            self.held[key] = self.now[key] = row

    def put(self, key: Key, row: Row | None) -> None:
        """Replace a row (None: remove it)."""
        self.now[key] = row
        self.written[key] = None


@dataclass
class Facts:
    """The facts of the aggregates a batch touches, with their version gates."""

    versions: dict[Gate, int] = field(default_factory=dict)
    projections: dict[Gate, Projection] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=lambda: {a: Table() for a in _ORDER})
    # (workspace, key) -> the item or launch that holds the key, None if none does.
    holders: dict[str, dict[tuple[str, str], UUID | None]] = field(
        default_factory=lambda: {a: {} for a in KEYED}
    )


@dataclass(frozen=True)
class Applied:
    """An event that was newer than what was held: its row before and after, and rows freed."""

    workspace: str
    aggregate: str
    data: EventData
    before: Row | None
    after: Row | None
    freed: tuple[UUID, ...] = ()  # items or launches whose key this upsert took


@dataclass
class Needs:
    """What a batch reads: rows by id per aggregate, and the holders of item and launch keys."""

    ids: dict[str, set[Key]] = field(default_factory=dict)
    keys: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def parse(events: Sequence[Event]) -> list[Parsed]:
    """Each event with its typed data (raises on invalid data, which can never apply)."""
    return [(event, event.parsed()) for event in events]


def row_id(data: EventData) -> Any:
    """The id of the row an event's aggregate is kept in."""
    return data.external_id if isinstance(data, AccountUpserted) else data.id  # type: ignore[attr-defined]


def needs(parsed: Sequence[Parsed]) -> Needs:
    """The rows and keys that folding `parsed` reads."""
    found = Needs()
    for event, data in parsed:
        aggregate = AGGREGATES[event.type]
        found.ids.setdefault(aggregate, set()).add((event.workspace, row_id(data)))
        if isinstance(data, ItemUpserted | LaunchUpserted):
            found.keys.setdefault(aggregate, set()).add((event.workspace, data.key))
    return found


def fold(facts: Facts, event: Event, data: EventData) -> Applied | None:
    """Apply one event to `facts` if it is newer than what they hold; what it changed."""
    version: int = data.version  # type: ignore[attr-defined]
    check_storable(version, event.data)
    aggregate = AGGREGATES[event.type]
    gate = (event.workspace, aggregate, data.aggregate_id())
    if facts.versions.get(gate, 0) >= version:
        return None
    after = row_of(data)
    facts.versions[gate] = version
    deleted = isinstance(data, Deleted | FeedbackDeleted)
    facts.projections[gate] = Projection(version, deleted, event.data, event.id)
    table, ident = facts.tables[aggregate], row_id(data)
    before = table.now[event.workspace, ident]
    freed: tuple[UUID, ...] = ()
    if aggregate in KEYED:
        freed = _take_key(facts, aggregate, (event.workspace, ident), before, after)
    table.put((event.workspace, ident), after)
    return Applied(event.workspace, aggregate, data, before, after, freed)


def _take_key(
    facts: Facts, aggregate: str, key: Key, before: Row | None, after: Row | None
) -> tuple[UUID, ...]:
    """Move the row's key in the holders' index; the other row that held its new key, gone."""
    ws, ident = key
    holders = facts.holders[aggregate]
    if before is not None:
        holders[ws, before["key"]] = None
    if after is None:
        return ()
    holder = holders[ws, after["key"]]
    holders[ws, after["key"]] = ident
    if holder is None or holder == ident:
        return ()
    facts.tables[aggregate].put((ws, holder), None)
    return (holder,)


def check_storable(version: int, raw: dict[str, Any]) -> None:
    """Raise when the version gate could not hold the event, however old it is."""
    if version > MAX_VERSION:
        raise UnstorableEventError(f"version {version} is out of the integer range")
    if _has_nul(raw):
        raise UnstorableEventError("text with a NUL character")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def utc(moment: datetime | None, name: str) -> datetime | None:
    """A moment as timestamptz gives it back (a naive one is local time, as asyncpg reads it)."""
    try:
        return None if moment is None else moment.astimezone(UTC)
    except OverflowError as exc:
        raise UnstorableEventError(f"{name} is out of the timestamptz range") from exc


def account_key(data: FeedbackState) -> str:
    """Who a feedback item counts for: its account, else its customer, else itself."""
    if data.account_external_id:
        return f"account:{data.account_external_id}"
    customer = data.customer
    if customer is not None and (customer.email or customer.external_id):
        return f"customer:{(customer.email or '').lower() or customer.external_id}"
    return f"feedback:{data.id}"


def row_of(data: EventData) -> Row | None:
    """The row an event leaves for its aggregate (None: a delete)."""
    build = _ROWS.get(type(data))
    return None if build is None else build(data)


def _feedback(data: FeedbackState) -> Row:
    if len(set(data.item_keys)) != len(data.item_keys):
        raise UnstorableEventError("an item key twice (feedback_item's primary key)")
    return {
        "group_id": data.merged_into or data.id,
        "account_key": account_key(data),
        "account_external_id": data.account_external_id,
        "priority": data.priority,
        "sentiment": data.sentiment,
        "status": data.status,
        "created_at": utc(data.created_at, "created_at"),
        "item_keys": data.item_keys,
        "tags": data.tags,
        # Support volume (feedback_item) counts the feedback that stands on its own.
        "negative": data.sentiment is not None and data.sentiment < 0,
        "counted": data.status == "open" and data.merged_into is None,
    }


def _account(data: AccountUpserted) -> Row:
    return {"arr": data.arr}


def _objective(data: ObjectiveUpserted) -> Row:
    return {"name": data.name, "weight": data.weight, "active": data.status == "active"}


def _item(data: ItemUpserted) -> Row:
    return {
        "key": data.key,
        "title": data.title,
        "status": data.status,
        "effort": data.effort,
        "area": data.area,
        "objective_ids": data.objective_ids,
        "launch_key": data.launch_key,
        "shipped_at": utc(data.shipped_at, "shipped_at"),
    }


def _launch(data: LaunchUpserted) -> Row:
    return {
        "key": data.key,
        "name": data.name,
        "status": data.status,
        "target_date": data.target_date,
        "item_keys": data.item_keys,
        "checklist": [entry.model_dump(mode="json") for entry in data.checklist],
    }


def _issue(data: TrackerIssueUpserted) -> Row:
    return {
        "key": data.key,
        "state": data.state,
        "kind": data.kind,
        "priority": data.priority,
        "labels": data.labels,
        "item_keys": data.item_keys,
        "launch_keys": data.launch_keys,
        "closed_at": utc(data.closed_at, "closed_at"),
    }


_ROWS: dict[type[EventData], Callable[[Any], Row]] = {
    FeedbackReceived: _feedback,
    FeedbackUpdated: _feedback,
    AccountUpserted: _account,
    ObjectiveUpserted: _objective,
    ItemUpserted: _item,
    LaunchUpserted: _launch,
    TrackerIssueUpserted: _issue,
}


@dataclass(frozen=True)
class Changes:
    """What writing a table's part of a batch does: rows removed first, then rows put."""

    removed: list[Key]
    put: list[tuple[Key, Row]]


def changes(facts: Facts, aggregate: str) -> Changes:
    """The rows of `aggregate` the batch changed.

    A keyed row whose key moved is removed and put again: no statement then sees two rows with
    one key. Feedback is put whenever an event wrote it, since what it adds to feedback_item
    (counted, negative) is not read back.
    """
    table = facts.tables[aggregate]
    removed: list[Key] = []
    put: list[tuple[Key, Row]] = []
    for key in table.written:
        held, now = table.held[key], table.now[key]
        if now == held and aggregate != "feedback":
            continue
        moved = aggregate in KEYED and held is not None and now is not None
        if held is not None and (now is None or (moved and now["key"] != held["key"])):
            removed.append(key)
        if now is not None:
            put.append((key, now))
    return Changes(removed, put)


def tables_in_order() -> tuple[str, ...]:
    """The fact tables in the order a batch's changes are written."""
    return _ORDER
