"""A consumer batch runs at once, set-wise where it can; a failure sends it one by one."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

import asyncpg
import pytest
from nats.aio.msg import Msg

from insights import engine
from insights.signals import alignment as signals
from insights.signals import launches as launch_signals
from prodops.contract import Event, TrackerIssueDeleted, TrackerIssueUpserted
from prodops.messaging import inbox
from prodops.messaging.consumer import EventConsumer, _Message
from prodops.messaging.handlers import BulkHandler, Consumed
from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import recording_spans
from signal_events import Builder
from support import auth, create_app, projections, running, summary


@dataclass
class _Metadata:
    num_delivered: int = 1


@dataclass
class _Carried:
    """What the consumer reads off a NATS message besides its body: headers and metadata."""

    headers: dict[str, str] | None = None
    metadata: _Metadata = field(default_factory=_Metadata)


def _messages(events: list[Event], traceparents: list[str] | None = None) -> list[_Message]:
    carried = [_Carried({"traceparent": t}) for t in traceparents or []] or [
        _Carried() for _ in events
    ]
    return [_Message(cast(Msg, c), event) for c, event in zip(carried, events, strict=True)]


_ISSUE_TYPES = frozenset({TrackerIssueUpserted.TYPE, TrackerIssueDeleted.TYPE})


@dataclass
class _Runs:
    """How often each event went through its handler, and through the batch handler."""

    one_by_one: Counter[UUID] = field(default_factory=Counter)
    set_wise: Counter[UUID] = field(default_factory=Counter)


def _counting(consumer: EventConsumer, poison: UUID | None, *, set_wise: bool) -> _Runs:
    """Count the runs (rolled back or not); `poison` makes its handler and its bulk raise."""
    runs = _Runs()
    real = dict(consumer.handlers)

    def wrapped(event_type: str) -> Any:
        async def handler(conn: Connection, event: Event) -> None:
            runs.one_by_one[event.id] += 1
            if event.id == poison:
                raise RuntimeError("projection store rejected the event")
            await real[event_type](conn, event)

        return handler

    consumer.handlers = {t: wrapped(t) for t in real}
    bulk = consumer.bulk
    assert bulk is not None, "insights applies its events set-wise"

    async def apply(conn: Connection, consumed: Sequence[Consumed]) -> None:
        runs.set_wise.update(c.event.id for c in consumed)
        await bulk.apply(conn, consumed)  # written, to be undone
        if any(c.event.id == poison for c in consumed):
            raise RuntimeError("projection store rejected the batch")

    # A bulk handler of some types only: the tracker issues go set-wise, the items one by one.
    consumer.bulk = BulkHandler(_ISSUE_TYPES, apply) if set_wise else None
    return runs


@dataclass
class _Batch:
    """Four events handled as one batch by a running insights consumer, and what it left."""

    events: list[Event]
    messages: list[_Message]
    runs: _Runs
    live: int  # items and tracker issues the workspace's summary counts
    claimed: int  # of the four, the event ids held in the inbox


async def _handled_batch(
    settings: Settings, workspace: str, poison: int | None, *, set_wise: bool
) -> _Batch:
    app = create_app("insights", settings)
    b = Builder(workspace)
    # An item, an issue, an item, an issue: the issues go set-wise when `set_wise`.
    events = [b.item("A"), b.issue("acme/shop#1"), b.item("B"), b.issue("acme/shop#2")]
    async with running(app) as client:
        consumer = projections(app)
        poisoned = None if poison is None else events[poison].id
        runs = _counting(consumer, poisoned, set_wise=set_wise)
        messages = _messages(events)
        await consumer.apply_batch(messages)
        counts = await summary(client, auth(settings, workspace))
        claimed = await app.state.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            consumer.name,
            [e.id for e in events],
        )
    return _Batch(events, messages, runs, counts["items"] + counts["tracker_issues"], claimed)


@pytest.fixture
def savepoints(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SAVEPOINT statement sent from here on."""
    sent: list[str] = []
    real = asyncpg.connection.Connection.execute

    async def execute(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> str:
        if query.startswith("SAVEPOINT"):
            sent.append(query)
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", execute)
    return sent


async def test_a_batch_without_failures_runs_each_handler_once(
    settings: Settings, workspace: str, savepoints: list[str]
) -> None:
    batch = await _handled_batch(settings, workspace, poison=None, set_wise=False)
    assert [d.outcome for d in batch.messages] == ["applied"] * 4
    assert batch.runs == _Runs(one_by_one=Counter(e.id for e in batch.events))
    assert batch.live == 4
    assert savepoints == []  # two round trips each: only a batch that failed pays for them


async def test_a_failing_handler_fails_alone_and_the_others_apply_once(
    settings: Settings, workspace: str, savepoints: list[str]
) -> None:
    batch = await _handled_batch(settings, workspace, poison=2, set_wise=False)
    assert savepoints  # the careful pass's, one per event
    events, messages = batch.events, batch.messages
    assert [d.outcome for d in messages] == ["applied", "applied", "failed", "applied"]
    assert "projection store rejected the event" in (messages[2].error or "")
    # The fast pass ran the first two before the poison, then undid them; the careful pass
    # ran each once more: their writes are there once.
    assert batch.runs.one_by_one == Counter(
        {events[0].id: 2, events[1].id: 2, events[2].id: 2, events[3].id: 1}
    )
    assert batch.live == 3
    assert batch.claimed == 3  # the poison's claim is released, so its redelivery applies


async def test_a_bulk_handler_takes_its_types_at_once(settings: Settings, workspace: str) -> None:
    batch = await _handled_batch(settings, workspace, poison=None, set_wise=True)
    items, issues = batch.events[0::2], batch.events[1::2]
    assert [d.outcome for d in batch.messages] == ["applied"] * 4
    assert batch.runs == _Runs(
        one_by_one=Counter(e.id for e in items), set_wise=Counter(e.id for e in issues)
    )
    assert batch.live == 4


async def test_a_failing_bulk_sends_its_batch_one_event_at_a_time(
    settings: Settings, workspace: str
) -> None:
    batch = await _handled_batch(settings, workspace, poison=3, set_wise=True)
    events, messages = batch.events, batch.messages
    items, issues = events[0::2], events[1::2]
    assert [d.outcome for d in messages] == ["applied", "applied", "applied", "failed"]
    assert "projection store rejected the event" in (messages[3].error or "")
    # The bulk's writes, and the items' before it, were undone; then each event went through
    # its own handler once more.
    assert batch.runs == _Runs(
        one_by_one=Counter({**{e.id: 2 for e in items}, **{e.id: 1 for e in issues}}),
        set_wise=Counter(e.id for e in issues),
    )
    assert batch.live == 3
    assert batch.claimed == 3


async def test_events_applied_set_wise_each_continue_their_own_trace(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    issues = [b.issue(f"acme/shop#{n}", launch_keys=["L"]) for n in range(3)]
    events = [b.launch("L", items=()), *issues]
    traces = [(0xA0 + n, 0xB0 + n) for n in range(len(events))]
    messages = _messages(events, [f"00-{t:032x}-{s:016x}-01" for t, s in traces])
    app = create_app("insights", settings)
    async with running(app):
        consumer = projections(app)
        with recording_spans() as exporter:
            await consumer.apply_batch(messages)
        spans = exporter.get_finished_spans()
    assert [d.outcome for d in messages] == ["applied"] * 4
    consumed = {
        (s.context.trace_id, s.parent.span_id if s.parent else None): s.name
        for s in spans
        if s.name.startswith("consume ")
    }
    assert consumed == {trace: f"consume {e.type}" for trace, e in zip(traces, events, strict=True)}
    # The launch's signal continues the trace of the batch's last event that moved it.
    refreshed = [s.context.trace_id for s in spans if s.name == "refresh signals"]
    assert refreshed == [traces[-1][0]]


async def test_a_signal_failing_in_the_fast_pass_is_left_as_it_was_by_the_careful_one(
    settings: Settings, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = Builder(workspace)
    real = launch_signals.refresh_launches

    async def broken_for_l1(conn: Connection, ctx: signals.Context, keys: list[str]) -> None:
        await real(conn, ctx, keys)  # its writes must be undone with it
        if "L1" in keys:
            raise RuntimeError("cannot compute L1")

    app = create_app("insights", settings)
    async with running(app):
        consumer = projections(app)
        monkeypatch.setattr(engine, "refresh_launches", broken_for_l1)
        messages = _messages([b.launch("L1"), b.launch("L2")])
        await consumer.apply_batch(messages)
        pool = app.state.pool
        launches = await pool.fetch("SELECT key FROM launch_fact WHERE workspace = $1", workspace)
        held = await pool.fetch(
            "SELECT launch_key FROM launch_signal WHERE workspace = $1", workspace
        )
    assert [d.outcome for d in messages] == ["applied", "applied"]
    assert sorted(r["key"] for r in launches) == ["L1", "L2"]
    assert [r["launch_key"] for r in held] == ["L2"]  # L1's failure undid only L1's signal


@dataclass
class _Undecodable(_Carried):
    """A message whose body is no event, as the consumer reads it off NATS."""

    subject: str = ""
    data: bytes = b"not an event"


async def test_dead_letters_undone_with_a_fast_pass_are_kept_by_the_careful_one(
    settings: Settings, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    undecodable = [
        _Message(
            cast(Msg, _Undecodable({"Nats-Msg-Id": str(i)}, subject=f"x.{workspace}")),
            None,
            error="undecodable event",
            outcome="failed",
        )
        for i in ids
    ]
    real, calls = inbox.store_dead_letter, []

    async def second_fails_once(conn: Connection, letter: inbox.DeadLetter) -> None:
        calls.append(letter.event_id)
        if len(calls) == 2:  # the fast pass's second letter: its transaction is undone
            raise RuntimeError("dead letter refused")
        await real(conn, letter)

    monkeypatch.setattr(inbox, "store_dead_letter", second_fails_once)
    app = create_app("insights", settings)
    async with running(app):
        consumer = projections(app)
        await consumer.apply_batch([*undecodable, *_messages([Builder(workspace).item("A")])])
        kept = await app.state.pool.fetch(
            "SELECT event_id FROM dead_letter WHERE event_id = ANY($1::uuid[])", ids
        )
    assert [d.outcome for d in undecodable] == ["dead_lettered", "dead_lettered"]
    assert sorted(r["event_id"] for r in kept) == sorted(ids)


async def test_batches_handled_at_once_by_one_consumer_each_refresh_what_they_moved(
    settings: Settings, workspace: str
) -> None:
    # The live loop and a dead letter's replay can run a batch at the same time; the hooks keep
    # a batch's state between begin and end, so neither may lose what the other's events moved.
    spaces = [workspace, f"b-{workspace}"[:60], f"c-{workspace}"[:60]]
    batches = [_messages([Builder(ws).launch("L")]) for ws in spaces]
    app = create_app("insights", settings)
    async with running(app):
        consumer = projections(app)
        await asyncio.gather(*(consumer.apply_batch(batch) for batch in batches))
        held = await app.state.pool.fetch(
            "SELECT workspace FROM launch_signal WHERE workspace = ANY($1::text[])", spaces
        )
    assert sorted(r["workspace"] for r in held) == sorted(spaces)
