"""Each launch's linked issues, kept by the facts' triggers, stay what the facts say.

Items move between launches, launches change their items, issues change and go, keys are reused:
after any such history, `launch_issue` and its tallies equal a fresh link of the facts, and
readiness reads what `readiness.summarize` makes of the issues linked now.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from insights.projection import apply_events
from insights.rules import readiness
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.rules.readiness import PRIORITIES, LinkedIssue, summarize
from insights.signals import launches as launch_signals
from insights.signals.alignment import Context
from insights.signals.launches import launch_facts
from prodops.contract import Event, utcnow
from prodops.runtime.db import Connection, Pool
from signal_events import Builder, linked_issues, random_issue_fields

LAUNCHES = ("L1", "L2", "L3", "L4")
ITEMS = ("K-1", "K-2", "K-3", "K-4", "K-5")
_LABELS = ("blocker", " BLOCKER", "straße", "ui", "P2")


class World:
    """Random fact changes, and what they leave in Python's own terms."""

    def __init__(self, workspace: str, rng: random.Random) -> None:
        self.b, self.rng = Builder(workspace), rng
        self.items: dict[str, str | None] = {}  # key -> its own launch key
        self.launches: dict[str, set[str]] = {}  # key -> item keys
        self.issues: dict[int, dict[str, Any]] = {}

    def step(self) -> Event:
        b, rng = self.b, self.rng
        roll = rng.random()
        if roll < 0.12:
            key = rng.choice(ITEMS)
            if key in self.items and rng.random() < 0.3:
                del self.items[key]
                return b.deleted("item", key)
            self.items[key] = rng.choice((None, *LAUNCHES))
            return b.item(key, launch_key=self.items[key])
        if roll < 0.24:
            key = rng.choice(LAUNCHES)
            if key in self.launches and rng.random() < 0.25:
                del self.launches[key]
                return b.deleted("launch", key)
            self.launches[key] = set(rng.sample(ITEMS, rng.randint(0, 3)))
            return b.launch(key, items=tuple(sorted(self.launches[key])))
        n = rng.randrange(30)
        if n in self.issues and rng.random() < 0.15:
            del self.issues[n]
            return b.deleted("issue", f"acme/shop#{n}")
        fields = random_issue_fields(rng, _LABELS, LAUNCHES, ITEMS, closed_days=(1, 5, 40))
        self.issues[n] = fields
        return b.issue(f"acme/shop#{n}", **fields)

    def linked(self, launch: str) -> list[LinkedIssue]:
        """The issues linked to `launch` now, as readiness sees them."""
        items = self.launches[launch] | {k for k, own in self.items.items() if own == launch}
        return linked_issues(self.b, self.issues, launch, items)


async def _apply(conn: Connection, events: list[Event], rng: random.Random) -> None:
    """The events in batches of random sizes (one alone among them), as the live consumer."""
    start = 0
    while start < len(events):
        size = rng.choice((1, 1, 3, 8, 25))
        await apply_events(conn, events[start : start + size])
        start += size


# What the triggers keep, each in a stable order.
_KEPT = (
    """SELECT launch, issue_id, state, kind, severity, closed_at FROM launch_issue
       WHERE workspace = $1 ORDER BY launch, issue_id""",
    """SELECT launch, label, issue_id FROM launch_issue_label
       WHERE workspace = $1 ORDER BY launch, label, issue_id""",
    """SELECT launch, state, kind, severity, issues FROM launch_issue_tally
       WHERE workspace = $1 AND issues <> 0 ORDER BY launch, state, kind, severity""",
)
_RELINK = (
    "DELETE FROM launch_issue WHERE workspace = $1",
    "DELETE FROM launch_issue_label WHERE workspace = $1",
    "DELETE FROM launch_issue_tally WHERE workspace = $1",
    "SELECT launch_issue_sync($1, array_agg(id)) FROM issue_fact WHERE workspace = $1",
)


async def _kept(conn: Connection, workspace: str) -> list[list[dict[str, Any]]]:
    return [[dict(r) for r in await conn.fetch(query, workspace)] for query in _KEPT]


@pytest.mark.parametrize("seed", range(6))
async def test_linked_issues_follow_every_change_of_the_facts(
    pool: Pool, workspace: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    world = World(workspace, rng)
    # Few evidence ids, so that the most severe open ones are a cut, not all of them.
    monkeypatch.setattr(readiness, "MAX_EVIDENCE", 3)
    monkeypatch.setattr(launch_signals, "MAX_EVIDENCE", 3)
    policy = ReadinessPolicy.model_validate(
        {"blocker_labels": ["blocker", "Strasse"], "blocker_priorities": ["urgent"]}
    )
    ctx = Context(
        ws=workspace,
        now=utcnow(),
        readiness=policy,
        feedback_weight=FeedbackWeightPolicy.model_validate({}),
        emit=False,
    )
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(8):
            await _apply(conn, [world.step() for _ in range(25)], rng)
            found = await launch_facts(conn, ctx, LAUNCHES)
            assert sorted(found) == sorted(world.launches)
            for key in world.launches:
                expected = summarize(world.linked(key), policy, ctx.now)
                got = found[key][1].summary
                assert got is not None
                assert got.open_bug_load == pytest.approx(expected.open_bug_load)
                assert replace(got, open_bug_load=0.0) == replace(expected, open_bug_load=0.0)

        kept = await _kept(conn, workspace)
        for statement in _RELINK:  # a fresh link of the same facts
            await conn.execute(statement, workspace)
        assert kept == await _kept(conn, workspace)
        assert all(kept), "the history left nothing linked, labelled or counted"


async def test_the_database_ranks_priorities_as_readiness_does(pool: Pool) -> None:
    ranks = await pool.fetch(
        "SELECT p, issue_severity(p) AS rank FROM unnest($1::text[]) AS p", list(PRIORITIES)
    )
    assert [r["rank"] for r in ranks] == list(range(1, len(PRIORITIES) + 1))


async def test_linking_is_planned_for_each_call(pool: Pool) -> None:
    # A bulk load outgrows the statistics at once: a plan cached for a small table had run the
    # items' launch lookup once per issue (20 minutes for 200 000 issues in the history bench).
    config = await pool.fetchval(
        "SELECT proconfig FROM pg_proc WHERE proname = 'launch_issue_sync'"
        " AND pronamespace = current_schema()::regnamespace"
    )
    assert "plan_cache_mode=force_custom_plan" in config
