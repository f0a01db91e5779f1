"""1. Webhook ingest: signed GitHub `issues` deliveries against one roadmap process.

The process is `prodops serve roadmap --no-background` (`roadmap-http`): it verifies, stores
and answers; the stack's full roadmap process normalises and relays what it stores, and insights
applies that. Baseline: the bare FastAPI endpoint of `bench.baseline` (reads the body, answers
202) under the same uvicorn settings and the same load generator.

Closed loop gives the most each can take. The target's figure is the ingest process's own: the
rest of the pipeline is paused meanwhile, as the baseline's machine is idle but for it, and then
resumed and waited for, so every delivery accepted is also normalised, relayed and applied. The
same closed loop with the pipeline running beside it on the same CPUs is reported too. An open
loop at 1 000/s, the pipeline running, gives the latency a vendor sees at that rate (the
target's figure); the same loop with the pipeline paused, reported, gives the ingest process's
own, its commits' flushes included, without the pipeline's share of the two CPUs.

The open loops measure the steady state at that rate. Before them the closed loops' writes are
flushed: PostgreSQL's new table pages sit dirty in the kernel's page cache until it writes each
file out 30 s after it was first dirtied, in one burst that every WAL flush queues behind, if
it falls in the window. And they last longer than those 30 s, so
that the writeback of their own pages, which a server at that rate has all the time, is in them.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx

from bench import loadgen
from bench.deliveries import signed_delivery
from bench.fixtures import register_github, settle
from bench.loadgen import LoadResult, Spec
from bench.results import Figure, Report, ms, percentile
from bench.stack import Stack

TARGET_RATE, TARGET_SHARE, TARGET_P99 = 5000.0, 0.35, 0.050
OPEN_RATE = 1000.0
# The process loaded, and the processes that normalise, relay and apply what it stores.
PROCESS, PIPELINE = "roadmap-http", ("roadmap", "insights")


@dataclass(frozen=True)
class IngestOptions:
    """How long and how hard."""

    seconds: float = 5.0
    open_seconds: float = 40.0  # more than the kernel's 30 s before it writes a dirty file out
    # Enough requests in flight to keep a server busy whose answers wait for a disk flush: at
    # 32 the ingest process idled between its commits, while the bare endpoint took the same at
    # either.
    connections: int = 64
    open_connections: int = 32
    workers: int = 1


def summary(result: LoadResult) -> dict[str, Any]:
    """What a load run measured, JSON-ready."""
    lat = result.latencies
    return {
        "completed": result.completed,
        "rate_per_s": round(result.rate, 1),
        "statuses": dict(result.statuses),
        "errors": result.errors,
        "p50_ms": ms(percentile(lat, 50)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1]) if lat else None,
        "generator_cpu_s": round(result.cpu_seconds, 2),
        "generator_cpu_us_per_request": round(
            1e6 * result.cpu_seconds / max(1, result.completed), 1
        ),
        "late_start_s": round(result.late_start, 3),
    }


async def generator_capacity(
    stack: Stack, options: IngestOptions, path: str, secret: str
) -> LoadResult:
    """The generator against the null server: the most it can send, signing as it goes."""
    stack.spawn("null", ["bench.baseline", "--null"])
    try:
        await _listening(stack.ports["null"])
        spec = Spec(
            stack.ports["null"],
            path,
            "github",
            options.connections,
            secret=secret,
            duration=3.0,
            warmup=0.5,
            first_number=900_000_000,
        )
        return await loadgen.run(spec, workers=options.workers)
    finally:
        stack.stop_process("null")


async def _listening(port: int, within: float = 15.0) -> None:
    """Until something accepts connections on `port`."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


async def stored_deliveries(stack: Stack) -> int:
    """Deliveries roadmap has committed."""
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM roadmap.webhook_delivery"))
    finally:
        await conn.close()


async def redelivered_once(stack: Stack, path: str, secret: str, count: int = 20) -> int:
    """Send `count` deliveries twice each; how many second copies were answered `duplicate`."""
    duplicates = 0
    async with httpx.AsyncClient(base_url=stack.url(PROCESS)) as client:
        for n in range(count):
            body, headers = signed_delivery(secret, 800_000_000 + n, None)
            first = await client.post(path, content=body, headers=headers)
            second = await client.post(path, content=body, headers=headers)
            duplicates += first.status_code == 202 and second.json().get("status") == "duplicate"
    return duplicates


