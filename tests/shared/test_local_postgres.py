"""The local PostgreSQL that `make up`, the test harness and the benchmarks start from the wheel."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from prodops_cli.localinfra import start_postgres


async def test_a_local_postgres_runs_with_the_server_settings_it_is_given(tmp_path: Path) -> None:
    server = start_postgres(
        tmp_path / "postgres", durable=False, settings={"work_mem": "7MB", "shared_buffers": "48MB"}
    )
    try:
        conn = await asyncpg.connect(server.url)
        try:
            assert await conn.fetchval("SHOW work_mem") == "7MB"
            assert await conn.fetchval("SHOW shared_buffers") == "48MB"
            assert await conn.fetchval("SHOW fsync") == "off"  # what durable=False asks for
        finally:
            await conn.close()
    finally:
        server.stop()
