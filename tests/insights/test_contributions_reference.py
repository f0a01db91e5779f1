"""Contributions, totals and expiries equal a naive reference, live and after a full refresh.

The reference reads a workspace's facts as they are held and works out by brute force, over all
of them, what each feedback group and each item contributes (design.md §5 under the
feedback-weight policy) and the totals those add up to. Hypothesis builds the facts from random
events (published out of order, with merges, archives, deletes and unknown item keys) that a
running insights applies through the broker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings

from contribution_histories import EVERY_RULE, POLICIES, History, events_of, histories
from insights import engine
from insights.engine import CONSUMER
from insights.projection import contributions
from insights.rules.domain import EPOCH
from insights.rules.policies import FeedbackWeightPolicy
from prodops.contract import utcnow
from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings
from support import create_app, eventually, publish, running

T = TypeVar("T")
Contribution = tuple[str, str, str, str]  # contributor, metric, target, sub
Total = tuple[str, str, str]  # metric, target, sub

# --- the reference ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """A workspace's facts as the contributions read them."""

    feedback: list[Any]
    items: list[Any]
    active_objectives: set[UUID]
    arr: dict[str, float]


@dataclass
class Derived:
    """What the contributions leave: every contribution, total and expiry."""

    contributions: dict[Contribution, float] = field(default_factory=dict)
    totals: dict[Total, tuple[float, int]] = field(default_factory=dict)
    expiries: dict[str, datetime] = field(default_factory=dict)


def weight(feedback: Any, facts: Facts, policy: FeedbackWeightPolicy) -> float:
    """Priority factor, account factor, 2^(days from EPOCH / half-life): weight before decay."""
    arr = facts.arr.get(feedback["account_external_id"] or "")
    account = 1.0 if arr is None else 1 + math.log(1 + arr / policy.arr_scale)
    days: float = (feedback["created_at"] - EPOCH).total_seconds() / 86_400
    priority: float = policy.priority_factors.of(feedback["priority"])
    return priority * account * 2 ** (days / policy.half_life_days)


def reference(facts: Facts, policy: FeedbackWeightPolicy, now: datetime) -> Derived:
    """Every group's contribution, then every item's (which reads its demand), and the totals."""
    found = Derived()
    for survivor in facts.feedback:
        if survivor["group_id"] == survivor["id"] and survivor["status"] == "open":
            _group(found, survivor, facts, policy, now)
    demand = _item_demand(found)
    for item in facts.items:
        _item(found, item, facts, demand.get(item["key"]))
    for (_, metric, target, sub), value in found.contributions.items():
        total, count = found.totals.get((metric, target, sub), (0.0, 0))
        found.totals[metric, target, sub] = (total + value, count + 1)
    return found


def _group(
    found: Derived, survivor: Any, facts: Facts, policy: FeedbackWeightPolicy, now: datetime
) -> None:
    window = timedelta(days=policy.window_days)
    counted = [
        f
        for f in facts.feedback
        if f["group_id"] == survivor["id"]
        and f["status"] == "open"
        and f["created_at"] >= now - window
    ]
    if not counted:
        return
    heaviest: dict[str, float] = {}
    for f in counted:
        heaviest[f["account_key"]] = max(
            heaviest.get(f["account_key"], 0.0), weight(f, facts, policy)
        )
    demand = sum(heaviest.values())
    own = [i for i in facts.items if i["key"] in survivor["item_keys"]]
    covering = [
        i
        for i in own
        if i["status"] in ("planned", "in_progress")
        or (i["status"] == "shipped" and i["shipped_at"] and i["shipped_at"] >= now - window)
    ]
    rows: dict[Total, float] = {("demand", "", ""): demand}
    if covering:
        rows["covered", "", ""] = demand
    for area in {i["area"] for i in own if i["area"]}:
        rows["demand", area, ""] = demand
        if any(i["area"] == area for i in covering):
            rows["covered", area, ""] = demand
    rows.update({("item_demand", i["key"], ""): demand for i in own})
    for tag in survivor["tags"]:
        rows["tag_demand", tag, ""] = demand
        if not covering:
            rows["tag_unaddressed", tag, ""] = demand
    contributor = f"g:{survivor['id']}"
    found.contributions.update({(contributor, *k): v for k, v in rows.items()})
    ends = [f["created_at"] + window for f in counted]
    ends += [i["shipped_at"] + window for i in covering if i["status"] == "shipped"]
    found.expiries[contributor] = min(ends)


