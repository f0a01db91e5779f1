"""Feedback groups recomputed together leave what recomputing them one at a time leaves."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from insights import contributions
from insights.engine import CONSUMER
from insights.policies import FeedbackWeightPolicy, PriorityFactors
from prodops.contract import Event, utcnow
from prodops.runtime.settings import Settings
from signal_events import Builder, days_ago
from support import create_app, eventually, publish, running

SNAPSHOT = {
    "contribution": "SELECT contributor, metric, target, sub, value FROM contribution",
    "total": "SELECT metric, target, sub, value, contributors FROM total",
    "contributor_expiry": "SELECT contributor, expires_at FROM contributor_expiry",
}


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


async def _snapshot(conn: Any, workspace: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(
            tuple(r) for r in await conn.fetch(f"{query} WHERE workspace = $1", workspace)
        )
        for table, query in SNAPSHOT.items()
    }


def _same(left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]]) -> bool:
    for table in SNAPSHOT:
        if len(left[table]) != len(right[table]):
            return False
        for a, b in zip(left[table], right[table], strict=True):
            for x, y in zip(a, b, strict=True):
                close = isinstance(x, float) and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
                if not close and x != y:
                    return False
    return True


@asynccontextmanager
async def _applied(settings: Settings, workspace: str) -> AsyncIterator[tuple[Any, list[UUID]]]:
    """The workload applied by a running insights: a connection, and every feedback group."""
    events = _workload(Builder(workspace))
    async with running(create_app("insights", settings)) as _:
        await publish(settings, *events)
        conn = await asyncpg.connect(
            settings.database_url, server_settings={"search_path": "insights"}
        )
        try:
            applied = "SELECT count(*) FROM inbox WHERE consumer = $1 AND workspace = $2"
            await eventually(
                lambda: conn.fetchval(applied, CONSUMER, workspace), len(events).__eq__
            )
            rows = await conn.fetch(
                "SELECT DISTINCT group_id FROM feedback_fact WHERE workspace = $1", workspace
            )
            yield conn, sorted(r["group_id"] for r in rows)
        finally:
            await conn.close()


@pytest.mark.parametrize(
    "policy",
    [
        FeedbackWeightPolicy(),
        FeedbackWeightPolicy(
            priority_factors=PriorityFactors(urgent=5.0, high=1.0), arr_scale=1_000.0
        ),
        FeedbackWeightPolicy(window_days=60),
    ],
    ids=["same policy", "other weights", "shorter window"],
)
async def test_groups_recomputed_together_equal_one_group_at_a_time(
    settings: Settings, workspace: str, policy: FeedbackWeightPolicy
) -> None:
    async with _applied(settings, workspace) as (conn, groups):
        groups.append(UUID(int=7))  # a group with no members: its contribution is nothing
        now = utcnow() + timedelta(days=60)  # the oldest feedback leaves the window
        outcomes = []
        for batches in ([groups], [[g] for g in groups]):
            tr = conn.transaction()
            await tr.start()
            try:
                changed: set[contributions.Key] = set()
                for batch in batches:
                    changed |= await contributions.recompute_groups(
                        conn, workspace, batch, policy, now
                    )
                outcomes.append((changed, await _snapshot(conn, workspace)))
            finally:
                await tr.rollback()
    (together, after_together), (one_by_one, after_one_by_one) = outcomes
    assert together == one_by_one
    assert together  # the policy or the time moved something
    assert _same(after_together, after_one_by_one), (after_together, after_one_by_one)


async def test_a_recompute_writes_an_expiry_only_where_it_moves(
    settings: Settings, workspace: str
) -> None:
    expiries = "SELECT contributor, expires_at, xmin::text AS version FROM contributor_expiry"
    async with _applied(settings, workspace) as (conn, groups):
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
