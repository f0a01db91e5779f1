"""A raw-asyncio HTTP/1.1 keep-alive load generator, one or more processes.

Closed loop: each connection sends its next request as soon as the answer to the last arrives
(the most a server can take). Open loop: request i is due at `start_at + i / rate` whatever the
server does, and its latency counts from that due time, so a server that falls behind shows it
(no coordinated omission). It speaks just enough HTTP/1.1 (Content-Length bodies, keep-alive) to
cost a few microseconds per request, far below what the servers under test spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from bench.deliveries import get_request, signed_request

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Spec:
    """What one load run sends, where, and how fast."""

    port: int
    path: str
    kind: str  # "github" (signed deliveries) or "get"
    connections: int = 64
    secret: str = ""
    token: str = ""
    launches: tuple[str, ...] = ()
    first_number: int = 1
    duration: float = 5.0  # closed loop
    warmup: float = 0.0  # closed loop: completions before this are not counted
    rate: float = 0.0  # open loop when > 0
    count: int = 0
    start_at: float = 0.0
    worker: int = 0
    workers: int = 1


@dataclass
class LoadResult:
    """Answers by status, 2xx latencies in seconds (sorted), and what the generator itself cost."""

    completed: int = 0  # 2xx answers in the measured window
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    duration: float = 0.0
    late_start: float = 0.0

    @property
    def rate(self) -> float:
        """Completed requests per second of the measured window."""
        return self.completed / self.duration if self.duration else 0.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end]).lower()
        length = _content_length(head)
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def send(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end if end >= 0 else len(head)])


async def _connect(port: int) -> _Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(_Connection, HOST, port)
    return protocol


def _request(spec: Spec, index: int) -> bytes:
    host = f"{HOST}:{spec.port}"
    if spec.kind == "github":
        launch = spec.launches[index % len(spec.launches)] if spec.launches else None
        return signed_request(host, spec.path, spec.secret, spec.first_number + index, launch)
    return get_request(host, spec.path, spec.token)


async def _exchange(
    conn: _Connection, spec: Spec, raw: bytes, result: LoadResult
) -> tuple[_Connection, bool]:
    """Send one request and note its status; True for a 2xx. A broken connection is replaced."""
    try:
        status = await conn.send(raw)
    except Exception:
        # Counted, never fatal: one broken connection must not stall the whole run.
        result.errors += 1
        if conn.transport is not None:
            conn.transport.close()
        return await _connect(spec.port), False
    result.statuses[str(status)] += 1
    return conn, 200 <= status < 300


async def closed_loop(spec: Spec) -> LoadResult:
    """Every connection sends again as soon as it is answered, for `duration` seconds."""
    result = LoadResult()
    conns = [await _connect(spec.port) for _ in range(spec.connections)]
    counter = iter(range(spec.worker, 1 << 62, spec.workers))
    start = time.monotonic()
    counted_from, deadline = start + spec.warmup, start + spec.warmup + spec.duration

    async def drive(conn: _Connection) -> None:
        while (sent := time.monotonic()) < deadline:
            conn, ok = await _exchange(conn, spec, _request(spec, next(counter)), result)
            done = time.monotonic()
            if ok and counted_from <= sent and done <= deadline:
                result.completed += 1
                result.latencies.append(done - sent)

    await asyncio.gather(*(drive(c) for c in conns))
    result.duration = spec.duration
    return result


async def open_loop(spec: Spec) -> LoadResult:
    """Request i (of this worker's share) is due at `start_at + i / rate`; latency from then."""
    result = LoadResult()
    conns = [await _connect(spec.port) for _ in range(spec.connections)]
    due: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    result.late_start = max(0.0, time.monotonic() - spec.start_at)

    async def drive(conn: _Connection) -> None:
        while True:
            index, at = await due.get()
            conn, ok = await _exchange(conn, spec, _request(spec, index), result)
            if ok:
                result.completed += 1
                result.latencies.append(time.monotonic() - at)
            due.task_done()

    drivers = [asyncio.create_task(drive(c)) for c in conns]
    for index in range(spec.worker, spec.count, spec.workers):
        at = spec.start_at + index / spec.rate
        if (wait := at - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        due.put_nowait((index, at))
    await due.join()
    for task in drivers:
        task.cancel()
    # A server that falls behind stretches the run: the rate is what it actually answered.
    result.duration = max(spec.count / spec.rate, time.monotonic() - spec.start_at)
    return result


async def _main(spec: Spec) -> LoadResult:
    cpu = time.process_time()
    result = await (open_loop(spec) if spec.rate > 0 else closed_loop(spec))
    result.cpu_seconds = time.process_time() - cpu
    return result


def _loop_factory() -> Any:
    # uvloop comes with uvicorn[standard]; the plain loop works too, only slower.
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def worker_main(argv: list[str]) -> None:
    """Subprocess entry: run the spec given as JSON, write the result as JSON to a file."""
    spec = Spec(**{**json.loads(argv[0]), "launches": tuple(json.loads(argv[0])["launches"])})
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        result = runner.run(_main(spec))
    out = asdict(result)
    out["statuses"] = dict(result.statuses)
    # A file, not stdout: the event loop may leave a pipe non-blocking, and a result over the
    # pipe's 64 KiB was then cut short where the pipe was full.
    Path(argv[1]).write_text(json.dumps(out))


async def run(spec: Spec, *, workers: int = 1) -> LoadResult:
    """Run `spec` split over `workers` processes and merge what they measured."""
    if spec.rate > 0 and not spec.start_at:
        # Time for the workers to start and connect; all share the system-wide monotonic clock.
        spec = replace(spec, start_at=time.monotonic() + 2.0)
    shares = [
        replace(spec, worker=w, workers=workers, connections=max(1, spec.connections // workers))
        for w in range(workers)
    ]
    with tempfile.TemporaryDirectory(prefix="prodops-loadgen-") as folder:
        results = [Path(folder, f"{s.worker}.json") for s in shares]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.loadgen", json.dumps(asdict(s)), str(result)
            )
            for s, result in zip(shares, results, strict=True)
        ]
        codes = [await p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"a load generator process failed: exit codes {codes}")
        parts = [json.loads(result.read_text()) for result in results]
    merged = LoadResult(duration=spec.duration if spec.rate <= 0 else 0.0)
    for part in parts:
        merged.completed += part["completed"]
        merged.errors += part["errors"]
        merged.statuses.update(part["statuses"])
        merged.latencies.extend(part["latencies"])
        merged.cpu_seconds += part["cpu_seconds"]
        merged.late_start = max(merged.late_start, part["late_start"])
        if spec.rate > 0:
            merged.duration = max(merged.duration, part["duration"])
    merged.latencies.sort()
    return merged


if __name__ == "__main__":
    worker_main(sys.argv[1:])
