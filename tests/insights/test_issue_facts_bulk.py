"""Tracker-issue events applied set-wise leave the facts as applying them one at a time does."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import pytest

from insights.facts import Touch, apply_fact
from insights.facts_bulk import apply_issues, rounds
from prodops.contract import Event, TrackerIssueDeleted, TrackerIssueUpserted, make_event, utcnow
from prodops.runtime.db import Connection, Pool, create_pool
from prodops.runtime.settings import Settings


@pytest.fixture
async def pool(settings: Settings) -> Any:
    """A pool on the insights schema of the test database."""
    value = await create_pool(settings, schema="insights", max_size=2)
    yield value
    await value.close()


def _sequence(seed: int, length: int = 60) -> list[Event]:
    """Changes to a few issues: relinks, closes, deletions, late and repeated versions."""
    rng = random.Random(seed)
    ids = [UUID(int=rng.getrandbits(128)) for _ in range(5)]
    versions = dict.fromkeys(ids, 0)
    events: list[Event] = []
    for _ in range(length):
        issue = rng.choice(ids)
        roll = rng.random()
        if roll < 0.1 and events:
            events.append(rng.choice(events))  # a redelivered copy
            continue
        # Mostly the next version; sometimes one already passed, or the same again.
        versions[issue] += rng.choice((1, 1, 1, 2, 0, -1))
        version = max(1, versions[issue])
        data: TrackerIssueUpserted | TrackerIssueDeleted
        if roll < 0.25:
            data = TrackerIssueDeleted(id=issue, version=version)
        else:
            closed = rng.random() < 0.3
            data = TrackerIssueUpserted(
                id=issue,
                provider="github",
                external_id=str(issue),
                key=f"acme/shop#{ids.index(issue)}",
                title="t",
                state="closed" if closed else "open",
                kind=rng.choice(("bug", "task")),
                priority=rng.choice(("none", "high", "low")),
                labels=rng.sample(["a", "b", "c"], rng.randint(0, 2)),
                item_keys=rng.sample([f"K-{n}" for n in range(8)], rng.randint(0, 2)),
                launch_keys=rng.sample([f"L{n}" for n in range(8)], rng.randint(0, 2)),
                created_at=utcnow(),
                closed_at=utcnow() if closed else None,
                version=version,
                updated_at=utcnow(),
            )
        events.append(make_event(data, service="roadmap", workspace="unset"))
    return events


_BATCH = 12


def _in(workspace: str, events: list[Event]) -> list[Event]:
    return [e.model_copy(update={"workspace": workspace}) for e in events]


async def _facts(conn: Connection, workspace: str) -> dict[str, Any]:
    query = "SELECT * FROM issue_fact WHERE workspace = $1 ORDER BY id"
    issues = await conn.fetch(query, workspace)
    held = await conn.fetch(
        """SELECT aggregate, id, version, deleted, state, event_id FROM projection
        WHERE workspace = $1 ORDER BY aggregate, id""",
        workspace,
    )
    return {
        "issues": [{**r, "workspace": None} for r in issues],
        "projection": [dict(r) for r in held],
    }


@pytest.mark.parametrize("seed", range(6))
async def test_batches_of_issue_events_leave_what_one_at_a_time_leaves(
    pool: Pool, workspace: str, seed: int
) -> None:
    first, second = _sequence(seed), _sequence(seed + 100)
    one, other = f"{workspace}-1", f"{workspace}-2"
    bulk_one, bulk_other = f"{workspace}-b1", f"{workspace}-b2"
    several_rounds = False
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, len(first), _BATCH):
            expected = {one: Touch(), other: Touch()}
            for ws, events in ((one, first), (other, second)):
                for event in _in(ws, events[start : start + _BATCH]):
                    await apply_fact(conn, event, expected[ws])
            # The batch interleaves the two workspaces' events.
            pairs = zip(
                _in(bulk_one, first[start : start + _BATCH]),
                _in(bulk_other, second[start : start + _BATCH]),
                strict=True,
            )
            batch = [e for pair in pairs for e in pair]
            several_rounds |= len(rounds(batch)) > 1
            touches: dict[str, Touch] = {}
            await apply_issues(conn, batch, touches)
            assert touches.get(bulk_one, Touch()) == expected[one]
            assert touches.get(bulk_other, Touch()) == expected[other]
            assert await _facts(conn, bulk_one) == await _facts(conn, one)
            assert await _facts(conn, bulk_other) == await _facts(conn, other)
        assert several_rounds  # some issue changed more than once in a batch
        assert (await _facts(conn, one))["issues"], "the sequence leaves some issue standing"


async def test_an_invalid_issue_event_fails_the_batch(pool: Pool, workspace: str) -> None:
    good = _in(workspace, _sequence(1, length=3))
    bad = good[0].model_copy(update={"data": {"id": "not an id"}})
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ValueError, match="id"):
            await apply_issues(conn, [*good, bad], {})
