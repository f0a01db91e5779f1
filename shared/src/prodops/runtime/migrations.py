"""Ordered SQL migrations per service schema, applied under an advisory lock, with checksums."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings

SHARED_PREFIX = "prodops"
_LOCK_KEY = 0x70726F646F7073  # "prodops": one migrator at a time across every service

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """An applied migration file no longer matches what was applied."""


@dataclass(frozen=True)
class Migration:
    """One SQL file, named `<owner>/<file name>` in the bookkeeping table."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_directory(owner: str, directory: Path) -> list[Migration]:
    """The `.sql` files of a directory, in name order."""
    files = sorted(p for p in directory.iterdir() if p.suffix == ".sql")
    return [Migration(f"{owner}/{p.name}", p.read_text()) for p in files]


def shared_migrations() -> list[Migration]:
    """The tables every service has: outbox, inbox, dead letters, idempotency keys."""
    root = resources.files("prodops.runtime") / "migrations"
    files = sorted((f for f in root.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f"{SHARED_PREFIX}/{f.name}", f.read_text()) for f in files]


def service_migrations(service: str) -> list[Migration]:
    """Shared migrations, then the service's own (from its package, or its source tree)."""
    package = resources.files(service)
    packaged = package / "migrations"
    if packaged.is_dir():
        directory = Path(str(packaged))
    else:
        directory = Path(str(package)).parents[1] / "migrations"
    return shared_migrations() + load_directory(service, directory)


async def apply(
    conn: Connection, *, schema: str, migrations: list[Migration], app_role: str
) -> list[str]:
    """Apply what is missing to `schema`; returns the names applied (empty on a second run)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await _prepare(conn, schema=schema, app_role=app_role)
        applied = {
            r["name"]: r["checksum"]
            for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")
        }
        done: list[str] = []
        for migration in migrations:
            known = applied.get(migration.name)
            if known is not None:
                if known != migration.checksum:
                    raise MigrationError(
                        f"{schema}: {migration.name} was edited after it was applied "
                        "(checksum differs); add a new migration instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name,
                migration.checksum,
            )
            done.append(migration.name)
        await _grant(conn, schema=schema, app_role=app_role)
        return done


async def _prepare(conn: Connection, *, schema: str, app_role: str) -> None:
    ident = await conn.fetchval("SELECT quote_ident($1)", schema)
    role = await conn.fetchval("SELECT quote_ident($1)", app_role)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
    await conn.execute(f"SET LOCAL search_path TO {ident}")
    # The application role owns nothing and cannot log in: RLS always applies to it.
    # Roles are cluster-wide and the advisory lock is per database: tolerate a concurrent create.
    await conn.execute(
        f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not superuser:
        await conn.execute(f"GRANT {role} TO current_user")
    # Migrations read the role name from here to write their row-level security policies.
    await conn.execute("SELECT set_config('prodops.app_role', $1, true)", app_role)
    await conn.execute(_BOOKKEEPING)


async def _grant(conn: Connection, *, schema: str, app_role: str) -> None:
    ident = await conn.fetchval("SELECT quote_ident($1)", schema)
    role = await conn.fetchval("SELECT quote_ident($1)", app_role)
    await conn.execute(f"GRANT USAGE ON SCHEMA {ident} TO {role}")
    await conn.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {ident} TO {role}"
    )
    await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {ident} TO {role}")
    await conn.execute(f"REVOKE ALL ON schema_migrations FROM {role}")


SERVICES = ("feedback", "roadmap", "insights")


async def migrate_all(
    settings: Settings, services: tuple[str, ...] = SERVICES
) -> dict[str, list[str]]:
    """Apply every service's migrations to the configured database."""
    conn: Connection = await asyncpg.connect(settings.database_url)
    try:
        return {
            service: await apply(
                conn,
                schema=service,
                migrations=service_migrations(service),
                app_role=settings.app_role,
            )
            for service in services
        }
    finally:
        await conn.close()
