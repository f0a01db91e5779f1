"""The one projection path against a naive reference, on generated event sequences.

The reference keeps no state from one event to the next: an event applies when its version
exceeds every earlier one of its aggregate; each aggregate's row comes from its last applied
event; an item or launch is gone when a later applied upsert of another one took its key; the
launch links follow from the facts as readiness defines them. Slow, and obviously right. The
sequences (duplicates, out-of-order versions, deletes, key takeovers, merges, links, two
workspaces) go through `apply_events` in batches of random sizes, one at a time, and through
`prodops insights rebuild`; every facts table must equal the reference's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Any

import nats
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from insights.projection import apply_events
from insights.projection.rebuild import rebuild
from prodops.contract import (
    AccountUpserted,
    ChecklistEntry,
    Customer,
    Event,
    EventData,
    FeedbackDeleted,
    FeedbackReceived,
    FeedbackSource,
    FeedbackState,
    FeedbackUpdated,
    ItemDeleted,
    ItemUpserted,
    LaunchDeleted,
    LaunchUpserted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
    make_event,
)
from prodops.messaging.broker import ensure_stream
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings

Row = dict[str, Any]
KEYS, LAUNCH_KEYS, LABELS = ("K1", "K2", "K3"), ("L1", "L2"), ("ui", " Blocker", "straße")
T0 = datetime(2025, 3, 1, tzinfo=UTC)
HYPOTHESIS = hypothesis_settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
HYPOTHESIS_REBUILD = hypothesis_settings(HYPOTHESIS, max_examples=8)

# --- the reference ----------------------------------------------------------------------------


def _gate(e: Event) -> tuple[str, str, str]:
    return e.workspace, e.type.split(".")[1], e.parsed().aggregate_id()


def _applied(events: list[Event]) -> list[tuple[int, Event, Any]]:
    """The events newer than every earlier one of their aggregate, with their positions."""
    return [
        (i, e, e.parsed())
        for i, e in enumerate(events)
        if all(e.parsed().version > o.parsed().version for o in events[:i] if _gate(o) == _gate(e))  # type: ignore[attr-defined]
    ]


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def reference(events: list[Event]) -> dict[str, list[Row]]:
    """Every facts table the events leave, by brute force."""
    stream = _applied(events)
    last = {_gate(e): (i, e, d) for i, e, d in stream}
    out: dict[str, list[Row]] = {name: [] for name in TABLES}
    for (ws, aggregate, ident), (i, e, d) in last.items():
        deleted = "deleted" in e.type
        gate = {"version": d.version, "deleted": deleted, "state": e.data, "event_id": e.id}
        out["projection"].append({"workspace": ws, "aggregate": aggregate, "id": ident, **gate})
        taken = isinstance(d, ItemUpserted | LaunchUpserted) and any(
            j > i and o.workspace == ws and type(n) is type(d) and n.key == d.key and n.id != d.id
            for j, o, n in stream
        )
        if not deleted and not taken:
            _row(out, ws, d)
    _links(out)
    return out


def _row(out: dict[str, list[Row]], ws: str, d: EventData) -> None:
    if isinstance(d, FeedbackState):
        _feedback(out, ws, d)
    elif isinstance(d, AccountUpserted):
        out["account_fact"].append({"workspace": ws, "external_id": d.external_id, "arr": d.arr})
    elif isinstance(d, ObjectiveUpserted):
        active = d.status == "active"
        row = {"id": d.id, "name": d.name, "weight": d.weight, "active": active}
        out["objective_fact"].append({"workspace": ws, **row})
    elif isinstance(d, ItemUpserted):
        row = d.model_dump(include=set(COLUMNS["item_fact"])) | {"shipped_at": _utc(d.shipped_at)}
        out["item_fact"].append({"workspace": ws, **row})
    elif isinstance(d, LaunchUpserted):
        row = d.model_dump(include=set(COLUMNS["launch_fact"]))
        row["checklist"] = [c.model_dump(mode="json") for c in d.checklist]
        out["launch_fact"].append({"workspace": ws, **row})
    elif isinstance(d, TrackerIssueUpserted):
        row = d.model_dump(include=set(COLUMNS["issue_fact"])) | {"closed_at": _utc(d.closed_at)}
        out["issue_fact"].append({"workspace": ws, **row})


def _feedback(out: dict[str, list[Row]], ws: str, d: FeedbackState) -> None:
    who = d.customer
    if d.account_external_id:
        account_key = f"account:{d.account_external_id}"
    elif who is not None and (who.email or who.external_id):
        account_key = f"customer:{who.email.lower() if who.email else who.external_id}"
    else:
        account_key = f"feedback:{d.id}"
    row = d.model_dump(include=set(COLUMNS["feedback_fact"]))
    group, created = d.merged_into or d.id, _utc(d.created_at)
    row |= {"group_id": group, "account_key": account_key, "created_at": created}
    out["feedback_fact"].append({"workspace": ws, **row})
    negative, counted = d.sentiment is not None and d.sentiment < 0, d.merged_into is None
    for key in d.item_keys:
        item = {"feedback_id": d.id, "item_key": key, "created_at": created}
        flags = {"negative": negative, "counted": counted and d.status == "open"}
        out["feedback_item"].append({"workspace": ws, **item, **flags})


def _links(out: dict[str, list[Row]]) -> None:
    """Each issue with the launches it names and those its items are in; open ones' labels."""
    tally: Counter[tuple[Any, ...]] = Counter()
    for issue in out["issue_fact"]:
        ws, keys = issue["workspace"], set(issue["item_keys"])
        launches = set(issue["launch_keys"]) | {
            f["key"]
            for f in out["launch_fact"]
            if f["workspace"] == ws and keys & {*f["item_keys"]}
        }
        launches |= {
            i["launch_key"]
            for i in out["item_fact"]
            if i["workspace"] == ws and i["key"] in keys and i["launch_key"]
        }
        severity = ("urgent", "high", "medium", "low", "none").index(issue["priority"]) + 1
        facts = {k: issue[k] for k in ("state", "kind", "closed_at")} | {"severity": severity}
        for launch in launches:
            pair = {"workspace": ws, "launch": launch, "issue_id": issue["id"]}
            out["launch_issue"].append(pair | facts)
            tally[ws, launch, issue["state"], issue["kind"], severity] += 1
            if issue["state"] == "open":
                folded = {_fold(label) for label in issue["labels"]}
                out["launch_issue_label"] += [pair | {"label": label} for label in folded]
    names = ("workspace", "launch", "state", "kind", "severity")
    out["launch_issue_tally"] = [
        dict(zip(names, key, strict=True)) | {"issues": n} for key, n in tally.items()
    ]


