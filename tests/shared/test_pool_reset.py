"""A pooled connection comes back clean without asyncpg's reset query (prodops.runtime.db)."""

from __future__ import annotations

import asyncio

import pytest

from prodops.runtime.db import create_pool, workspace_transaction
from prodops.runtime.settings import Settings

_STATE = """
SELECT current_user AS role, current_setting('prodops.workspace', true) AS workspace,
       (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()
          AND locktype = 'advisory') AS advisory_locks
"""


async def test_a_request_leaves_no_role_workspace_lock_or_transaction_behind(
    settings: Settings, workspace: str
) -> None:
    pool = await create_pool(settings, schema="roadmap", min_size=1, max_size=1)
    try:
        owner = await pool.fetchval("SELECT current_user")
        async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(42)")
            assert await conn.fetchval("SELECT current_user") == settings.app_role
        state = await pool.fetchrow(_STATE)
        assert state is not None
        assert (state["role"], state["workspace"] or "", state["advisory_locks"]) == (owner, "", 0)

        async def cut_short() -> None:
            async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
                await conn.execute("SELECT pg_sleep(10)")

        task = asyncio.create_task(cut_short())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            state = await conn.fetchrow(_STATE)
        assert state is not None
        assert (state["role"], state["workspace"] or "", state["advisory_locks"]) == (owner, "", 0)
    finally:
        await pool.close()


async def test_service_connections_never_compile_statements_with_jit(settings: Settings) -> None:
    # Where the server has LLVM, a statement estimated over jit_above_cost was compiled on each
    # call (400 ms for launch readiness's set-wise read): the pools turn JIT off.
    pool = await create_pool(settings, schema="insights", min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SHOW jit") == "off"
        assert await pool.fetchval("SHOW application_name") == "prodops-insights"
    finally:
        await pool.close()
