"""Launch facts read set-wise: each launch gets what it gets alone, as readiness would see it."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from insights.projection import apply_events
from insights.rules import readiness
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.rules.readiness import PRIORITIES, summarize
from insights.signals import launches as launch_signals
from insights.signals.alignment import Context
from insights.signals.launches import launch_facts, refresh_launches
from prodops.contract import Event, utcnow
from prodops.runtime.db import Pool
from signal_events import Builder, days_ago, linked_issues, random_issue_fields


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


def _context(workspace: str, readiness: ReadinessPolicy | None = None) -> Context:
    """Signals of `workspace` read now, under `readiness` (the default policy if None)."""
    return Context(
        ws=workspace,
        now=utcnow(),
        readiness=readiness or ReadinessPolicy.model_validate({}),
        feedback_weight=FeedbackWeightPolicy.model_validate({}),
        emit=False,
    )


async def test_launches_read_together_get_what_each_gets_read_alone(
    pool: Pool, workspace: str
) -> None:
    b = Builder(workspace)
    ctx = _context(workspace)
    keys = ["L1", "L2", "L3", "L4", "gone"]
    async with pool.acquire() as conn, conn.transaction():
        await apply_events(conn, _launches(b))
        together = await launch_facts(conn, ctx, keys)
        alone = {k: v for key in keys for k, v in (await launch_facts(conn, ctx, [key])).items()}
        assert together == alone
        assert sorted(together) == ["L1", "L2", "L3", "L4"]
        summaries = {k: f.summary for k, (_, f) in together.items()}
        assert {k: s.total for k, s in summaries.items() if s} == {
            "L1": 3,
            "L2": 3,
            "L3": 2,
            "L4": 0,
        }
        key_of = {b.id_of(f"issue:acme/shop#{n}"): f"acme/shop#{n}" for n in range(6)}
        open_keys = {
            k: sorted(key_of[i] for i in s.most_severe_open) for k, s in summaries.items() if s
        }
        assert open_keys == {
            "L1": ["acme/shop#0", "acme/shop#1", "acme/shop#3"],
            "L2": ["acme/shop#1", "acme/shop#3"],  # and the closed acme/shop#2
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


_LABELS = (
    "P1",
    "blocker",
    " Blocker ",
    "BLOCKER",
    "stop-ship",
    "STRASSE",
    "straße",
    "\tblocker",
    "ui",
)


def _random_issue(b: Builder, rng: random.Random, n: int) -> tuple[Event, dict[str, Any]]:
    """A random issue, linked to some launches and some items, and its fields."""
    launches, items = ("L1", "L2", "L3"), ("K-1", "K-2", "K-3", "K-4")
    fields = random_issue_fields(rng, _LABELS, launches, items, closed_days=(1, 5, 20, 40))
    return b.issue(f"acme/shop#{n}", **fields), fields


@pytest.mark.parametrize("seed", range(4))
async def test_the_database_summarises_issues_as_readiness_does(
    pool: Pool, workspace: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    b = Builder(workspace)
    # Few evidence ids, so that the most severe open ones are a cut, not all of them.
    monkeypatch.setattr(readiness, "MAX_EVIDENCE", 4)
    monkeypatch.setattr(launch_signals, "MAX_EVIDENCE", 4)
    policy = ReadinessPolicy.model_validate(
        {
            "blocker_labels": rng.sample(["blocker", "Straße", "stop-ship"], rng.randint(1, 2)),
            "blocker_priorities": rng.sample(PRIORITIES, rng.randint(0, 2)),
            "serious_bug_priorities": rng.sample(PRIORITIES, rng.randint(1, 3)),
            "bug_load": {p: rng.choice((0.25, 0.3, 1.0, 3.5)) for p in PRIORITIES},
            "throughput_window_days": rng.choice((3, 14, 30)),
        }
    )
    ctx = _context(workspace, policy)
    launches = {"L1": {"K-1", "K-2"}, "L2": {"K-2"}, "L3": set()}
    events = [b.item(f"K-{n}", launch_key="L3" if n == 4 else None) for n in range(1, 5)]
    events += [b.launch(key, items=tuple(sorted(items))) for key, items in launches.items()]
    launches["L3"].add("K-4")  # through the item's own launch key
    issues = [_random_issue(b, rng, n) for n in range(40)]
    async with pool.acquire() as conn, conn.transaction():
        await apply_events(conn, [*events, *(e for e, _ in issues)])
        found = await launch_facts(conn, ctx, sorted(launches))
    for key, items in launches.items():
        linked = linked_issues(b, dict(enumerate(f for _, f in issues)), key, items)
        expected = summarize(linked, policy, ctx.now)
        got = found[key][1].summary
        assert got is not None
        assert got.open_bug_load == pytest.approx(expected.open_bug_load)
        assert replace(got, open_bug_load=0.0) == replace(expected, open_bug_load=0.0), key
    assert any(found[k][1].summary.blockers for k in launches)  # type: ignore[union-attr]


async def test_a_launch_with_only_closed_issues_is_counted_with_none_named(
    pool: Pool, workspace: str
) -> None:
    b = Builder(workspace)
    ctx = _context(workspace, ReadinessPolicy.model_validate({"throughput_window_days": 14}))
    events = [b.launch("L1")]
    for n, age in enumerate((2, 30)):
        fields = {"launch_keys": ["L1"], "state": "closed", "closed_at": days_ago(age)}
        events.append(b.issue(f"acme/shop#{n}", kind="bug", priority="urgent", **fields))
    async with pool.acquire() as conn, conn.transaction():
        await apply_events(conn, events)
        found = await launch_facts(conn, ctx, ["L1"])
    summary = found["L1"][1].summary
    assert summary is not None
    assert (summary.total, summary.open, summary.closed_recently) == (2, 0, 1)
    assert summary.most_severe_open == ()
    assert summary.blockers == summary.serious_bugs == ()


async def test_every_array_index_of_insights_keeps_a_short_pending_list(pool: Pool) -> None:
    # Every search reads a GIN index's pending list whole: readiness searches these per batch.
    rows = await pool.fetch(
        """
        SELECT c.relname, c.reloptions FROM pg_class AS c
        JOIN pg_am AS a ON a.oid = c.relam
        WHERE a.amname = 'gin' AND c.relnamespace = 'insights'::regnamespace
        """
    )
    assert {r["relname"] for r in rows} >= {"issue_fact_items", "issue_fact_launches"}
    assert all("gin_pending_list_limit=64" in (r["reloptions"] or []) for r in rows), rows