def _fold(label: str) -> str:
    return label.strip(" ").lower() if all(" " <= c <= "~" for c in label) else ""


# --- what PostgreSQL holds ----------------------------------------------------------------------

COLUMNS = {
    "projection": ("workspace", "aggregate", "id", "version", "deleted", "state", "event_id"),
    "feedback_fact": ("workspace", "id", "group_id", "account_key", "account_external_id",
                      "priority", "sentiment", "status", "created_at", "item_keys", "tags"),
    "feedback_item": ("workspace", "feedback_id", "item_key", "created_at", "negative", "counted"),
    "account_fact": ("workspace", "external_id", "arr"),
    "objective_fact": ("workspace", "id", "name", "weight", "active"),
    "item_fact": ("workspace", "id", "key", "title", "status", "effort", "area", "objective_ids",
                  "launch_key", "shipped_at"),
    "launch_fact": ("workspace", "id", "key", "name", "status", "target_date", "item_keys",
                    "checklist"),
    "issue_fact": ("workspace", "id", "key", "state", "kind", "priority", "labels", "item_keys",
                   "launch_keys", "closed_at"),
    "launch_issue": ("workspace", "launch", "issue_id", "state", "kind", "severity", "closed_at"),
    "launch_issue_label": ("workspace", "launch", "label", "issue_id"),
    "launch_issue_tally": ("workspace", "launch", "state", "kind", "severity", "issues"),
}  # fmt: skip
TABLES = tuple(COLUMNS)


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: repr(sorted(r.items())))


