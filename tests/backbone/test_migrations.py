"""Migrations: applied once in order, recorded with checksums, and never silently edited."""

from __future__ import annotations

import asyncpg
import pytest

from prodops.runtime.migrations import Migration, MigrationError, apply, service_migrations


async def test_second_run_applies_nothing_and_an_edited_applied_file_fails_loudly(
    fresh_database_url: str,
) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        migrations = service_migrations("feedback")
        first = await apply(conn, schema="feedback", migrations=migrations, app_role="prodops_app")
        assert first == [m.name for m in migrations]
        assert (
            await apply(conn, schema="feedback", migrations=migrations, app_role="prodops_app")
            == []
        )
        edited = [*migrations[:-1], Migration(migrations[-1].name, migrations[-1].sql + "\n--")]
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply(conn, schema="feedback", migrations=edited, app_role="prodops_app")
        added = [*migrations, Migration("feedback/9999_extra.sql", "CREATE TABLE extra (x int)")]
        assert await apply(conn, schema="feedback", migrations=added, app_role="prodops_app") == [
            "feedback/9999_extra.sql"
        ]
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(fresh_database_url: str) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        broken = [
            Migration("x/0001_ok.sql", "CREATE TABLE ok (x int)"),
            Migration("x/0002_bad.sql", "CREATE TABLE bad (x nosuchtype)"),
        ]
        with pytest.raises(asyncpg.PostgresError):
            await apply(conn, schema="scratch", migrations=broken, app_role="prodops_app")
        exists = await conn.fetchval("SELECT to_regclass('scratch.ok') IS NOT NULL")
        assert exists is False
    finally:
        await conn.close()
