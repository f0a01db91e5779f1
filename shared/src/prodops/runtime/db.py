"""The asyncpg pool of a service, and the workspace-scoped transaction that every request uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from prodops.runtime.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request

# asyncpg's classes are generic only to the type checker, hence the quoted aliases.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(
    settings: Settings, *, schema: str, min_size: int = 1, max_size: int = 10
) -> Pool:
    """A pool whose connections see only `schema` (the service's own) on their search path."""
    pool: Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_nothing_left_to_reset,
        server_settings={
            "search_path": schema,
            "application_name": f"prodops-{schema}",
            # The services' statements are short and run often; where the server is built with
            # LLVM (Debian's and most distributions' packages are), a set-wise read whose row
            # estimate was far too high (unnest, LATERAL) was compiled on each call, the JIT
            # costing more than the statement. Only a long analytic read could gain from JIT,
            # and the services make none.
            "jit": "off",
        },
    )
    return pool


async def _nothing_left_to_reset(conn: Connection) -> None:
    """What a connection needs once asyncpg has rolled back any open transaction: nothing.

    Every setting prodops makes is transaction-local (`set_config(…, true)`, `SET LOCAL`,
    transaction advisory locks, temporary tables `ON COMMIT DROP`), and a LISTEN is undone by
    `remove_listener`, so asyncpg's default reset query (unlock all, close cursors, unlisten,
    reset all) would be a round trip to undo nothing on every release. Keep it that way: a
    session-level setting, lock or LISTEN left on a pooled connection would outlive its request.
    """


@asynccontextmanager
async def workspace_transaction(
    pool: Pool, workspace: str, *, role: str
) -> AsyncIterator[Connection]:
    """A transaction confined to one workspace: the application role, under row-level security."""
    async with pool.acquire() as conn, conn.transaction():
        # Both settings are transaction-local, so a pooled connection never leaks them.
        await conn.execute(
            "SELECT set_config('prodops.workspace', $1, true), set_config('role', $2, true)",
            workspace,
            role,
        )
        yield conn


def request_transaction(
    request: Request, workspace: str
) -> AbstractAsyncContextManager[Connection]:
    """The workspace transaction of an HTTP request, on its app's pool and settings."""
    settings: Settings = request.app.state.settings
    return workspace_transaction(request.app.state.pool, workspace, role=settings.app_role)