async def held(pool: Pool, workspaces: list[str]) -> dict[str, list[Row]]:
    """Every facts table of `workspaces` (tallies at zero left out: a count, not a fact)."""
    found = {}
    for name, columns in COLUMNS.items():
        zero = " AND issues <> 0" if name == "launch_issue_tally" else ""
        query = f"SELECT {', '.join(columns)} FROM {name} WHERE workspace = ANY($1){zero}"  # noqa: S608
        found[name] = _sorted([dict(r) for r in await pool.fetch(query, workspaces)])
    return found


def _expected(events: list[Event]) -> dict[str, list[Row]]:
    return {name: _sorted(rows) for name, rows in reference(events).items()}


# --- generated sequences --------------------------------------------------------------------------

versions = st.integers(1, 4)
some_keys = st.lists(st.sampled_from(KEYS), max_size=2, unique=True)
moments = st.integers(0, 40).map(lambda d: T0 - timedelta(days=d))
maybe_moment = st.none() | moments


def _id(ws: str, kind: str, n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{ws}/{kind}/{n}")


def _changes(ws: str) -> list[st.SearchStrategy[EventData]]:
    """Every kind of event of workspace `ws`, over a few aggregates of each aggregate type.

    Item and launch upserts twice over, and more ids than keys: keys are taken over often.
    """
    n = st.integers(0, 2)
    common = {"version": versions, "updated_at": st.just(T0)}
    item_ids = n.map(lambda i: _id(ws, "item", i))
    launch_ids = n.map(lambda i: _id(ws, "launch", i))
    issue_ids = n.map(lambda i: _id(ws, "issue", i))
    feedback_ids = n.map(lambda i: _id(ws, "feedback", i))
    objective_ids = n.map(lambda i: _id(ws, "objective", i))
    upserts = [
        st.builds(
            ItemUpserted, id=item_ids, key=st.sampled_from(KEYS[:2]), title=st.just("t"),
            status=st.sampled_from(["idea", "planned", "in_progress", "shipped"]),
            area=st.sampled_from([None, "billing"]), effort=st.sampled_from([1.0, 2.5]),
            objective_ids=st.lists(objective_ids, max_size=2, unique=True),
            launch_key=st.none() | st.sampled_from(LAUNCH_KEYS), shipped_at=maybe_moment,
            **common,
        ),
        st.builds(
            LaunchUpserted, id=launch_ids, key=st.sampled_from(LAUNCH_KEYS), name=st.just("n"),
            status=st.sampled_from(["planned", "launched"]), item_keys=some_keys,
            target_date=st.none() | st.just(date(2025, 4, 1)),
            checklist=st.lists(
                st.builds(ChecklistEntry, id=n.map(lambda i: _id(ws, "entry", i)),
                          title=st.just("docs"), category=st.just("docs"), done=st.booleans()),
                max_size=1,
            ),
            **common,
        ),
    ]  # fmt: skip
    return [
        *upserts,
        *upserts,
        st.builds(ItemDeleted, id=item_ids, key=st.sampled_from(KEYS), version=versions),
        st.builds(LaunchDeleted, id=launch_ids, key=st.sampled_from(LAUNCH_KEYS), version=versions),
        st.builds(
            TrackerIssueUpserted, id=issue_ids, provider=st.just("github"),
            external_id=st.just("1"), key=st.just("acme/shop#1"), title=st.just("t"),
            state=st.sampled_from(["open", "closed"]),
            kind=st.sampled_from(["bug", "task"]), priority=st.sampled_from(["urgent", "low"]),
            labels=st.lists(st.sampled_from(LABELS), max_size=2, unique=True), item_keys=some_keys,
            launch_keys=st.lists(st.sampled_from(LAUNCH_KEYS), max_size=1), created_at=moments,
            closed_at=maybe_moment, **common,
        ),
        st.builds(TrackerIssueDeleted, id=issue_ids, version=versions),
        *(
            st.builds(
                kind, id=feedback_ids, source=st.just(FeedbackSource(provider="api")),
                title=st.just("f"), account_external_id=st.sampled_from([None, "acme"]),
                customer=st.none() | st.just(Customer(email="Ann@Example.com")),
                priority=st.sampled_from(["normal", "urgent"]),
                status=st.sampled_from(["open", "archived"]),
                sentiment=st.sampled_from([None, -0.5, 0.5]), item_keys=some_keys,
                merged_into=st.none() | feedback_ids, created_at=moments, **common,
            )
            for kind in (FeedbackReceived, FeedbackUpdated)
        ),
        st.builds(FeedbackDeleted, id=feedback_ids, version=versions),
        st.builds(
            AccountUpserted, external_id=st.just("acme"), arr=st.sampled_from([0.0, 9e4]), **common
        ),
        st.builds(
            ObjectiveUpserted, id=objective_ids, name=st.just("o"), weight=st.just(2.0),
            status=st.sampled_from(["active", "dropped"]), **common,
        ),
        st.builds(ObjectiveDeleted, id=objective_ids, version=versions),
    ]  # fmt: skip


@st.composite
def sequences(draw: st.DrawFn, workspaces: tuple[str, str]) -> list[Event]:
    """Events of two workspaces, some delivered twice."""
    kinds = [st.tuples(st.just(ws), change) for ws in workspaces for change in _changes(ws)]
    changes = draw(st.lists(st.one_of(kinds), min_size=10, max_size=40))
    events = [make_event(data, service="roadmap", workspace=ws) for ws, data in changes]
    copies = draw(st.lists(st.integers(0, len(events) - 1), max_size=4))
    for n in copies:
        events.insert(n + 1, events[n])  # a redelivered copy
    return events


def _batches(events: list[Event], sizes: list[int]) -> list[list[Event]]:
    out, start = [], 0
    for size in [*sizes, len(events)]:
        if start < len(events):
            out.append(events[start : start + size])
        start += size
    return out


# --- the tests ------------------------------------------------------------------------------------


def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on the test's loop from Hypothesis's thread."""
    return lambda coroutine: asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)


async def _apply(pool: Pool, batches: list[list[Event]]) -> None:
    for batch in batches:
        async with pool.acquire() as conn, conn.transaction():
            await apply_events(conn, batch)


async def test_batches_of_any_size_and_one_at_a_time_leave_what_the_reference_says(
    pool: Pool,
) -> None:
    run = _on_loop(asyncio.get_running_loop())

    @HYPOTHESIS
    @given(data=st.data(), sizes=st.lists(st.integers(1, 12), max_size=6))
    def check(data: st.DataObject, sizes: list[int]) -> None:
        batched, alone = (f"ws-{uuid.uuid4().hex[:10]}" for _ in range(2))
        events = data.draw(sequences((f"{batched}-a", f"{batched}-b")))
        expected = _expected(events)
        run(_apply(pool, _batches(events, sizes)))
        assert run(held(pool, [f"{batched}-a", f"{batched}-b"])) == expected
        # The same sequence in two other workspaces, one event at a time.
        renamed = _renamed(events, batched, alone)
        run(_apply(pool, [[e] for e in renamed]))
        assert run(held(pool, [f"{alone}-a", f"{alone}-b"])) == _expected(renamed)

    await asyncio.to_thread(check)


def _renamed(events: list[Event], old: str, new: str) -> list[Event]:
    copies: dict[uuid.UUID, Event] = {}
    for e in events:
        ws = e.workspace.replace(old, new)
        copies.setdefault(e.id, e.model_copy(update={"workspace": ws, "id": uuid.uuid4()}))
    return [copies[e.id] for e in events]


async def test_a_rebuild_leaves_what_the_reference_says(settings: Settings, pool: Pool) -> None:
    run = _on_loop(asyncio.get_running_loop())
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_stream(js, settings)

    async def rebuilt(events: list[Event]) -> None:
        await js.purge_stream(settings.stream_name)
        for e in events:
            await js.publish(e.nats_subject(settings.subject_prefix), e.to_bytes())
        await rebuild(settings)

    @HYPOTHESIS_REBUILD
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        ws = f"ws-{uuid.uuid4().hex[:10]}"
        events = data.draw(sequences((f"{ws}-a", f"{ws}-b")))
        run(rebuilt(events))
        assert run(held(pool, [f"{ws}-a", f"{ws}-b"])) == _expected(events)

    try:
        await asyncio.to_thread(check)
    finally:
        await nc.close()
