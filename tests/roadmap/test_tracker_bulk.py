"""The set-wise normaliser gives exactly what applying deliveries one at a time gives.

Random sequences of GitHub deliveries (labels naming items, milestones naming launches, closing,
reopening, deleting) with a Jira delivery in the middle and an explicit link made half-way are
applied to one workspace one delivery at a time and to another all at once; the issues, their
links and the events emitted must be the same.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from prodops.contract import Event
from prodops.messaging import outbox
from prodops.runtime.db import Connection, Pool, create_pool, workspace_transaction
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import Delivery
from roadmap import tracker_sql as sql
from roadmap.tracker import IssueRef, link_issue, normalize_delivery
from roadmap.tracker_bulk import normalize_many

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
LABELS = ("roadmap:IT-1", "roadmap:IT-2", "blocker", "P1", "bug")
MILESTONES = (None, "L-1", "L-2")


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await create_pool(settings, schema="roadmap")
    yield pool
    await pool.close()


def _fixture(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return loaded


def _github(rng: random.Random, number: int, action: str) -> tuple[str, dict[str, Any]]:
    payload = copy.deepcopy(_fixture("github/issues.opened.json"))
    closed = action == "closed"
    milestone = rng.choice(MILESTONES)
    payload["action"] = action
    payload["issue"].update(
        id=1000 + number,
        number=number,
        html_url=f"https://github.com/o/r/issues/{number}",
        labels=[{"name": name} for name in rng.sample(LABELS, rng.randint(0, 3))],
        milestone=None if milestone is None else {"title": milestone},
        state="closed" if closed else "open",
        closed_at="2026-05-20T10:00:00Z" if closed else None,
    )
    return f"issues.{action}", payload


def _sequence(seed: int) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """Deliveries (provider, event type, payload) and where the explicit link is made."""
    rng = random.Random(seed)
    steps = [("github", *_github(rng, n, "opened")) for n in range(1, 5)]
    for _ in range(24):
        action = rng.choice(["edited", "labeled", "milestoned", "closed", "reopened", "deleted"])
        steps.append(("github", *_github(rng, rng.randint(1, 5), action)))
    jira = _fixture("jira/webhook-issue-created.json")
    steps.insert(rng.randint(5, len(steps)), ("jira", "jira:issue_created", jira))
    return steps, rng.randint(4, len(steps))


def _deliveries(workspace: str, steps: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Delivery]:
    now = datetime.now(UTC)
    return [
        Delivery(uuid.uuid4(), workspace, uuid.uuid4(), provider, kind, orjson.dumps(body), now)
        for provider, kind, body in steps
    ]


async def _apply(
    pool: Pool, settings: Settings, deliveries: list[Delivery], *, at_once: bool
) -> list[Event]:
    async with workspace_transaction(pool, deliveries[0].workspace, role=settings.app_role) as conn:
        with outbox.deferred() as events:
            if at_once:
                await normalize_many(conn, deliveries)
            else:
                for delivery in deliveries:
                    await normalize_delivery(conn, delivery)
    return events


async def _link(pool: Pool, settings: Settings, workspace: str) -> list[Event]:
    async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
        with outbox.deferred() as events:
            ref = IssueRef(provider="github", external_id="1001")
            await link_issue(conn=conn, workspace=workspace, ref=ref, target="item", key="IT-2")
    return events


async def _state(conn: Connection, workspace: str) -> tuple[list[Any], list[Any]]:
    issues = await conn.fetch(
        "SELECT provider, external_id, key, title, state, blocker, labels, milestone, deleted, "
        "version, closed_at FROM tracker_issue WHERE workspace = $1 ORDER BY external_id",
        workspace,
    )
    links = await conn.fetch(
        "SELECT i.external_id, l.target, l.target_key, l.by FROM tracker_link l "
        "JOIN tracker_issue i ON i.id = l.tracker_issue_id WHERE l.workspace = $1 "
        "ORDER BY 1, 2, 3",
        workspace,
    )
    return [tuple(r) for r in issues], [tuple(r) for r in links]


def _comparable(events: list[Event], ids: dict[Any, str]) -> list[tuple[str, dict[str, Any]]]:
    """Each event's type and data: the issue named by its external id, not its row id, and
    without the time of its transaction."""
    seen = []
    for event in events:
        data = orjson.loads(event.to_bytes())["data"]
        data["id"] = ids[str(data["id"])]
        data.pop("updated_at", None)
        seen.append((event.type, data))
    return seen


@pytest.mark.parametrize("seed", range(6))
async def test_a_batch_at_once_equals_one_delivery_after_another(
    pool: Pool, settings: Settings, workspace: str, seed: int
) -> None:
    steps, link_at = _sequence(seed)
    one, many = workspace, f"m-{workspace}"[:60]
    events: dict[str, list[Event]] = {}
    for ws, at_once in ((one, False), (many, True)):
        first, rest = _deliveries(ws, steps[:link_at]), _deliveries(ws, steps[link_at:])
        events[ws] = await _apply(pool, settings, first, at_once=at_once)
        events[ws] += await _link(pool, settings, ws)
        if rest:
            events[ws] += await _apply(pool, settings, rest, at_once=at_once)
    async with pool.acquire() as conn:
        assert await _state(conn, one) == await _state(conn, many)
        ids = {
            str(r["id"]): r["external_id"]
            for r in await conn.fetch(
                "SELECT id, external_id FROM tracker_issue WHERE workspace = ANY($1::text[])",
                [one, many],
            )
        }
    by_issue = {
        ws: sorted(_comparable(events[ws], ids), key=lambda e: (e[1]["id"], e[1]["version"]))
        for ws in (one, many)
    }
    assert by_issue[one] == by_issue[many]
    assert len(by_issue[one]) >= 4


async def test_the_locked_lookup_is_planned_for_each_call_and_sees_one_workspace(
    pool: Pool, settings: Settings, workspace: str
) -> None:
    # A plan cached while the table was young read every issue of the workspace once per key.
    config = await pool.fetchval(
        "SELECT proconfig FROM pg_proc WHERE proname = 'tracker_issues_locked'"
        " AND pronamespace = current_schema()::regnamespace"
    )
    assert "plan_cache_mode=force_custom_plan" in config
    other = f"o-{workspace}"[:60]
    for ws in (workspace, other):
        await _apply(pool, settings, _deliveries(ws, _sequence(0)[0][:1]), at_once=True)
    stored = await pool.fetch(
        "SELECT workspace, provider, external_id FROM tracker_issue"
        " WHERE workspace = ANY($1::text[])",
        [workspace, other],
    )
    keys = sorted({(r["provider"], r["external_id"]) for r in stored})
    assert len(keys) == 1
    providers, external_ids = [[k[i] for k in keys] for i in (0, 1)]
    async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
        mine = await conn.fetch(sql.LOCK_MANY, workspace, providers, external_ids)
        theirs = await conn.fetch(sql.LOCK_MANY, other, providers, external_ids)
    assert [r["workspace"] for r in mine] == [workspace]
    assert theirs == []  # row-level security holds inside the function too