def _item_demand(found: Derived) -> dict[str, float]:
    demand: dict[str, float] = {}
    for (_, metric, target, _), value in found.contributions.items():
        if metric == "item_demand":
            demand[target] = demand.get(target, 0.0) + value
    return demand


def _item(found: Derived, item: Any, facts: Facts, demand: float | None) -> None:
    contributor, me, effort = f"i:{item['id']}", str(item["id"]), item["effort"]
    active = sorted({str(o) for o in item["objective_ids"] if o in facts.active_objectives})
    rows: dict[Total, float] = {}
    for scope in ["", item["area"]] if item["area"] else [""]:
        rows.update({("links", scope, o): 1.0 for o in active})
        if item["status"] not in ("planned", "in_progress"):
            if demand and item["status"] != "shipped":
                rows["unaddressed", scope, me] = demand
            continue
        rows["committed", scope, ""] = effort
        if active:
            rows["aligned", scope, ""] = effort
            rows.update({("objective", scope, o): effort / len(active) for o in active})
        else:
            rows["unaligned", scope, me] = effort
        if demand:
            rows["evidence", scope, ""] = effort
        else:
            rows["unevidenced", scope, me] = effort
    found.contributions.update({(contributor, *k): v for k, v in rows.items()})


# --- what the database holds --------------------------------------------------------------------

_FEEDBACK = """
SELECT id, group_id, account_key, account_external_id, priority, status, created_at, item_keys,
       tags
FROM feedback_fact WHERE workspace = $1
"""
_ITEMS = """
SELECT id, key, status, effort, area, objective_ids, shipped_at FROM item_fact WHERE workspace = $1
"""
_ACTIVE = "SELECT id FROM objective_fact WHERE workspace = $1 AND active"
_ARR = "SELECT external_id, arr FROM account_fact WHERE workspace = $1"
_CONTRIBUTIONS = (
    "SELECT contributor, metric, target, sub, value FROM contribution WHERE workspace = $1"
)
_TOTALS = "SELECT metric, target, sub, value, contributors FROM total WHERE workspace = $1"
_EXPIRIES = "SELECT contributor, expires_at FROM contributor_expiry WHERE workspace = $1"
_FORGET = ("contribution", "total", "contributor_expiry")


async def held_facts(conn: Connection, ws: str) -> Facts:
    """The workspace's facts, as the live consumer left them."""
    return Facts(
        feedback=list(await conn.fetch(_FEEDBACK, ws)),
        items=list(await conn.fetch(_ITEMS, ws)),
        active_objectives={r["id"] for r in await conn.fetch(_ACTIVE, ws)},
        arr={r["external_id"]: r["arr"] for r in await conn.fetch(_ARR, ws)},
    )


async def held(conn: Connection, ws: str) -> Derived:
    """The contributions, totals and expiries the workspace holds."""
    expiries = await conn.fetch(_EXPIRIES, ws)
    derived = Derived(expiries={r["contributor"]: r["expires_at"] for r in expiries})
    for r in await conn.fetch(_CONTRIBUTIONS, ws):
        derived.contributions[r["contributor"], r["metric"], r["target"], r["sub"]] = r["value"]
    for r in await conn.fetch(_TOTALS, ws):
        derived.totals[r["metric"], r["target"], r["sub"]] = (r["value"], r["contributors"])
    return derived


