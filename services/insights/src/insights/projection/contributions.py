"""Contributions: what one feedback group or one item adds to the totals the signals read.

Recomputing a contributor reads only its own facts (a group's members, an item and its
objectives), and the difference from what it contributed before is added to the totals: so an
event costs what it touches, never a rescan of the workspace's history. Groups and items are
recomputed set-wise, a fixed handful of statements per chunk of contributors, so that the end of
a live batch and the refresh of a whole workspace (after a policy change or a rebuild) run this
same code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from insights.projection.facts import COMMITTED
from insights.rules import domain
from insights.rules.policies import FeedbackWeightPolicy
from prodops.runtime.db import Connection

Key = tuple[str, str, str]  # metric, target, sub
# Metrics whose target is a scope: '' (the workspace) or a product area.
SCOPE_METRICS = ("demand", "covered", "committed", "aligned", "evidence", "objective", "links")
# Per scope, one row per item (sub = item id), ranked by value: what the alignment reasons name.
REASON_METRICS = ("unaligned", "unevidenced", "unaddressed")
# Contributors per round of statements: a live batch fits in one round, and a whole workspace's
# rows never sit in memory (or in one statement) at once.
CHUNK = 1000
T = TypeVar("T")

_FETCH = """
SELECT contributor, metric, target, sub, value FROM contribution
WHERE workspace = $1 AND contributor = ANY($2::text[])
"""
_ADD_TO_TOTALS = """
INSERT INTO total (workspace, metric, target, sub, value, contributors)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::int[])
ON CONFLICT (workspace, metric, target, sub) DO UPDATE
SET contributors = total.contributors + EXCLUDED.contributors,
    -- Back to exactly zero when the last contributor leaves, so float residue cannot pile up.
    value = CASE WHEN total.contributors + EXCLUDED.contributors = 0 THEN 0
                 ELSE total.value + EXCLUDED.value END
"""
_DROP = """
DELETE FROM contribution WHERE workspace = $1 AND (contributor, metric, target, sub) IN (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
)
"""
_PUT = """
INSERT INTO contribution (workspace, contributor, metric, target, sub, value)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
ON CONFLICT (workspace, contributor, metric, target, sub) DO UPDATE SET value = EXCLUDED.value
"""
_SET_EXPIRY = """
INSERT INTO contributor_expiry (workspace, contributor, expires_at)
SELECT $1, * FROM unnest($2::text[], $3::timestamptz[])
ON CONFLICT (workspace, contributor) DO UPDATE SET expires_at = EXCLUDED.expires_at
-- Most recomputes leave it as it was: then no new row version and no index entries.
WHERE contributor_expiry.expires_at IS DISTINCT FROM EXCLUDED.expires_at
"""
_CLEAR_EXPIRY = """
DELETE FROM contributor_expiry WHERE workspace = $1 AND contributor = ANY($2::text[])
"""
_GROUP_MEMBERS = """
SELECT group_id, id, account_key, account_external_id, priority, status, created_at, item_keys,
       tags
FROM feedback_fact WHERE workspace = $1 AND group_id = ANY($2::uuid[])
"""
_ARR = "SELECT external_id, arr FROM account_fact WHERE workspace = $1 AND external_id = ANY($2)"
_ITEMS_BY_KEY = """
SELECT key, status, area, shipped_at FROM item_fact WHERE workspace = $1 AND key = ANY($2)
"""
# Each item with its active objectives and the demand total its feedback groups wrote.
_ITEMS = """
SELECT i.id, i.key, i.status, i.effort, i.area,
       ARRAY(SELECT o.id::text FROM objective_fact AS o
             WHERE o.workspace = $1 AND o.id = ANY(i.objective_ids) AND o.active
             ORDER BY o.id) AS active,
       (SELECT t.value FROM total AS t
        WHERE t.workspace = $1 AND t.metric = 'item_demand' AND t.target = i.key AND t.sub = ''
          AND t.contributors > 0) AS demand
