"""4. Rebuild: events/s of `prodops insights rebuild` against the raw JetStream consume rate.

Both read the same stream in the same run: a stream of its own filled with synthetic events
(`bench.synthetic.stream_of`), rebuilt into a database of its own. Raw: an ordered consumer with
nats-py that does nothing per message, read by a callback (the fastest read nats-py offers, and
the one the rebuild uses; the slower next_msg() read is reported beside it). Rebuild:
`insights.projection.rebuild.rebuild(settings)`, the function the CLI command runs, timed
in-process (the interpreter's start-up is left out of both).

Beside it, the rebuild's rate by its own CPU: the rebuild runs on one thread, so it cannot end
before that thread's work is done, whatever PostgreSQL does meanwhile on its own core. That
rate's ratio to the raw read is the most the target's ratio could reach if every statement
overlapped with the rebuild's Python entirely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from bench import synthetic
from bench.fixtures import jetstream
from bench.results import Figure, Report
from bench.stack import Stack, create_database, settings_for
from insights.projection.rebuild import rebuild
from prodops.messaging.broker import stream_config
from prodops.runtime.settings import Settings

TARGET_SHARE = 0.3


@dataclass(frozen=True)
class RebuildOptions:
    """How many events the stream holds."""

    events: int = 20_000


async def fill(settings: Settings, count: int) -> int:
    """Create the stream and publish `count` events to it; returns its last sequence."""
    async with jetstream(settings.nats_url) as js:
        await js.add_stream(stream_config(settings))
        events = synthetic.stream_of("rebuild", count)
        for start in range(0, len(events), 1000):
            acks = [
                await js.publish_async(
                    e.nats_subject(settings.subject_prefix),
                    e.to_bytes(),
                    headers={"Nats-Msg-Id": str(e.id)},
                )
                for e in events[start : start + 1000]
            ]
            await asyncio.gather(*acks)
        return int((await js.stream_info(settings.stream_name)).state.last_seq)


async def read_all(
    js: JetStreamContext, settings: Settings, cb: Callable[[Msg], Awaitable[None]] | None = None
) -> JetStreamContext.PushSubscription:
    """An ordered consumer of the whole stream, from its first message."""
    return await js.subscribe(
        f"{settings.subject_prefix}.>",
        stream=settings.stream_name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=cb,
    )


async def raw_consume(settings: Settings, last: int) -> float:
    """Seconds an ordered consumer takes to read the whole stream, doing nothing per message."""
    async with jetstream(settings.nats_url) as js:
        started = time.monotonic()
        sub = await read_all(js, settings)
        while (await sub.next_msg(timeout=30)).metadata.sequence.stream < last:
            pass
        took = time.monotonic() - started
        await sub.unsubscribe()
        return took


async def raw_consume_by_callback(settings: Settings, last: int) -> float:
    """The same read through a message callback, as the rebuild reads: the baseline."""
    async with jetstream(settings.nats_url) as js:
        done = asyncio.get_running_loop().create_future()

        async def seen(msg: Msg) -> None:
            if msg.metadata.sequence.stream >= last and not done.done():
                done.set_result(None)

        started = time.monotonic()
        sub = await read_all(js, settings, cb=seen)
        await asyncio.wait_for(done, timeout=300)
        took = time.monotonic() - started
        await sub.unsubscribe()
        return took


async def run(stack: Stack, options: RebuildOptions, mode: str) -> Report:
    """Fill, read raw, rebuild, read raw again (the baseline is the mean of both reads)."""
    url = await create_database(stack.postgres.url, "bench_rebuild")
    settings = settings_for(
        url, stack.settings.nats_url, stream_name="BENCH_REBUILD", subject_prefix="benchrb"
    )
    from prodops.runtime.migrations import migrate_all

    await migrate_all(settings, ("insights",))
    last = await fill(settings, options.events)
    raw_before = await raw_consume_by_callback(settings, last)
    started, cpu = time.monotonic(), time.thread_time()
    rebuilt = await rebuild(settings)
    took, cpu = time.monotonic() - started, time.thread_time() - cpu
    raw_after = await raw_consume_by_callback(settings, last)
    by_next_msg = await raw_consume(settings, last)
    raw_rate = last / ((raw_before + raw_after) / 2)
    rate = rebuilt.messages / took
    report = Report("rebuild", mode)
    report.figures = [
        Figure(
            "rebuild events/s",
            round(rate, 1),
            "/s",
            round(raw_rate, 1),
            "raw ordered consumer (callback)",
            f"ratio ≥ {TARGET_SHARE}",
            rate / raw_rate >= TARGET_SHARE,
        ),
        Figure(
            "rebuild events per CPU-second (ceiling)",
            round(rebuilt.messages / cpu, 1),
            "/s",
            round(raw_rate, 1),
            "raw ordered consumer (callback)",
        ),
    ]
    report.details = {
        "stream_messages": last,
        "rebuild": {
            "seconds": round(took, 2),
            # The rebuild's own thread (decoding, folding, deriving, encoding rows for COPY);
            # the rest of `seconds` it waited for PostgreSQL.
            "cpu_seconds": round(cpu, 2),
            "messages": rebuilt.messages,
            "applied": rebuilt.applied,
            "skipped": rebuilt.skipped,
            "failed": rebuilt.failed,
        },
        "raw_consume_seconds": [round(raw_before, 3), round(raw_after, 3)],
        # next_msg() starts a task and a timer per message: slower, so not the baseline.
        "raw_next_msg_consume_seconds": round(by_next_msg, 3),
        "options": options.__dict__,
    }
    return report
