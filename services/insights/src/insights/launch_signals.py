"""Launch readiness of many launches at once: their facts in six reads, their signals in one write.

A batch of tracker events can move every launch of a workspace; read one launch at a time, that
was six round trips per launch. Here it is the same number for any number of launches: the
launches, their items, the tallies of the issues linked to each, each one's recent closings and
most severe open issues, the open issues that may block it, and the support volume of each;
then the signals held before, and one pipelined write of the new ones. The issues linked to each
launch are kept by the database as the facts change (`launch_issue`, migration 0007), so that a
launch with thousands of issues costs what one with a few does: its counts are read, not counted
again, the ids of its most severe open issues come from an index, and only its candidate
blockers and serious bugs are sent to Python whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from insights import domain
from insights import signals_sql as sql
from insights.policies import ReadinessPolicy
from insights.readiness import (
    MAX_EVIDENCE,
    PRIORITIES,
    IssueSummary,
    folded_labels,
    is_serious_bug,
    severity_order,
)
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
    summaries = await _issue_summaries(conn, ctx, found)
    support = await _support(conn, ctx, items)
    return {
        r["key"]: (
            r["name"],
            domain.LaunchFacts(
                key=r["key"],
                status=r["status"],
                target_date=r["target_date"],
                checklist=tuple(_checklist(r["checklist"])),
                issues=(),
                support=support.get(r["key"], _NO_SUPPORT),
                summary=summaries.get(r["key"], _NO_ISSUES),
            ),
        )
        for r in launches
    }


async def _issue_summaries(
    conn: Connection, ctx: Context, keys: Sequence[str]
) -> dict[str, IssueSummary]:
    """Each launch's linked issues (to it, or to one of its items): counts, and those it names."""
    p, launches = ctx.readiness, list(keys)
    tallies = await conn.fetch(sql.LAUNCH_ISSUE_TALLIES, ctx.ws, launches)
    if not tallies:
        return {}
    since = ctx.now - timedelta(days=p.throughput_window_days)
    ranked = {
        r["launch"]: r
        for r in await conn.fetch(sql.LAUNCH_ISSUES_RANKED, ctx.ws, launches, since, MAX_EVIDENCE)
    }
    severities = sorted(
        PRIORITIES.index(priority) + 1
        for priority in {*p.blocker_priorities, *p.serious_bug_priorities}
    )
    labels = [*sorted(folded_labels(p)), ""]  # "": a label the database leaves to Python
    candidates: dict[str, list[domain.LinkedIssue]] = defaultdict(list)
    for r in await conn.fetch(sql.LAUNCH_ISSUE_CANDIDATES, ctx.ws, launches, severities, labels):
        candidates[r["launch"]].append(
            domain.LinkedIssue(
                str(r["id"]),
                r["key"],
                r["state"],
                r["kind"],
                r["priority"],
                tuple(r["labels"]),
                r["closed_at"],
            )
        )
    counts: dict[str, list[Any]] = defaultdict(list)
    for r in tallies:
        counts[r["launch"]].append(r)
    return {
        launch: _summary(rows, ranked[launch], candidates[launch], p)
        for launch, rows in counts.items()
    }


def _summary(
    tallies: Sequence[Any],
    ranked: Any,
    candidates: list[domain.LinkedIssue],
    policy: ReadinessPolicy,
) -> IssueSummary:
    """One launch's summary from its tallies, its ranked issues and its candidate blockers."""
    ordered = sorted(candidates, key=severity_order)
    open_bugs = (r for r in tallies if r["state"] == "open" and r["kind"] == "bug")
    return IssueSummary(
        total=sum(r["issues"] for r in tallies),
        open=sum(r["issues"] for r in tallies if r["state"] == "open"),
        closed_recently=ranked["closed_recently"],
        open_bug_load=sum(
            policy.bug_load.of(PRIORITIES[r["severity"] - 1]) * r["issues"] for r in open_bugs
        ),
        most_severe_open=tuple(ranked["most_severe"]),
        blockers=tuple(i for i in ordered if domain.is_blocker(i, policy)),
        serious_bugs=tuple(i for i in ordered if is_serious_bug(i, policy)),
    )


_NO_ISSUES = IssueSummary(
    total=0,
    open=0,
    closed_recently=0,
    open_bug_load=0.0,
    most_severe_open=(),
    blockers=(),
    serious_bugs=(),
)
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
