"""Launch readiness of many launches at once: their facts in four reads, their signals in one write.

A batch of tracker events can move every launch of a workspace; read one launch at a time, that
was six round trips per launch. Here it is the same number for any number of launches: the
launches with their items and the signals held before, the tallies of the issues linked to each
with its recent closings and most severe open issues, the open issues that may block it, and
the support volume of each; then one pipelined write of the new signals. The issues linked to each
launch are kept by the database as the facts change (`launch_issue`, migration 0007), so that a
launch with thousands of issues costs what one with a few does: its counts are read, not counted
again, the ids of its most severe open issues come from an index, and only its candidate
blockers and serious bugs are sent to Python whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

from insights.rules import domain
from insights.rules.policies import ReadinessPolicy
from insights.rules.readiness import (
    MAX_EVIDENCE,
    PRIORITIES,
    IssueSummary,
    folded_labels,
    is_serious_bug,
    severity_order,
)
from insights.signals import sql
from insights.signals.alignment import Context, emit, history
from prodops.contract import Change, LaunchReadinessChanged
from prodops.runtime.db import Connection

Found = dict[str, tuple[str, domain.LaunchFacts]]  # key -> name, readiness facts


async def launch_facts(conn: Connection, ctx: Context, keys: Sequence[str]) -> Found:
    """Name and readiness facts of each of `keys` that still exists."""
    found, _ = await _launches(conn, ctx, keys)
    return found


async def _launches(
    conn: Connection, ctx: Context, keys: Sequence[str]
) -> tuple[Found, dict[str, domain.Readiness]]:
    """The facts of each of `keys` that still exists, and the readiness held for each so far."""
    launches = await conn.fetch(sql.LAUNCHES, ctx.ws, list(keys))
    if not launches:
        return {}, {}
    found = [r["key"] for r in launches]
    items = {r["key"]: {*r["item_keys"], *r["items_naming_it"]} for r in launches}
    summaries = await _issue_summaries(conn, ctx, found)
    support = await _support(conn, ctx, items)
    facts = {
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
    held = {
        r["key"]: domain.Readiness(
            r["held_status"], r["held_score"], r["held_components"], (), r["held_details"]
        )
        for r in launches
        if r["held_status"] is not None
    }
    return facts, held


async def _issue_summaries(
    conn: Connection, ctx: Context, keys: Sequence[str]
) -> dict[str, IssueSummary]:
    """Each launch's linked issues (to it, or to one of its items): counts, and those it names."""
    p, launches = ctx.readiness, list(keys)
    since = ctx.now - timedelta(days=p.throughput_window_days)
    ranked = {
        r["launch"]: r
        for r in await conn.fetch(sql.LAUNCH_ISSUES_RANKED, ctx.ws, launches, since, MAX_EVIDENCE)
        if r["tallies"]  # a launch without issues has no summary to make
    }
    if not ranked:
        return {}
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
    return {launch: _summary(row, candidates[launch], p) for launch, row in ranked.items()}


class _Tally(NamedTuple):
    """How many of a launch's issues are in one state, of one kind and severity."""

    state: str
    kind: str
    severity: int
    issues: int


def _summary(
    ranked: Any, candidates: list[domain.LinkedIssue], policy: ReadinessPolicy
) -> IssueSummary:
    """One launch's summary from its tallies and ranked issues, and its candidate blockers."""
    tallies = [_Tally(*t) for t in ranked["tallies"]]
    ordered = sorted(candidates, key=severity_order)
    open_bugs = (t for t in tallies if t.state == "open" and t.kind == "bug")
    return IssueSummary(
        total=sum(t.issues for t in tallies),
        open=sum(t.issues for t in tallies if t.state == "open"),
        closed_recently=ranked["closed_recently"],
        open_bug_load=sum(
            policy.bug_load.of(PRIORITIES[t.severity - 1]) * t.issues for t in open_bugs
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
    found, held = await _launches(conn, ctx, keys)
    gone = [key for key in keys if key not in found]
    if gone:
        await conn.execute(sql.DROP_LAUNCH_SIGNALS, ctx.ws, gone)
    if not found:
        return
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
        await _moved(conn, ctx, key, held.get(key), r)


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
