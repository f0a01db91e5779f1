"""2. Freshness: open loop of deliveries, each timed from its scheduled send to the signal.

Delivery i opens a new GitHub issue in the milestone of launch `FR-<i mod K>`, so it adds one to
that launch's `details.total_issues` in insights' readiness. An observer reads every launch's
count from `insights.launch_signal` (what `GET /v1/signals/launches/{key}` answers) every few
milliseconds; when a launch's count passes m, its m-th delivery is reflected, and its latency is
that moment minus `start + i / rate`. Baseline: the 2xx round trip of the same deliveries.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bench import loadgen
from bench.fixtures import create_launches, register_github, settle
from bench.ingest import summary
from bench.loadgen import Spec
from bench.results import Figure, Report, ms, percentile
from bench.stack import WORKSPACE, Stack

TARGET_P50, TARGET_P99 = 0.100, 0.500
# Where the time went, from the timestamps the pipeline writes (each the start of the transaction
# that wrote it), for what the run sent ($1: the database's clock when it began): stored →
# normalised (its event in the outbox), outbox → published, published → the insights batch.
_STAGES = {
    "stored → normalised": """
        SELECT extract(epoch FROM processed_at - received_at) AS s FROM roadmap.webhook_delivery
        WHERE received_at >= $1 AND processed_at IS NOT NULL""",
    "normalised → published": """
        SELECT extract(epoch FROM sent_at - created_at) AS s FROM roadmap.outbox
        WHERE created_at >= $1 AND sent_at IS NOT NULL""",
    "published → applied by insights": """
        SELECT extract(epoch FROM i.processed_at - o.sent_at) AS s
        FROM insights.inbox AS i JOIN roadmap.outbox AS o ON o.id = i.event_id
        WHERE o.created_at >= $1""",
}
_READ = """
SELECT launch_key, (details->>'total_issues')::int AS n FROM insights.launch_signal
WHERE workspace = $1 AND launch_key = ANY($2::text[])
"""


@dataclass(frozen=True)
class FreshnessOptions:
    """Rate, length and shape of the run."""

    rate: float = 1000.0
    seconds: float = 10.0
    launches: int = 50
    connections: int = 64
    workers: int = 1
    poll_seconds: float = 0.005
    grace_seconds: float = 120.0


@dataclass
class Observer:
    """Reads the launches' issue counts and notes when each delivery became visible."""

    keys: list[str]
    start: float
    rate: float
    count: int
    reflected: dict[int, float]

    async def watch(self, database_url: str, poll: float, stop: asyncio.Event) -> None:
        """Poll until every delivery is reflected or `stop` is set."""
        conn = await asyncpg.connect(database_url)
        seen = dict.fromkeys(self.keys, 0)
        index = {key: j for j, key in enumerate(self.keys)}
        try:
            while len(self.reflected) < self.count and not stop.is_set():
                rows = await conn.fetch(_READ, WORKSPACE, self.keys)
                now = time.monotonic()
                for row in rows:
                    key, n = row["launch_key"], row["n"]
                    for m in range(seen[key], n):
                        self.reflected[index[key] + m * len(self.keys)] = now
                    seen[key] = max(seen[key], n)
                await asyncio.sleep(poll)
        finally:
            await conn.close()

    def latencies(self) -> list[float]:
        """Scheduled send to reflected, of every reflected delivery, ascending."""
        return sorted(at - (self.start + i / self.rate) for i, at in self.reflected.items())


async def run(stack: Stack, options: FreshnessOptions, mode: str) -> Report:
    """Open loop at `rate` for `seconds`; latency percentiles to the signal."""
    keys = [f"FR-{j}" for j in range(options.launches)]
    await create_launches(stack, keys)
    await settle(stack)
    path, secret = await register_github(stack)
    count = int(options.rate * options.seconds)
    start = time.monotonic() + 2.0
    spec = Spec(
        stack.ports["roadmap"],
        path,
        "github",
        options.connections,
        secret=secret,
        launches=tuple(keys),
        rate=options.rate,
        count=count,
        start_at=start,
        first_number=10_000_000,
    )
    observer = Observer(keys, start, options.rate, count, {})
    stop = asyncio.Event()
    watching = asyncio.create_task(
        observer.watch(stack.settings.database_url, options.poll_seconds, stop)
    )
    began = await _database_now(stack.settings.database_url)
    sent = await loadgen.run(spec, workers=options.workers)
    try:
        await asyncio.wait_for(asyncio.shield(watching), options.grace_seconds)
    except TimeoutError:
        stop.set()
        await watching
    latencies = observer.latencies()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    ack50, ack99 = percentile(sent.latencies, 50), percentile(sent.latencies, 99)
    report = Report("freshness", mode)
    report.figures = [
        Figure(
            "p50 send → signal",
            ms(p50),
            "ms",
            ms(ack50),
            "p50 send → 2xx",
            f"≤ {ms(TARGET_P50):.0f} ms",
            p50 <= TARGET_P50,
        ),
        Figure(
            "p99 send → signal",
            ms(p99),
            "ms",
            ms(ack99),
            "p99 send → 2xx",
            f"≤ {ms(TARGET_P99):.0f} ms",
            p99 <= TARGET_P99,
        ),
    ]
    missing = count - len(latencies)
    report.details = {
        "deliveries": count,
        "reflected": len(latencies),
        "never_reflected_within_grace": missing,
        "max_ms": ms(latencies[-1]) if latencies else math.nan,
        "ingest": summary(sent),
        "observer_poll_ms": options.poll_seconds * 1000,
        "stages_ms": await stages(stack.settings.database_url, began),
        "options": options.__dict__,
    }
    return report


async def _database_now(database_url: str) -> datetime:
    conn = await asyncpg.connect(database_url)
    try:
        now: datetime = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    return now


async def stages(database_url: str, since: datetime) -> dict[str, dict[str, float]]:
    """p50, p90 and p99 of each stage, for what was written since `since`."""
    conn = await asyncpg.connect(database_url)
    try:
        found = {}
        for stage, query in _STAGES.items():
            spans = sorted(float(r["s"]) for r in await conn.fetch(query, since))
            found[stage] = {f"p{q}": ms(percentile(spans, q)) for q in (50, 90, 99)}
    finally:
        await conn.close()
    return found
