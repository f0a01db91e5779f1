"""Launch readiness of many launches at once: their facts in four reads, their signals in one write.

A batch of tracker events can move every launch of a workspace; read one launch at a time, that
was six round trips per launch. Here it is the same number for any number of launches: the
launches, their items, the issues linked to any of them, and the support volume of each; then
the signals held before, and one pipelined write of the new ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from insights import domain
from insights import signals_sql as sql
from insights.signals import Context, emit, history
from prodops.db import Connection
from prodops.events import Change, LaunchReadinessChanged


async def launch_facts(
    conn: Connection, ctx: Context, keys: Sequence[str]
) -> dict[str, tuple[str, domain.LaunchFacts]]:
    """Name and readiness facts of each of `keys` that still exists."""
    launches = await conn.fetch(sql.LAUNCHES, ctx.ws, list(keys))
    if not launches:
        return {}
    found = [r["key"] for r in launches]
    items: dict[str, set[str]] = {r["key"]: set(r["item_keys"]) for r in launches}
    for r in await conn.fetch(sql.LAUNCHES_ITEMS, ctx.ws, found):
        items[r["launch_key"]].add(r["key"])
    issues = await _linked_issues(conn, ctx, items)
    support = await _support(conn, ctx, items)
    return {
        r["key"]: (
            r["name"],
            domain.LaunchFacts(
                key=r["key"],
                status=r["status"],
                target_date=r["target_date"],
                checklist=tuple(_checklist(r["checklist"])),
                issues=tuple(issues[r["key"]]),
                support=support.get(r["key"], _NO_SUPPORT),
            ),
        )
        for r in launches
    }


async def _linked_issues(
    conn: Connection, ctx: Context, items: Mapping[str, set[str]]
) -> dict[str, list[domain.LinkedIssue]]:
    """Each launch's issues: linked to it, or to one of its items; by id."""
    launches_of_item: dict[str, list[str]] = defaultdict(list)
    for launch, keys in items.items():
        for key in keys:
            launches_of_item[key].append(launch)
    rows = await conn.fetch(sql.LAUNCHES_ISSUES, ctx.ws, list(items), sorted(launches_of_item))
    linked: dict[str, list[domain.LinkedIssue]] = {launch: [] for launch in items}
    for r in rows:  # thousands of rows per batch: unpacked once, positionally
        ident, key, state, kind, priority, labels, closed_at, item_keys, launch_keys = r
        issue = domain.LinkedIssue(str(ident), key, state, kind, priority, tuple(labels), closed_at)
        to = dict.fromkeys(k for k in launch_keys if k in linked)
        for item in item_keys:
            to.update(dict.fromkeys(launches_of_item.get(item, ())))
        for launch in to:
            linked[launch].append(issue)
    return linked


_NO_SUPPORT = domain.SupportWindow(recent=0, recent_negative=0, baseline=0, baseline_negative=0)


async def _support(
    conn: Connection, ctx: Context, items: Mapping[str, set[str]]
) -> dict[str, domain.SupportWindow]:
    """Support volume on each launch's items, in the recent and the baseline window."""
    pairs = [(launch, key) for launch, keys in items.items() for key in keys]
    if not pairs:
        return {}
    p = ctx.readiness
    split = ctx.now - timedelta(days=p.support_recent_days)
    start = split - timedelta(days=p.support_baseline_days)
    launches, keys = [launch for launch, _ in pairs], [key for _, key in pairs]
    rows = await conn.fetch(sql.LAUNCHES_SUPPORT, ctx.ws, launches, keys, split, start, ctx.now)
    return {
        r["launch"]: domain.SupportWindow(
            recent=r["recent"],
            recent_negative=r["recent_negative"],
            baseline=r["baseline"],
            baseline_negative=r["baseline_negative"],
            recent_ids=tuple(r["recent_ids"] or ()),
        )
        for r in rows
    }


def _checklist(entries: Sequence[Mapping[str, Any]]) -> list[domain.ChecklistEntry]:
    return [
        domain.ChecklistEntry(
            id=e["id"],
            title=e["title"],
            required=e["required"],
            done=e["done"],
            due_date=date.fromisoformat(e["due_date"]) if e.get("due_date") else None,
        )
        for e in entries
    ]


async def refresh_launches(conn: Connection, ctx: Context, keys: Sequence[str]) -> None:
    """Recompute the launches' readiness; store it, and emit where a status or band moved."""
    keys = sorted(set(keys))
    found = await launch_facts(conn, ctx, keys)
    gone = [key for key in keys if key not in found]
    if gone:
        await conn.execute(sql.DROP_LAUNCH_SIGNALS, ctx.ws, gone)
    if not found:
        return
    held = {r["launch_key"]: r for r in await conn.fetch(sql.LAUNCH_SIGNALS, ctx.ws, list(found))}
    new = {key: domain.launch_readiness(f, ctx.readiness, ctx.now) for key, (_, f) in found.items()}
    await conn.executemany(  # pipelined: one round trip
        sql.PUT_LAUNCH_SIGNAL,
        [
            (
                ctx.ws,
                key,
                found[key][0],
                r.status,
                r.score,
                r.components,
                [reason.model_dump() for reason in r.reasons],
                r.details,
                ctx.now,
            )
            for key, r in new.items()
        ],
    )
    for key, r in sorted(new.items()):
        await _moved(conn, ctx, key, _readiness(held.get(key)), r)


def _readiness(row: Any) -> domain.Readiness | None:
    if row is None:
        return None
    return domain.Readiness(row["status"], row["score"], row["components"], (), row["details"])


async def _moved(
    conn: Connection,
    ctx: Context,
    key: str,
    old: domain.Readiness | None,
    new: domain.Readiness,
) -> None:
    """History when the status or score moved; an event when the status or band did."""
    if old is None or (old.status, old.score) != (new.status, new.score):
        value = {"status": new.status, "score": new.score, "components": new.components}
        await history(conn, ctx, "launch", key, value)
    if ctx.emit and domain.readiness_changed(old, new):
        await emit(
            conn,
            ctx,
            LaunchReadinessChanged(
                launch_key=key,
                status=Change(from_=old.status if old else None, to=new.status),
                score=Change(from_=old.score if old else None, to=new.score),
                components=new.components,
                reasons=list(new.reasons),
            ),
        )
