"""A rebuild leaves every derived table as the live consumer left it, row for row."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import nats
import pytest
from fastapi import FastAPI

from insights.engine import CONSUMER
from insights.projection import rebuild as rebuild_module
from insights.projection.rebuild import rebuild
from prodops.contract import (
    Event,
    FeedbackLinked,
    ItemUpserted,
    LaunchUpserted,
    new_id,
    utcnow,
)
from prodops.messaging.broker import ensure_stream
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings
from signal_events import Builder, days_ago
from support import create_app, eventually, projections, publish, running

# Every derived table, as a user of its rows would compare them (times of computation left out).
# `total` and `launch_issue_tally` keep a row their last contributor left (at zero); a rebuild
# never makes one.
_TABLES = {
    "projection": """
        SELECT workspace, aggregate, id, version, deleted, state, event_id FROM projection""",
    "feedback_fact": "SELECT * FROM feedback_fact",
    "feedback_item": "SELECT * FROM feedback_item",
    "account_fact": "SELECT * FROM account_fact",
    "objective_fact": "SELECT * FROM objective_fact",
    "item_fact": "SELECT * FROM item_fact",
    "launch_fact": "SELECT * FROM launch_fact",
    "issue_fact": "SELECT * FROM issue_fact",
    "launch_issue": "SELECT * FROM launch_issue",
    "launch_issue_label": "SELECT * FROM launch_issue_label",
    "launch_issue_tally": "SELECT * FROM launch_issue_tally WHERE issues <> 0",
    "contribution": "SELECT * FROM contribution",
    "total": "SELECT * FROM total WHERE contributors > 0",
    "contributor_expiry": "SELECT * FROM contributor_expiry",
    "launch_signal": """
        SELECT workspace, launch_key, name, status, score, components, reasons, details
        FROM launch_signal""",
    "alignment_signal": """
        SELECT workspace, scope, alignment, strategic, customer, components, reasons
        FROM alignment_signal""",
    "inbox": "SELECT consumer, workspace, event_id, type FROM inbox",
}


async def _tables(pool: Pool, workspaces: list[str]) -> dict[str, list[dict[str, Any]]]:
    tables = {}
    async with pool.acquire() as conn:
        for name, query in _TABLES.items():
            rows = [
                dict(r)
                for r in await conn.fetch(query)
                if r["workspace"] in workspaces and r.get("consumer", CONSUMER) == CONSUMER
            ]
            tables[name] = sorted(rows, key=lambda r: repr(sorted(r.items())))
    return tables


def _differences(live: Any, rebuilt: Any, path: str = "") -> list[str]:
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        if live.keys() != rebuilt.keys():
            return [f"{path}: keys {sorted(live)} live, {sorted(rebuilt)} rebuilt"]
        return [d for k in live for d in _differences(live[k], rebuilt[k], f"{path}.{k}")]
    if isinstance(live, list) and isinstance(rebuilt, list):
        if len(live) != len(rebuilt):
            return [f"{path}: {len(live)} rows live, {len(rebuilt)} rebuilt"]
        pairs = enumerate(zip(live, rebuilt, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{path}[{i}]")]
    if isinstance(live, float) and isinstance(rebuilt, float):
        # Sums added up in another order differ in their last bits.
        return [] if math.isclose(live, rebuilt, rel_tol=1e-9) else [f"{path}: {live} {rebuilt}"]
    return [] if live == rebuilt else [f"{path}: live {live!r}, rebuilt {rebuilt!r}"]


def _workload(b: Builder) -> list[Event]:
    """Takeovers, deletions, merges, late versions: whatever the fold must get right."""
    events = [b.objective("grow", 3), b.objective("keep", 1), b.objective("old", 2)]
    events += [b.account("acme", 50_000), b.account("beta", 5_000)]
    for n in range(8):
        area = ("billing", "search", None)[n % 3]
        events.append(b.item(f"K-{n}", effort=1 + n % 3, objectives=("grow",), area=area))
    events += [
        b.launch("L1", items=("K-1", "K-2"), checklist=(("docs", False), ("qa", True))),
        b.launch("L2", items=("K-3",)),
    ]
    for n in range(6):
        labels = ["ui", "Blocker"][: 1 + n % 2]
        events.append(
            b.issue(
                f"acme/shop#{n}", item_keys=[f"K-{n}"], kind="bug", priority="high", labels=labels
            )
        )
    for n in range(12):
        events.append(
            b.feedback(
                f"f{n}",
                account_external_id=("acme", "beta", None)[n % 3],
                item_keys=[f"K-{n % 5}"],
                tags=[f"t{n % 2}"],
                created_at=days_ago(3 + n * 7),
                sentiment=-0.4 if n % 4 == 0 else 0.2,
            )
        )
    events += [
        b.account("acme", 250_000),
        b.objective("old", 2, status="achieved"),
        b.deleted("objective", "keep"),
        b.feedback("f5", account_external_id="acme", merged_into="f1", created_at=days_ago(9)),
        b.feedback("f8", status="archived", created_at=days_ago(2)),
        b.deleted("feedback", "f9"),
        b.event(
            FeedbackLinked(feedback_id=b.ids["feedback:f2"], item_key="K-6", by="api", version=9)
        ),
        # Another item takes K-6's key; K-7 goes, then comes back under a higher version.
        b.event(
            ItemUpserted(
                id=new_id(),
                key="K-6",
                title="K-6 again",
                status="planned",
                area="billing",
                version=1,
                updated_at=utcnow(),
            )
        ),
        b.deleted("item", "K-7"),
        b.item("K-7", status="shipped", shipped_at=days_ago(20), area="search"),
        b.event(
            LaunchUpserted(
                id=new_id(),
                key="L1",
                name="L1 again",
                status="planned",
                item_keys=["K-0"],
                version=1,
                updated_at=utcnow(),
            )
        ),
        b.deleted("launch", "L2"),
        b.deleted("issue", "acme/shop#2"),
        b.issue("acme/shop#3", state="closed", closed_at=days_ago(1), item_keys=["K-3"]),
        b.item("K-2", status="shipped", shipped_at=days_ago(400), area="billing"),
    ]
    # A later version published before the one it replaces: the earlier one changes nothing.
    earlier = b.item("K-4", status="dropped", area="search")
    later = b.item("K-4", status="in_progress", objectives=("grow", "old"), area="search")
    return [*events, later, earlier]


def _broken(b: Builder) -> Event:
    return b.event(b.item("broken").parsed()).model_copy(update={"data": {"key": "broken"}})


async def _applied(pool: Pool, workspace: str) -> int:
    query = "SELECT count(*) FROM inbox WHERE consumer = $1 AND workspace = $2"
    count: int = await pool.fetchval(query, CONSUMER, workspace)
    return count


async def _live_tables(settings: Settings, workspace: str, events: list[Event]) -> Any:
    """Publish `events` (one twice, one broken) to a live insights; its tables once applied."""
    applied = len({e.id for e in events if e.type != FeedbackLinked.TYPE})
    app = create_app("insights", settings)
    async with running(app):
        await publish(settings, *events)
        await publish(settings, events[3], msg_id="a second copy")
        await publish(settings, _broken(Builder(workspace)))
        await eventually(lambda: _applied(app.state.pool, workspace), lambda n: n == applied)
        return await _tables(app.state.pool, [workspace])


async def test_a_rebuild_leaves_every_table_as_the_live_consumer_left_it(
    settings: Settings, workspace: str, pool: Pool
) -> None:
    events = _workload(Builder(workspace))
    live = await _live_tables(settings, workspace, events)
    assert live["launch_signal"]
    assert live["alignment_signal"]
    assert live["launch_issue"]
    assert live["launch_issue_label"]
    report = await rebuild(settings)
    assert (report.applied, report.failed) == (len(live["inbox"]), 1)
    found = _differences(live, await _tables(pool, [workspace]))
    assert not found, "\n".join(found[:20])


async def test_a_rebuild_in_small_chunks_leaves_the_same_tables(
    settings: Settings, workspace: str, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _workload(Builder(workspace))
    live = await _live_tables(settings, workspace, events)
    # Many chunks, one of them with the broken event: that one is applied one event at a time.
    monkeypatch.setattr(rebuild_module, "CHUNK", 7)
    report = await rebuild(settings)
    assert (report.applied, report.failed) == (len(live["inbox"]), 1)
    found = _differences(live, await _tables(pool, [workspace]))
    assert not found, "\n".join(found[:20])


async def test_the_live_consumer_applies_nothing_the_rebuild_claimed(
    settings: Settings, workspace: str, pool: Pool
) -> None:
    b = Builder(workspace)
    events = [
        b.objective("grow", 1),
        b.item("A", objectives=("grow",)),
        b.launch("L", items=("A",)),
    ]
    nc = await nats.connect(settings.nats_url)
    await ensure_stream(nc.jetstream(), settings)
    await nc.close()
    await publish(settings, *events)
    report = await rebuild(settings)
    assert report.applied == len(events)
    rebuilt = await _tables(pool, [workspace])
    app = create_app("insights", settings)
    async with running(app):
        # Its durable consumer is new: the stream comes to it from the start, all claimed.
        await eventually(lambda: _seen(app), lambda n: n >= len(events))
        async with pool.acquire() as conn, conn.transaction():
            for event in events:
                assert not await projections(app).replay(conn, event.to_bytes())
    assert await _tables(pool, [workspace]) == rebuilt


async def _seen(app: FastAPI) -> int:
    return projections(app).deliveries_seen


async def test_events_published_during_a_rebuild_are_applied_once(
    settings: Settings, workspace: str, pool: Pool
) -> None:
    b = Builder(workspace)
    first = _workload(b)
    second = [b.item(f"K-{n}", status="in_progress", area="search") for n in range(8)]
    second += [b.feedback(f"g{n}", item_keys=[f"K-{n}"]) for n in range(8)]
    app = create_app("insights", settings)
    async with running(app):
        await publish(settings, *first)
        claimed = len(first) - 1  # all but the link
        await eventually(lambda: _applied(pool, workspace), lambda n: n == claimed)
        # The live consumer keeps consuming while the rebuild holds the tables.
        await asyncio.gather(rebuild(settings), publish(settings, *second))
        total = claimed + len(second)
        await eventually(lambda: _applied(pool, workspace), lambda n: n == total)
        await asyncio.sleep(0.2)  # the last batch's signals, committed with its claims
        live = await _tables(pool, [workspace])
    await rebuild(settings)
    found = _differences(live, await _tables(pool, [workspace]))
    assert not found, "\n".join(found[:20])
