"""3. History growth: the cost of one event in insights with N events of history behind it.

"History" is what a workspace has accumulated after N events: facts, contributions, totals,
version gates and inbox claims (written set-based by `bench.history_sql`, shaped so that a larger
N is a broader workspace, not deeper launches). "One event" is one state-carrying event applied
exactly as the live consumer applies it — claimed in the inbox, facts, then the contributions and
signals it touches, with history rows, outbox and outbound queue — in a transaction of its own
(`EventConsumer.replay`). Probes alternate between the workspaces, so background noise on the
machine falls on both alike. Baseline: the same probes against the smallest history.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench import history_sql, synthetic
from bench.results import Figure, Report, ms, percentile
from bench.stack import Stack, create_database, settings_for
from insights.engine import CONSUMER, SignalEngine
from prodops.contract import Event
from prodops.messaging.consumer import EventConsumer
from prodops.runtime.db import Pool, create_pool

TARGET_RATIO = 1.3


@dataclass(frozen=True)
class HistoryOptions:
    """The history sizes compared and how many probe events each gets."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    probes: int = 300
    rounds: int = 10


@dataclass
class Workspace:
    """One history size: its workspace, and what its probes cost."""

    events: int
    name: str
    seconds: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    next_issue: int = 0
    next_version: int = 1


async def write_history(pool: Pool, ws: Workspace) -> float:
    """Write the workspace's history; returns the seconds it took."""
    launches, items, accounts, issues, feedback = history_sql.shape(ws.events)
    values = {
        "ws": ws.name,
        "launches": launches,
        "items": items,
        "accounts": accounts,
        "issues": issues,
        "feedback": feedback,
        "events": ws.events,
    }
    started = time.monotonic()
    async with pool.acquire() as conn:
        for statement in history_sql.FACTS + history_sql.DERIVED:
            sql, args = history_sql.bind(statement, values)
            await conn.execute(sql, *args)
        await conn.execute("ANALYZE")
    return time.monotonic() - started


def probe(ws: Workspace, rng: random.Random) -> Event:
    """The next probe: new feedback (60%), a new issue (30%) or an item change (10%)."""
    launches, items, accounts, _, _ = history_sql.shape(ws.events)
    j = rng.randrange(items)
    roll = rng.random()
    if roll < 0.6:
        data: Any = synthetic.feedback(f"H-{j}", f"acct-{rng.randrange(accounts)}", f"tag-{j % 50}")
    elif roll < 0.9:
        ws.next_issue += 1
        data = synthetic.issue(10_000_000 + ws.next_issue, f"H-{j}", f"HL-{j % launches}")
    else:
        ws.next_version += 1
        item_id = synthetic.history_id(ws.name, "i", j)
        objective = synthetic.history_id(ws.name, "o", j % 5)
        data = synthetic.item(item_id, f"H-{j}", ws.next_version, f"HL-{j % launches}", objective)
    return synthetic.envelope(data, ws.name)


async def apply_probes(
    pool: Pool,
    consumer: EventConsumer,
    ws: Workspace,
    count: int,
    rng: random.Random,
    *,
    keep: bool,
) -> None:
    """Apply `count` probe events one transaction each, as the live consumer would."""
    for _ in range(count):
        event = probe(ws, rng)
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await consumer.replay(conn, event.to_bytes())
        took = time.perf_counter() - started
        if keep:
            ws.seconds.append(took)
            ws.by_kind.setdefault(event.type.split(".")[1], []).append(took)


def _summary(ws: Workspace) -> dict[str, Any]:
    ordered = sorted(ws.seconds)
    return {
        "events_of_history": ws.events,
        "probes": len(ordered),
        "mean_ms": ms(statistics.fmean(ordered)),
        "p50_ms": ms(percentile(ordered, 50)),
        "p99_ms": ms(percentile(ordered, 99)),
        "p50_ms_by_kind": {k: ms(percentile(sorted(v), 50)) for k, v in ws.by_kind.items()},
    }


async def run(stack: Stack, options: HistoryOptions, mode: str) -> Report:
    """Write every history, then alternate probe rounds between them."""
    url = await create_database(stack.postgres.url, "bench_history")
    settings = settings_for(url, stack.settings.nats_url)
    from prodops.runtime.migrations import migrate_all

    await migrate_all(settings, ("insights",))
    pool = await create_pool(settings, schema="insights", max_size=2)
    engine = SignalEngine()
    consumer = EventConsumer(
        name=CONSUMER, pool=pool, settings=settings, handlers=engine.handlers(), hooks=engine
    )
    try:
        spaces = [Workspace(n, f"hist-{n}") for n in options.sizes]
        written = {ws.events: round(await write_history(pool, ws), 1) for ws in spaces}
        rng = random.Random(11)
        for ws in spaces:
            await apply_probes(
                pool, consumer, ws, 20, rng, keep=False
            )  # warm caches and prepared statements
        for _ in range(options.rounds):
            for ws in spaces:
                await apply_probes(
                    pool, consumer, ws, options.probes // options.rounds, rng, keep=True
                )
    finally:
        await pool.close()
    small, large = spaces[0], spaces[-1]
    mean_small, mean_large = statistics.fmean(small.seconds), statistics.fmean(large.seconds)
    ratio = mean_large / mean_small
    report = Report("history", mode)
    report.figures = [
        Figure(
            f"ms/event, {large.events:,} events of history",
            ms(mean_large),
            "ms",
            ms(mean_small),
            f"{small.events:,} events of history",
            f"ratio ≤ {TARGET_RATIO}",
            ratio <= TARGET_RATIO,
        ),
    ]
    report.details = {
        "workspaces": [_summary(ws) for ws in spaces],
        "seconds_to_write_history": written,
        "p50_ratio": round(
            percentile(sorted(large.seconds), 50) / percentile(sorted(small.seconds), 50), 3
        ),
        "options": options.__dict__,
    }
    return report
