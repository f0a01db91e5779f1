"""The test harness: real PostgreSQL and nats-server, started from the wheels on free ports.

`PRODOPS_TEST_DATABASE_URL` / `PRODOPS_TEST_NATS_URL` point the suite at servers of your own
instead. Either way every test session gets its own database, stream and subject prefix, so no
test depends on (or disturbs) state left on a shared server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import nats
import pytest

from prodops.runtime.settings import Settings
from support import auth

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)

# CI runs the property tests on a fixed seed, so that a red run can be run again as it was; a
# developer's runs draw new examples each time and explore further.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

TEST_JWT_SECRET = "test-secret-" + "x" * 40


@dataclass(frozen=True)
class Infra:
    """Where the servers of this test session are."""

    postgres_url: str
    nats_url: str


def with_database(url: str, database: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """PostgreSQL and NATS for the whole session: given by URL, or started here."""
    from prodops_cli.localinfra import LocalServer, start_nats, start_postgres

    started: list[LocalServer] = []
    postgres_url = os.environ.get("PRODOPS_TEST_DATABASE_URL")
    nats_url = os.environ.get("PRODOPS_TEST_NATS_URL")
    # Not under pytest's basetemp: another pytest session on the machine prunes old basetemps,
    # and would delete the data of servers still running.
    root = Path(tempfile.mkdtemp(prefix="prodops-test-servers-"))
    root.chmod(0o755)  # PostgreSQL may run as another user (never as root) and must reach it
    try:
        if not postgres_url:
            started.append(start_postgres(root / "postgres", durable=False))
            postgres_url = started[-1].url
        if not nats_url:
            started.append(start_nats(root / "nats"))
            nats_url = started[-1].url
        yield Infra(postgres_url, nats_url)
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def create_database(infra: Infra) -> str:
    """A new, empty database on the test server; returns its URL."""
    name = f"prodops_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.postgres_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(infra.postgres_url, name)


async def drop_database(infra: Infra, url: str) -> None:
    """Drop a database made by `create_database`, disconnecting anyone still on it."""
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(infra.postgres_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(infra: Infra, database_url: str, **overrides: object) -> Settings:
    """Settings for one test session: its own database, stream and subject prefix."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "nats_url": infra.nats_url,
        "jwt_secret": TEST_JWT_SECRET,
        "stream_name": f"PRODOPS_TEST_{tag}",
        "subject_prefix": f"t{tag}",
        "consumer_backoff_seconds": (0.2, 0.4),
        "consumer_max_deliver": 3,
        "consumer_ack_wait_seconds": 3.0,
        "outbox_poll_interval_seconds": 0.2,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """One database for the session, with every service's migrations applied."""
    from prodops.runtime.migrations import migrate_all

    url = await create_database(infra)
    await migrate_all(make_settings(infra, url))
    yield url
    await drop_database(infra, url)


@pytest.fixture
async def fresh_database_url(infra: Infra) -> AsyncIterator[str]:
    """An empty database of the test's own (no migrations applied)."""
    url = await create_database(infra)
    yield url
    await drop_database(infra, url)


@pytest.fixture
async def settings(infra: Infra, database_url: str) -> AsyncIterator[Settings]:
    """Settings on the migrated session database, with a stream of this test's own."""
    value = make_settings(infra, database_url)
    yield value
    await delete_stream(value)


async def delete_stream(settings: Settings) -> None:
    """Remove the test's stream from the broker (best effort: it may be gone already)."""
    nc = await nats.connect(settings.nats_url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(settings.stream_name)
    finally:
        await nc.close()


@pytest.fixture
def workspace() -> str:
    """A workspace of this test's own."""
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def headers(settings: Settings, workspace: str) -> dict[str, str]:
    """An Authorization header for the test's workspace, with every scope."""
    return auth(settings, workspace)