FROM item_fact AS i WHERE i.workspace = $1 AND i.id = ANY($2::uuid[])
"""


async def replace(conn: Connection, ws: str, new: Mapping[str, dict[Key, float]]) -> set[Key]:
    """Make `new[c]` each contributor c's contribution; returns the totals that changed.

    Whatever the number of contributors, four statements: their contributions before, the
    differences added to the totals (summed per total), the rows gone, the rows new or changed.
    """
    old: dict[str, dict[Key, float]] = {contributor: {} for contributor in new}
    for r in await conn.fetch(_FETCH, ws, list(new)):
        old[r["contributor"]][r["metric"], r["target"], r["sub"]] = r["value"]
    totals: dict[Key, tuple[float, int]] = {}
    gone: list[tuple[str, Key]] = []
    kept: list[tuple[str, Key]] = []
    for contributor, rows in new.items():
        before = old[contributor]
        for k in before.keys() | rows.keys():
            if k in before and k in rows and before[k] == rows[k]:
                continue
            value, count = totals.get(k, (0.0, 0))
            totals[k] = (
                value + rows.get(k, 0.0) - before.get(k, 0.0),
                count + (k in rows) - (k in before),
            )
            (kept if k in rows else gone).append((contributor, k))
    if not totals:
        return set()
    keys = list(totals)
    await conn.execute(
        _ADD_TO_TOTALS,
        ws,
        *_columns(keys),
        [totals[k][0] for k in keys],
        [totals[k][1] for k in keys],
    )
    if gone:
        await conn.execute(_DROP, ws, [c for c, _ in gone], *_columns([k for _, k in gone]))
    if kept:
        await conn.execute(
            _PUT,
            ws,
            [c for c, _ in kept],
            *_columns([k for _, k in kept]),
            [new[c][k] for c, k in kept],
        )
    return set(keys)


def _columns(keys: list[Key]) -> tuple[list[str], list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]


@dataclass(frozen=True)
class GroupShare:
    """A feedback group's contribution and when time alone will change it."""

    rows: dict[Key, float]
    expires_at: datetime | None


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def recompute_groups(
    conn: Connection,
    ws: str,
    group_ids: Sequence[UUID],
    policy: FeedbackWeightPolicy,
    now: datetime,
) -> set[Key]:
    """Recompute feedback groups (each a survivor and the duplicates merged into it) together.

    An item whose state changes moves every group linked to it: one statement per step for all
    of them (per chunk), not a handful of round trips per group.
    """
    changed: set[Key] = set()
    for chunk in _chunks(group_ids):
        found = await group_shares(conn, ws, chunk, policy, now)
        changed |= await _replace_groups(conn, ws, found)
    return changed


async def _replace_groups(conn: Connection, ws: str, found: Mapping[UUID, GroupShare]) -> set[Key]:
    shares = {f"g:{g}": share for g, share in found.items()}
    cleared = [c for c, share in shares.items() if share.expires_at is None]
    if cleared:
        await conn.execute(_CLEAR_EXPIRY, ws, cleared)
    expiring = [(c, s.expires_at) for c, s in shares.items() if s.expires_at is not None]
    if expiring:
        await conn.execute(_SET_EXPIRY, ws, [c for c, _ in expiring], [at for _, at in expiring])
    return await replace(conn, ws, {c: share.rows for c, share in shares.items()})


async def group_shares(
    conn: Connection,
    ws: str,
    group_ids: Sequence[UUID],
    policy: FeedbackWeightPolicy,
    now: datetime,
) -> dict[UUID, GroupShare]:
    """The weight of each group's distinct accounts, spread over its items, areas and tags."""
    members: dict[UUID, list[Any]] = {g: [] for g in group_ids}
    for r in await conn.fetch(_GROUP_MEMBERS, ws, list(group_ids)):
        members[r["group_id"]].append(r)
    shares = {g: GroupShare({}, None) for g in group_ids}
    counting: dict[UUID, tuple[Any, list[Any], dict[str, tuple[float, str | None]]]] = {}
    for g in group_ids:
        survivor, counted = counted_members(members[g], g, policy, now)
        if survivor is not None and counted:
            counting[g] = (survivor, counted, heaviest_per_account(counted, policy))
    if not counting:
        return shares
    accounts = sorted({a for *_, best in counting.values() for _, a in best.values() if a})
    arr = {r["external_id"]: r["arr"] for r in await conn.fetch(_ARR, ws, accounts)}
    keys = sorted({k for survivor, *_ in counting.values() for k in survivor["item_keys"]})
    items = {r["key"]: r for r in await conn.fetch(_ITEMS_BY_KEY, ws, keys)}
    for g, (survivor, counted, best) in counting.items():
        own = [items[k] for k in dict.fromkeys(survivor["item_keys"]) if k in items]
        weight = group_weight(best, arr, policy)
        shares[g] = spread(survivor, counted, own, weight, policy=policy, now=now)
    return shares


