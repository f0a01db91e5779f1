"""What recomputing contributions costs: statements independent of how many, writes where moved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from insights import engine
from insights.engine import CONSUMER
from insights.projection import contributions
from insights.projection.facts import Touch
from insights.rules.policies import FeedbackWeightPolicy
from prodops.contract import Event, utcnow
from prodops.runtime.settings import Settings
from signal_events import Builder, days_ago
from support import create_app, eventually, publish, running

_APPLIED = "SELECT count(*) FROM inbox WHERE consumer = $1 AND workspace = $2"
_GROUPS = "SELECT DISTINCT group_id FROM feedback_fact WHERE workspace = $1"
_ITEMS = "SELECT id FROM item_fact WHERE workspace = $1"
# Every item moves to another area with more effort, every feedback weighs more: so each
# recompute reads, drops, adds and rewrites rows of every contributor.
_MOVE_EVERYTHING = (
    "UPDATE item_fact SET area = 'search', effort = effort + 1 WHERE workspace = $1",
    "UPDATE feedback_fact SET priority = 'urgent' WHERE workspace = $1",
)
_MOVE_BACK = "UPDATE item_fact SET area = 'billing', effort = effort + 1 WHERE workspace = $1"


def _workload(b: Builder) -> list[Event]:
    """Groups that share items, areas, tags and accounts; merges; shipped and idea items."""
    events = [b.account("acme", 50_000), b.account("beta", 5_000), b.account("gamma", 900)]
    statuses = ("planned", "in_progress", "shipped", "idea")
    for n in range(6):
        events.append(
            b.item(
                f"K-{n}",
                status=statuses[n % 4],
                area=("billing", "search", None)[n % 3],
                shipped_at=days_ago(20 + n) if statuses[n % 4] == "shipped" else None,
            )
        )
    for n in range(16):
        events.append(
            b.feedback(
                f"f{n}",
                account_external_id=("acme", "beta", "gamma", None)[n % 4],
                item_keys=[f"K-{n % 6}", f"K-{(n + 2) % 6}"][: 1 + n % 2],
                tags=[f"t{n % 3}"],
                priority=("urgent", "high", "normal", "low")[n % 4],
                created_at=days_ago(2 + n * 9),
            )
        )
    events += [
        b.feedback("f5", account_external_id="acme", merged_into="f1", created_at=days_ago(9)),
        b.feedback("f6", account_external_id="beta", merged_into="f1", created_at=days_ago(4)),
        b.feedback("f9", merged_into="f3", created_at=days_ago(30)),
        b.feedback("f12", status="archived", created_at=days_ago(2)),
    ]
    return events


def _requested_items(b: Builder, count: int) -> list[Event]:
    """`count` committed items of one objective and area, each asked for by one feedback."""
    events = [b.objective("O1", 1), b.account("acme", 50_000)]
    for n in range(count):
        events.append(b.item(f"K-{n}", area="billing", objectives=("O1",)))
        events.append(
            b.feedback(f"f{n}", account_external_id="acme", item_keys=[f"K-{n}"], tags=["sso"])
        )
    return events


@asynccontextmanager
async def _insights(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app("insights", settings)
    async with running(app):
        yield app


async def _apply(app: FastAPI, settings: Settings, events: list[Event]) -> None:
    """Publish `events` and wait until the live consumer has applied every one."""
    await publish(settings, *events)
    ws, pool = events[0].workspace, app.state.pool
    await eventually(lambda: pool.fetchval(_APPLIED, CONSUMER, ws), len(events).__eq__)


async def _statements_to_refresh_everything(app: FastAPI, workspace: str) -> tuple[int, int]:
    """Statements of refreshing every group and item once everything moved, and of the items."""
    async with app.state.pool.acquire() as conn, conn.transaction():
        for statement in _MOVE_EVERYTHING:
            await conn.execute(statement, workspace)
        groups = {r["group_id"] for r in await conn.fetch(_GROUPS, workspace)}
        items = sorted(r["id"] for r in await conn.fetch(_ITEMS, workspace))
        refreshing: list[Any] = []
        with conn.query_logger(refreshing.append):
            touch = Touch(groups=groups, items=set(items))
            await engine.refresh(conn, workspace, touch, emit=False, now=utcnow())
        await conn.execute(_MOVE_BACK, workspace)
        recomputing: list[Any] = []
        with conn.query_logger(recomputing.append):
            changed = await contributions.recompute_items(conn, workspace, items)
    assert changed
    return len(refreshing), len(recomputing)


async def test_refreshing_items_costs_the_same_statements_however_many(
    settings: Settings, workspace: str
) -> None:
    few, many = workspace, f"{workspace}-many"
    async with _insights(settings) as app:
        await _apply(app, settings, _requested_items(Builder(few), 2))
        await _apply(app, settings, _requested_items(Builder(many), 60))
        costs = [await _statements_to_refresh_everything(app, ws) for ws in (few, many)]
    assert costs[0] == costs[1], costs
    # The items' contributions alone: one read of their facts, then what `replace` needs.
    assert costs[0][1] == 5


async def test_a_recompute_writes_an_expiry_only_where_it_moves(
    settings: Settings, workspace: str
) -> None:
    expiries = "SELECT contributor, expires_at, xmin::text AS version FROM contributor_expiry"
    async with _insights(settings) as app, app.state.pool.acquire() as conn:
        await _apply(app, settings, _workload(Builder(workspace)))
        groups = sorted(r["group_id"] for r in await conn.fetch(_GROUPS, workspace))
        query = f"{expiries} WHERE workspace = $1"
        before = {r["contributor"]: r for r in await conn.fetch(query, workspace)}
        assert before
        now = utcnow()
        await contributions.recompute_groups(conn, workspace, groups, FeedbackWeightPolicy(), now)
        unchanged = {r["contributor"]: r for r in await conn.fetch(query, workspace)}
        assert unchanged == before  # same times, and no new row versions

        shorter = FeedbackWeightPolicy(window_days=60)
        await contributions.recompute_groups(conn, workspace, groups, shorter, now)
        after = {r["contributor"]: r for r in await conn.fetch(query, workspace)}
        shares = await contributions.group_shares(conn, workspace, groups, shorter, now)
    expected = {f"g:{g}": s.expires_at for g, s in shares.items() if s.expires_at is not None}
    assert {c: r["expires_at"] for c, r in after.items()} == expected
    moved = [c for c in after if after[c]["expires_at"] != before[c]["expires_at"]]
    assert moved  # the shorter window moved some, and those were written
    assert all(after[c]["version"] != before[c]["version"] for c in moved)
