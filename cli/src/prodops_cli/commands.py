"""The `prodops` command line: serving, migrating, tokens, outbox operations, the settings doc."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from prodops.runtime.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(help="prodops operations.", no_args_is_help=True, add_completion=False)
outbox_app = typer.Typer(help="The transactional outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
insights_app = typer.Typer(help="The insights service's signals.", no_args_is_help=True)
app.add_typer(insights_app, name="insights")

SERVICES = ("feedback", "roadmap", "insights")
ServiceName = Annotated[str, typer.Argument(help="feedback, roadmap or insights")]


def _settings() -> Settings:
    """A command's settings: the environment, then the `dev.env` a running `prodops up` left."""
    from prodops_cli.devenv import cli_settings

    try:
        return cli_settings()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _service_settings() -> Settings:
    """A served process's settings: its environment alone, never a development file."""
    try:
        return Settings()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _check_service(name: str) -> str:
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    return name


@app.command()
def serve(
    service: ServiceName,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="PRODOPS_HTTP_WORKERS",
            help="server processes sharing the port, each a full replica of the service",
        ),
    ] = 1,
    background: Annotated[
        bool,
        typer.Option(
            envvar="PRODOPS_BACKGROUND",
            help="run the relay, consumers, webhook normaliser and periodic jobs here too; "
            "--no-background serves HTTP only, beside a process of the service that runs them",
        ),
    ] = True,
) -> None:
    """Run one service under uvicorn."""
    import os

    import uvicorn

    # Through the environment, so that each of several worker processes reads it too.
    os.environ["PRODOPS_BACKGROUND"] = str(background).lower()
    settings = _service_settings()
    name = _check_service(service)
    # Several processes need the app by import path: each worker builds its own from the
    # environment, as every replica does.
    app = f"prodops_cli.commands:{name}_worker_app" if workers > 1 else _create_app(name, settings)
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=settings.host,
        port=port or getattr(settings, f"{name}_port"),
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


def _create_app(name: str, settings: Settings) -> FastAPI:
    module = importlib.import_module(f"{name}.bootstrap")
    app: FastAPI = module.create_app(settings)
    # This process serves this app until it exits: what its startup makes lives as long.
    app.state.freeze_after_startup = True
    return app


def feedback_worker_app() -> FastAPI:
    """The feedback app of one `prodops serve feedback --workers N` process."""
    return _create_app("feedback", _service_settings())


def roadmap_worker_app() -> FastAPI:
    """The roadmap app of one `prodops serve roadmap --workers N` process."""
    return _create_app("roadmap", _service_settings())


def insights_worker_app() -> FastAPI:
    """The insights app of one `prodops serve insights --workers N` process."""
    return _create_app("insights", _service_settings())


@app.command()
def up() -> None:
    """Run PostgreSQL, NATS and the three services locally until Ctrl-C; print URLs and a token."""
    from prodops_cli.up import run

    raise typer.Exit(run())


@app.command()
def migrate() -> None:
    """Apply every service's migrations (a second run changes nothing)."""
    from prodops.runtime.migrations import migrate_all

    applied = asyncio.run(migrate_all(_settings()))
    for service, names in applied.items():
        typer.echo(f"{service}: {len(names)} applied" + "".join(f"\n  {n}" for n in names))


@app.command()
def token(
    workspace: Annotated[str, typer.Option(help="workspace slug the token is scoped to")],
    scope: Annotated[list[str], typer.Option(help="a scope; repeat for several")],
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
) -> None:
    """Print a bearer token signed with the configured key."""
    from prodops.http.auth import mint_token

    scopes = [s for value in scope for s in value.split()]
    try:
        typer.echo(mint_token(_settings(), workspace=workspace, scopes=scopes, ttl_seconds=ttl))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("settings-doc")
def settings_doc() -> None:
    """Print docs/settings.md, generated from the Settings model."""
    from prodops_cli.settings_doc import render

    typer.echo(render(), nl=False)


@outbox_app.command("republish")
def outbox_republish(
    since: Annotated[datetime, typer.Option(help="republish events written at or after this time")],
    service: Annotated[list[str] | None, typer.Option(help="only these services")] = None,
) -> None:
    """Publish every event written since a time again: refills a lost or wiped stream."""
    counts = asyncio.run(
        _republish(_settings(), since, [_check_service(s) for s in service or SERVICES])
    )
    for name, count in counts.items():
        typer.echo(f"{name}: {count} events republished")


async def _republish(settings: Settings, since: datetime, services: list[str]) -> dict[str, int]:
    from prodops.messaging.broker import create_broker, ensure_stream, jetstream
    from prodops.messaging.outbox import republish
    from prodops.runtime.db import create_pool

    if since.tzinfo is None:
        raise typer.BadParameter("--since needs a timezone, e.g. 2026-11-25T00:00:00+00:00")
    broker = create_broker(settings, service="cli")
    await broker.connect()
    try:
        js = jetstream(broker)
        await ensure_stream(js, settings)
        counts = {}
        for name in services:
            pool = await create_pool(settings, schema=name, max_size=2)
            try:
                counts[name] = await republish(
                    pool, js, since=since, subject_prefix=settings.subject_prefix
                )
            finally:
                await pool.close()
        return counts
    finally:
        await broker.stop()


@insights_app.command("rebuild")
def insights_rebuild() -> None:
    """Replay the whole stream into empty insights projections and signals."""
    from insights.projection.rebuild import rebuild

    report = asyncio.run(rebuild(_settings()))
    typer.echo(
        f"{report.messages} messages read: {report.applied} applied, "
        f"{report.skipped} skipped, {report.failed} failed"
    )
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the `prodops` script."""
    app()
