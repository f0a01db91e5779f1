"""Launches read together get the facts each gets read alone: no issue or feedback strays."""

from __future__ import annotations

from typing import Any

import pytest

from insights.facts import Touch, apply_fact
from insights.launch_signals import launch_facts, refresh_launches
from insights.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.signals import Context
from prodops.db import Pool, create_pool
from prodops.events import Event, utcnow
from prodops.settings import Settings
from signal_events import Builder, days_ago


@pytest.fixture
async def pool(settings: Settings) -> Any:
    """A pool on the insights schema of the test database."""
    value = await create_pool(settings, schema="insights", max_size=2)
    yield value
    await value.close()


def _launches(b: Builder) -> list[Event]:
    """Launches sharing items and issues, with support on their items in both windows."""
    events = [b.item(f"K-{n}", launch_key="L3" if n == 5 else None) for n in range(6)]
    events += [
        b.launch("L1", items=("K-1", "K-2"), checklist=(("docs", False),)),
        b.launch("L2", items=("K-2", "K-3")),
        b.launch("L3", items=("K-4",)),  # and K-5, whose item names it
        b.launch("L4"),  # nothing linked
    ]
    links: list[dict[str, Any]] = [
        {"item_keys": ["K-1"]},
        {"item_keys": ["K-2"], "kind": "bug", "priority": "high"},  # L1 and L2 through K-2
        {"launch_keys": ["L2"], "state": "closed", "closed_at": days_ago(2)},
        {"launch_keys": ["L1", "L3"], "item_keys": ["K-3"]},  # L1, L3 directly; L2 via K-3
        {"item_keys": ["K-5"], "kind": "bug"},  # L3 through its item's own launch key
        {"item_keys": ["K-9"]},  # no launch
    ]
    events += [b.issue(f"acme/shop#{n}", **fields) for n, fields in enumerate(links)]
    for n in range(12):
        events.append(
            b.feedback(
                f"f{n}",
                item_keys=[f"K-{n % 6}", f"K-{(n + 1) % 6}"],
                created_at=days_ago(1 + n * 4),
                sentiment=-0.5 if n % 3 == 0 else 0.3,
            )
        )
    return events


async def test_launches_read_together_get_what_each_gets_read_alone(
    pool: Pool, workspace: str
) -> None:
    b = Builder(workspace)
    ctx = Context(
        ws=workspace,
        now=utcnow(),
        readiness=ReadinessPolicy.model_validate({}),
        feedback_weight=FeedbackWeightPolicy.model_validate({}),
        emit=False,
    )
    keys = ["L1", "L2", "L3", "L4", "gone"]
    async with pool.acquire() as conn, conn.transaction():
        for event in _launches(b):
            await apply_fact(conn, event, Touch())
        together = await launch_facts(conn, ctx, keys)
        alone = {k: v for key in keys for k, v in (await launch_facts(conn, ctx, [key])).items()}
        assert together == alone
        assert sorted(together) == ["L1", "L2", "L3", "L4"]
        issues = {k: sorted(i.key for i in f.issues) for k, (_, f) in together.items()}
        assert issues == {
            "L1": ["acme/shop#0", "acme/shop#1", "acme/shop#3"],
            "L2": ["acme/shop#1", "acme/shop#2", "acme/shop#3"],
            "L3": ["acme/shop#3", "acme/shop#4"],
            "L4": [],
        }
        support = {k: f.support for k, (_, f) in together.items()}
        assert support["L1"].recent + support["L1"].baseline > 0
        assert support["L4"].recent == support["L4"].baseline == 0

        await refresh_launches(conn, ctx, keys)
        held = await conn.fetch(
            "SELECT launch_key, details FROM launch_signal WHERE workspace = $1 ORDER BY 1",
            workspace,
        )
        assert [r["launch_key"] for r in held] == ["L1", "L2", "L3", "L4"]
        assert [r["details"]["total_issues"] for r in held] == [3, 3, 2, 0]
        await conn.execute("DELETE FROM launch_fact WHERE workspace = $1 AND key = 'L2'", workspace)
        await refresh_launches(conn, ctx, ["L2", "L3"])
        keys_held = await conn.fetch(
            "SELECT launch_key FROM launch_signal WHERE workspace = $1 ORDER BY 1", workspace
        )
        assert [r["launch_key"] for r in keys_held] == ["L1", "L3", "L4"]
