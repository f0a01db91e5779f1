"""The processes under test: PostgreSQL and NATS from the wheels, then real service processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from prodops.http.auth import SCOPES, mint_token
from prodops.runtime.settings import DEVELOPMENT_SECRETS_KEY, Settings
from prodops_cli.localinfra import LocalServer, free_port, start_nats, start_postgres

# The processes the stack runs. Each service as one process, and roadmap also as one process
# serving HTTP only (`--no-background`: verify, store, answer), which the ingest benchmark loads.
COMMANDS = {
    "feedback": ["prodops_cli", "serve", "feedback"],
    "roadmap": ["prodops_cli", "serve", "roadmap"],
    "insights": ["prodops_cli", "serve", "insights"],
    "roadmap-http": ["prodops_cli", "serve", "roadmap", "--no-background"],
}
JWT_SECRET = "bench-secret-" + "b" * 40
WORKSPACE = "bench"


def with_database(url: str, database: str) -> str:
    """The same server URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def create_database(admin_url: str, name: str) -> str:
    """A new empty database (dropped first if a previous run left it); returns its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


def settings_for(database_url: str, nats_url: str, **overrides: Any) -> Settings:
    """Settings as every benchmark process gets them (development env, no rate limit)."""
    values: dict[str, Any] = {
        "env": "development",
        "database_url": database_url,
        "nats_url": nats_url,
        "jwt_secret": JWT_SECRET,
        "secrets_key": DEVELOPMENT_SECRETS_KEY,
        "log_level": "WARNING",
        "rate_limit_per_second": 0,
        "outbound_allow_private_urls": True,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def postgres_settings() -> dict[str, str]:
    """PostgreSQL's buffer cache sized as in production: a quarter of the machine's memory.

    The default, 128 MB, is sized to start anywhere, not to hold a workspace. With it, an event
    in a large history reads from the OS, through buffers whose dirty pages must be written out
    first, pages that it finds in the cache in a small one: same rows, same buffer hits, more
    database time (benchmark 3).
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):  # in a container, its own limit counts
        memory = min(memory, int(Path("/sys/fs/cgroup/memory.max").read_text()))
    return {
        "shared_buffers": f"{memory // 4 // 2**20}MB",
        # Checkpoints spaced as a loaded server's are (the 1 GB default makes PostgreSQL warn
        # that they come too often at this WAL rate), and the segments they finish with kept.
        "max_wal_size": "4GB",
        "min_wal_size": f"{AGED_WAL_MB}MB",
    }


# WAL a server in steady state has ready for reuse: more than a benchmark run writes.
AGED_WAL_MB, WAL_SEGMENT_MB = 2048, 16


async def age_wal(url: str) -> None:
    """Give a new cluster the recycled WAL segments a server that has been running has.

    A new cluster makes each 16 MB segment as its WAL reaches it, writing and syncing its zeros
    while every commit waits, every second or two at ingest's open-loop rate, which was most of
    its p99. A server that has been running renames segments a checkpoint
    has finished with instead (up to `min_wal_size`); so does this one after this warm-up.
    """
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_wal_age (n int)")
        for n in range(AGED_WAL_MB // WAL_SEGMENT_MB):
            await conn.execute("INSERT INTO bench_wal_age VALUES ($1)", n)
            await conn.execute("SELECT pg_switch_wal()")
        await conn.execute("DROP TABLE bench_wal_age")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def environment(settings: Settings) -> dict[str, str]:
    """The PRODOPS_* variables that give a child process the same settings."""
    return {
        **os.environ,
        "PRODOPS_ENV": settings.env,
        "PRODOPS_DATABASE_URL": settings.database_url,
        "PRODOPS_NATS_URL": settings.nats_url,
        "PRODOPS_JWT_SECRET": JWT_SECRET,
        "PRODOPS_SECRETS_KEY": DEVELOPMENT_SECRETS_KEY,
        "PRODOPS_LOG_LEVEL": "WARNING",
        "PRODOPS_RATE_LIMIT_PER_SECOND": "0",
        "PRODOPS_OUTBOUND_ALLOW_PRIVATE_URLS": "true",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Stack:
    """PostgreSQL, NATS, the services and the baseline server of one benchmark run."""

    root: Path
    postgres: LocalServer
    nats: LocalServer
    settings: Settings
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        """Where a service (or `baseline`) listens."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def token(self, *scopes: str) -> str:
        """A bearer token for the bench workspace."""
        wanted = list(scopes or sorted(SCOPES))
        return mint_token(self.settings, workspace=WORKSPACE, scopes=wanted, ttl_seconds=86_400)

    def spawn(self, name: str, args: list[str]) -> None:
        """Start a server process on a free port, logging under the run's directory."""
        port = free_port()
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", *args, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(self.settings),
            start_new_session=True,
        )
        self.ports[name] = port

    async def wait_ready(self, name: str, path: str = "/readyz", within: float = 60.0) -> None:
        """Until the process answers 200 on `path`."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.root / name}.log")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url(name) + path)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {within}s; see {self.root / name}.log")

    @contextlib.contextmanager
    def paused(self, *names: str) -> Iterator[None]:
        """The processes stopped (SIGSTOP) for the block and continued after it, come what may."""
        for name in names:
            self.processes[name].send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for name in names:
                self.processes[name].send_signal(signal.SIGCONT)

    def stop_process(self, name: str) -> None:
        """SIGTERM one process, SIGKILL if it lingers."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def stop(self) -> None:
        """Stop every process this stack started, servers last."""
        for name in list(self.processes):
            self.stop_process(name)
        self.nats.stop()
        self.postgres.stop()


async def start_stack(root: Path, *, fsync: bool = True) -> Stack:
    """PostgreSQL, NATS, migrations, the three services and the baseline, all ready."""
    from prodops.runtime.migrations import migrate_all

    postgres = start_postgres(root / "postgres", durable=fsync, settings=postgres_settings())
    try:
        nats = start_nats(root / "nats")
    except BaseException:
        postgres.stop()
        raise
    url = with_database(postgres.url, "prodops")
    stack = Stack(root, postgres, nats, settings_for(url, nats.url))
    try:
        await age_wal(postgres.url)
        await create_database(postgres.url, "prodops")
        await migrate_all(stack.settings)
        for name, command in COMMANDS.items():
            stack.spawn(name, command)
        stack.spawn("baseline", ["bench.baseline"])
        for name in COMMANDS:
            await stack.wait_ready(name)
        await stack.wait_ready("baseline", "/healthz")
    except BaseException:
        stack.stop()
        raise
    return stack