def differences(expected: Derived, actual: Derived) -> list[str]:
    """What differs, beyond float residue; a total its last contributor left must read zero."""
    found = _keyed("contribution", expected.contributions, actual.contributions)
    left = {k: v for k, v in actual.totals.items() if v[1] == 0}
    found += [f"total {k} left by every contributor is {v}" for k, v in left.items() if v[0]]
    counted = {k: v for k, v in actual.totals.items() if v[1] != 0}
    found += _keyed("total", expected.totals, counted)
    if expected.expiries != actual.expiries:
        found.append(f"expiries {expected.expiries} != {actual.expiries}")
    return found


def _keyed(what: str, expected: dict[Any, Any], actual: dict[Any, Any]) -> list[str]:
    found = [f"{what} {k} missing" for k in expected.keys() - actual.keys()]
    found += [f"{what} {k} not expected" for k in actual.keys() - expected.keys()]
    for k in expected.keys() & actual.keys():
        want, have = expected[k], actual[k]
        if not _close(want, have):
            found.append(f"{what} {k} is {have}, not {want}")
    return found


def _close(want: Any, have: Any) -> bool:
    if isinstance(want, tuple):
        return all(_close(w, h) for w, h in zip(want, have, strict=True))
    return bool(math.isclose(want, have, rel_tol=1e-9, abs_tol=1e-6))


# --- the property -------------------------------------------------------------------------------

_APPLIED = "SELECT count(*) FROM inbox WHERE consumer = $1 AND workspace = $2"
_PUT_POLICY = """
INSERT INTO policy (workspace, kind, version, body) VALUES ($1, 'feedback-weight', 1, $2)
"""


async def _check(app: FastAPI, settings: Settings, history: History) -> dict[str, list[str]]:
    """Apply the history live in a workspace of its own; what differs from the reference."""
    ws = f"ws-{uuid4().hex[:12]}"  # not `random`: Hypothesis seeds it alike for every example
    events = events_of(history, ws)
    pool = app.state.pool
    if events:
        await publish(settings, *events)
        await eventually(lambda: pool.fetchval(_APPLIED, CONSUMER, ws), len(events).__eq__, 30)
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            found = await _every_path(conn, ws, history.policy)
        finally:
            await tr.rollback()
    return {path: wrong for path, wrong in found.items() if wrong}


async def _every_path(
    conn: Connection, ws: str, policy: FeedbackWeightPolicy
) -> dict[str, list[str]]:
    """Differences live, refreshed, refreshed under `policy`, and refreshed from nothing."""
    facts, now = await held_facts(conn, ws), utcnow()
    expected = reference(facts, POLICIES[0], now)
    found = {"live": differences(expected, await held(conn, ws))}
    await engine.refresh_all(conn, ws, emit=False, now=now)
    found["refreshed"] = differences(expected, await held(conn, ws))
    await conn.execute(_PUT_POLICY, ws, policy.model_dump(mode="json"))
    await engine.refresh_all(conn, ws, emit=False, now=now)
    expected = reference(facts, policy, now)
    found["under the policy"] = differences(expected, await held(conn, ws))
    for table in _FORGET:
        await conn.execute(f"DELETE FROM {table} WHERE workspace = $1", ws)  # noqa: S608 - our constant
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contributions, "CHUNK", 2)  # many chunks of a few contributors each
        await engine.refresh_all(conn, ws, emit=False, now=now)
    found["from nothing, in chunks"] = differences(expected, await held(conn, ws))
    return found


# Shrinking a failing history takes longer than passing all of them.
@pytest.mark.timeout(300)
async def test_contributions_equal_the_reference_live_and_after_refreshing_everything(
    settings: Settings,
) -> None:
    app = create_app("insights", settings)
    async with running(app):
        loop = asyncio.get_running_loop()

        def call(coroutine: Coroutine[Any, Any, T]) -> T:
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

        # Hypothesis runs synchronously: in a thread, handing each example to the app's loop.
        @hypothesis_settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(history=histories())
        @example(history=EVERY_RULE)
        def contributions_match(history: History) -> None:
            assert call(_check(app, settings, history)) == {}

        await asyncio.to_thread(contributions_match)