def counted_members(
    members: Sequence[Any], group_id: UUID, policy: FeedbackWeightPolicy, now: datetime
) -> tuple[Any, list[Any]]:
    """A group's survivor and the members that count toward demand now (none when closed)."""
    survivor = next((m for m in members if m["id"] == group_id), None)
    if survivor is None or survivor["status"] != "open":
        return None, []
    counted = [
        m
        for m in members
        if m["status"] == "open" and domain.in_window(m["created_at"], now, policy)
    ]
    return survivor, counted


def heaviest_per_account(
    counted: Sequence[Any], policy: FeedbackWeightPolicy
) -> dict[str, tuple[float, str | None]]:
    """Each account counts once: its heaviest feedback in the group stands for it."""
    best: dict[str, tuple[float, str | None]] = {}
    for m in counted:
        base = domain.feedback_base(m["priority"], m["created_at"], policy)
        if m["account_key"] not in best or base > best[m["account_key"]][0]:
            best[m["account_key"]] = (base, m["account_external_id"])
    return best


def group_weight(
    best: dict[str, tuple[float, str | None]],
    arr: Mapping[str, float],
    policy: FeedbackWeightPolicy,
) -> float:
    """The group's weight: each account's heaviest base times its account factor."""
    return sum(
        base * domain.account_factor(arr.get(a) if a else None, policy) for base, a in best.values()
    )


def spread(
    survivor: Any,
    counted: Sequence[Any],
    items: Sequence[Any],
    weight: float,
    *,
    policy: FeedbackWeightPolicy,
    now: datetime,
) -> GroupShare:
    """A group's weight on its items, their areas and its tags, and when it expires."""
    covering = [i for i in items if _covers(i, now, policy)]
    rows: dict[Key, float] = {("demand", "", ""): weight}
    if covering:
        rows["covered", "", ""] = weight
    for area in {i["area"] for i in items if i["area"]}:
        rows["demand", area, ""] = weight
        if any(i["area"] == area for i in covering):
            rows["covered", area, ""] = weight
    for item in items:
        rows["item_demand", item["key"], ""] = weight
    for tag in survivor["tags"]:
        rows["tag_demand", tag, ""] = weight
        if not covering:
            rows["tag_unaddressed", tag, ""] = weight
    window = timedelta(days=policy.window_days)
    ends = [m["created_at"] + window for m in counted]
    ends += [i["shipped_at"] + window for i in covering if i["status"] == "shipped"]
    return GroupShare(rows, min(ends))


def _covers(item: Any, now: datetime, policy: FeedbackWeightPolicy) -> bool:
    if item["status"] in COMMITTED:
        return True
    shipped = item["shipped_at"]
    return bool(item["status"] == "shipped" and shipped and domain.in_window(shipped, now, policy))


async def recompute_items(conn: Connection, ws: str, item_ids: Sequence[UUID]) -> set[Key]:
    """Recompute items' effort (committed, aligned, per objective, with evidence) together.

    Items read the demand totals that feedback groups write: recompute the groups first.
    """
    changed: set[Key] = set()
    for chunk in _chunks(item_ids):
        found = {r["id"]: r for r in await conn.fetch(_ITEMS, ws, list(chunk))}
        shares = {
            f"i:{i}": effort_rows(i, found[i], found[i]["active"], found[i]["demand"])
            if i in found
            else {}
            for i in chunk
        }
        changed |= await replace(conn, ws, shares)
    return changed


def effort_rows(
    item_id: UUID, item: Any, active: Sequence[str], demand: float | None
) -> dict[Key, float]:
    """An item's effort rows, given its active objectives (by id) and its demand total."""
    committed = item["status"] in COMMITTED
    effort: float = item["effort"]
    rows: dict[Key, float] = {}
    for scope in ("", item["area"]) if item["area"] else ("",):
        for objective in active:
            rows["links", scope, objective] = 1.0
        if not committed:
            if demand and item["status"] != "shipped":
                rows["unaddressed", scope, str(item_id)] = demand
            continue
        rows["committed", scope, ""] = effort
        if active:
            rows["aligned", scope, ""] = effort
            for objective in active:
                rows["objective", scope, objective] = effort / len(active)
        else:
            rows["unaligned", scope, str(item_id)] = effort
        if demand:
            rows["evidence", scope, ""] = effort
        else:
            rows["unevidenced", scope, str(item_id)] = effort
    return rows