async def run(stack: Stack, options: IngestOptions, mode: str) -> Report:
    """Baseline and roadmap, closed loop then open loop at 1 000/s."""
    path, secret = await register_github(stack)
    closed = Spec(
        stack.ports["baseline"],
        path,
        "github",
        options.connections,
        secret=secret,
        duration=options.seconds,
        warmup=1.0,
    )
    capacity = await generator_capacity(stack, options, path, secret)
    base = await loadgen.run(closed, workers=options.workers)
    before = await stored_deliveries(stack)
    ingest = replace(closed, port=stack.ports[PROCESS], first_number=1_000_000)
    with stack.paused(*PIPELINE):
        roadmap = await loadgen.run(ingest, workers=options.workers)
    drained = await settle(stack)
    beside = await loadgen.run(replace(ingest, first_number=1_500_000), workers=options.workers)
    await settle(stack)
    os.sync()  # the closed loops' dirty pages, not left to burst out during the open loops
    opened = Spec(
        stack.ports["baseline"],
        path,
        "github",
        options.open_connections,
        secret=secret,
        rate=OPEN_RATE,
        count=int(OPEN_RATE * options.open_seconds),
        first_number=2_000_000,
    )
    base_open = await loadgen.run(opened, workers=options.workers)
    roadmap_open = await loadgen.run(
        replace(opened, port=stack.ports[PROCESS], first_number=3_000_000),
        workers=options.workers,
    )
    await settle(stack)
    with stack.paused(*PIPELINE):
        alone_open = await loadgen.run(
            replace(opened, port=stack.ports[PROCESS], first_number=4_000_000),
            workers=options.workers,
        )
    await settle(stack)
    runs = (roadmap, beside, roadmap_open, alone_open)
    accepted = sum(r.statuses.get("202", 0) for r in runs)
    # Closed loop also answers requests that complete after the window: count every 202 sent.
    stored = await stored_deliveries(stack) - before
    duplicates = await redelivered_once(stack, path, secret)
    p99, base_p99 = percentile(roadmap_open.latencies, 99), percentile(base_open.latencies, 99)
    report = Report("ingest", mode)
    report.figures = [
        Figure(
            "deliveries/s, one process",
            round(roadmap.rate, 1),
            "/s",
            round(base.rate, 1),
            "bare FastAPI 202",
            f"≥ {TARGET_RATE:,.0f} /s",
            roadmap.rate >= TARGET_RATE,
        ),
        Figure(
            "share of baseline",
            round(roadmap.rate / base.rate, 3) if base.rate else 0.0,
            "x",
            None,
            "",
            f"≥ {TARGET_SHARE}",
            base.rate > 0 and roadmap.rate / base.rate >= TARGET_SHARE,
        ),
        Figure(
            "deliveries/s, pipeline running beside it",
            round(beside.rate, 1),
            "/s",
            round(base.rate, 1),
            "bare FastAPI 202",
        ),
        Figure(
            "p99 at 1 000/s",
            ms(p99),
            "ms",
            ms(base_p99),
            "bare FastAPI 202 at 1 000/s",
            f"≤ {ms(TARGET_P99):.0f} ms",
            p99 <= TARGET_P99,
        ),
        Figure(
            "p99 at 1 000/s, pipeline paused",
            ms(percentile(alone_open.latencies, 99)),
            "ms",
            ms(base_p99),
            "bare FastAPI 202 at 1 000/s",
        ),
    ]
    report.details = {
        "generator": "bench.loadgen (raw asyncio HTTP/1.1, keep-alive), signing every delivery",
        "generator_against_null_server": summary(capacity),
        "baseline_closed_loop": summary(base),
        "process": f"prodops serve roadmap --no-background; paused meanwhile: {PIPELINE}",
        "roadmap_closed_loop": summary(roadmap),
        "roadmap_closed_loop_pipeline_running": summary(beside),
        "baseline_open_loop_1000": summary(base_open),
        "roadmap_open_loop_1000": summary(roadmap_open),
        "roadmap_open_loop_1000_pipeline_paused": summary(alone_open),
        "roadmap_202s_in_windows": accepted,
        "deliveries_committed_during_roadmap_runs": stored,
        "redelivered_answered_duplicate": f"{duplicates}/20",
        "pipeline_drain_after_closed_loop_s": round(drained, 1),
        "options": options.__dict__,
    }
    return report
