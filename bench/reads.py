"""5. Reads: `GET /v1/signals/launches/{key}` at a fixed rate, latency from each scheduled send.

Baseline: a bare FastAPI GET answering a small JSON document, same server settings and rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from bench import loadgen
from bench.fixtures import create_launches, register_github, settle
from bench.ingest import summary
from bench.loadgen import Spec
from bench.results import Figure, Report, ms, percentile
from bench.stack import Stack

TARGET_P99 = 0.020
LAUNCH = "RD-1"


@dataclass(frozen=True)
class ReadsOptions:
    """Rate and length."""

    rate: float = 2000.0
    seconds: float = 5.0
    connections: int = 64
    workers: int = 1
    linked_issues: int = 50
    # Each server first answers this long at the rate, unmeasured: the figure is steady state,
    # not the first second's new database connections (the pool grows from 1 to its maximum).
    warmup_seconds: float = 1.0


async def run(stack: Stack, options: ReadsOptions, mode: str) -> Report:
    """A launch with linked issues, then the open loop against insights and the baseline."""
    await create_launches(stack, [LAUNCH])
    path, secret = await register_github(stack)
    # Give the launch some linked work, so its readiness carries reasons and evidence.
    issues = Spec(
        stack.ports["roadmap"],
        path,
        "github",
        8,
        secret=secret,
        launches=(LAUNCH,),
        rate=200.0,
        count=options.linked_issues,
        first_number=50_000_000,
    )
    await loadgen.run(issues)
    await settle(stack)
    count = int(options.rate * options.seconds)
    base = Spec(
        stack.ports["baseline"],
        f"/bare/{LAUNCH}",
        "get",
        options.connections,
        rate=options.rate,
        count=count,
    )
    read = replace(
        base,
        port=stack.ports["insights"],
        path=f"/v1/signals/launches/{LAUNCH}",
        token=stack.token("insights:read"),
    )
    warmup = int(options.rate * options.warmup_seconds)
    baseline, reads = [
        await _warm_then_measure(spec, warmup, options.workers) for spec in (base, read)
    ]
    # The most each answers (closed loop): says whether the open-loop rate was sustainable at all.
    most = replace(read, rate=0.0, duration=3.0, warmup=0.5)
    capacity = await loadgen.run(most, workers=options.workers)
    base_capacity = await loadgen.run(
        replace(base, rate=0.0, duration=3.0, warmup=0.5), workers=options.workers
    )
    p99, base_p99 = percentile(reads.latencies, 99), percentile(baseline.latencies, 99)
    report = Report("reads", mode)
    report.figures = [
        Figure(
            f"p99 at {options.rate:,.0f}/s",
            ms(p99),
            "ms",
            ms(base_p99),
            f"bare FastAPI GET at {options.rate:,.0f}/s",
            f"≤ {ms(TARGET_P99):.0f} ms",
            p99 <= TARGET_P99,
        ),
        Figure(
            "p50",
            ms(percentile(reads.latencies, 50)),
            "ms",
            ms(percentile(baseline.latencies, 50)),
            "bare FastAPI GET",
        ),
    ]
    report.details = {
        "insights": summary(reads),
        "baseline": summary(baseline),
        "insights_closed_loop": summary(capacity),
        "baseline_closed_loop": summary(base_capacity),
        "options": options.__dict__,
        # `prodops serve` reads it from the environment the stack hands every service.
        "insights_server_processes": int(os.environ.get("PRODOPS_HTTP_WORKERS", "1")),
    }
    return report


async def _warm_then_measure(spec: Spec, warmup: int, workers: int) -> loadgen.LoadResult:
    if warmup:
        await loadgen.run(replace(spec, count=warmup), workers=workers)
    return await loadgen.run(spec, workers=workers)
