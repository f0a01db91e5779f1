"""Helpers the tests share: running service apps in-process, tokens, waiting."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import httpx
import nats
import orjson
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from feedback.domain import Feedback, TicketSnapshot
from feedback.service import upsert_from_source
from insights.engine import CONSUMER
from prodops.contract import Event, ItemUpserted, new_id, utcnow
from prodops.http.auth import SCOPES, mint_token
from prodops.messaging.consumer import EventConsumer
from prodops.messaging.handlers import BulkHandler, Consumed, Handler
from prodops.runtime.db import Connection, workspace_transaction
from prodops.runtime.settings import Settings

T = TypeVar("T")


def create_app(service: str, settings: Settings) -> FastAPI:
    """The app of one service, built from its composition root."""
    import importlib

    module = importlib.import_module(f"{service}.bootstrap")
    app: FastAPI = module.create_app(settings)
    return app


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (pool, broker, relay, consumers) and talk to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://prodops.test") as client:
            yield client


Running = tuple[FastAPI, httpx.AsyncClient]  # an app with its lifespan running, and its client


@asynccontextmanager
async def started(service: str, settings: Settings) -> AsyncIterator[Running]:
    """A service's app running with its lifespan, and a client of it."""
    app = create_app(service, settings)
    async with running(app) as client:
        yield app, client


@asynccontextmanager
async def serving(service: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A service running with its lifespan, stopped once its relay published the writes."""
    async with started(service, settings) as (app, client):
        yield client
        await quiesce(app)


def auth(settings: Settings, workspace: str, *scopes: str) -> dict[str, str]:
    """An Authorization header for `workspace` with `scopes` (every scope when none given)."""
    token = mint_token(settings, workspace=workspace, scopes=list(scopes or sorted(SCOPES)))
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 15.0
) -> T:
    """Poll `probe` until `until(value)` holds; fail with the last value after `timeout`."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(0.05)


async def publish(settings: Settings, *events: Event, msg_id: str | None = None) -> None:
    """Publish events straight to the stream, as a relay would."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for event in events:
            headers = {"Nats-Msg-Id": msg_id or str(event.id)}
            await js.publish(
                event.nats_subject(settings.subject_prefix), event.to_bytes(), headers=headers
            )
    finally:
        await nc.close()


async def stream_messages(settings: Settings, aggregate: str = "feedback") -> int:
    """How many messages of one aggregate's events the test's stream holds."""
    nc = await nats.connect(settings.nats_url)
    try:
        subjects = f"{settings.subject_prefix}.{aggregate}.>"
        info = await nc.jetstream().stream_info(settings.stream_name, subjects_filter=subjects)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


async def signal_of(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    """A signal's JSON body, None while there is none yet (404)."""
    answer = await client.get(path, headers=headers)
    return answer.json() if answer.status_code == 200 else None


def json_of(response: httpx.Response) -> Any:
    """The JSON body, with the response in the message when it is not JSON."""
    assert response.headers.get("content-type", "").endswith("json"), response.text
    return response.json()


def projections(app: FastAPI) -> EventConsumer:
    """The insights consumer of a running app."""
    consumer: EventConsumer = app.state.runtime.consumers[CONSUMER]
    return consumer


def count_applications(
    consumer: EventConsumer, applied: Counter[UUID] | None = None
) -> Counter[UUID]:
    """Wrap every handler so the test sees how often each event id was applied."""
    applied = Counter() if applied is None else applied

    def counting(handler: Handler) -> Handler:
        async def wrapper(conn: Connection, event: Event) -> None:
            await handler(conn, event)
            applied[event.id] += 1

        return wrapper

    consumer.handlers = {t: counting(h) for t, h in consumer.handlers.items()}
    bulk = consumer.bulk
    if bulk is not None:

        async def counting_bulk(conn: Connection, consumed: Sequence[Consumed]) -> None:
            await bulk.apply(conn, consumed)
            applied.update(c.event.id for c in consumed)

        consumer.bulk = BulkHandler(bulk.types, counting_bulk)
    return applied


async def summary(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    response = await client.get("/v1/summary", headers=headers)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


def item_upserted(version: int, title: str, item_id: UUID | None = None) -> ItemUpserted:
    return ItemUpserted(
        id=item_id or new_id(),
        key="CK-1",
        title=title,
        status="planned",
        version=version,
        updated_at=utcnow(),
    )


async def quiesce(app: FastAPI) -> None:
    """Let the relay publish what the test wrote, so the app stops with nothing in flight."""
    for _ in range(100):
        if not await app.state.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)


async def query(settings: Settings, statement: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one statement, run as the tests' superuser on a connection of its own."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(statement, *args)
    finally:
        await conn.close()
    return rows


async def query_value(settings: Settings, statement: str, *args: Any) -> Any:
    """The first value of one statement's first row (None when it has no row)."""
    rows = await query(settings, statement, *args)
    return rows[0][0] if rows else None


async def emitted(
    settings: Settings, workspace: str, schema: str = "feedback"
) -> list[tuple[str, dict[str, Any]]]:
    """(type without `prodops.` and `.v1`, data) of every event the workspace's writes emitted."""
    rows = await query(
        settings,
        f"SELECT payload FROM {schema}.outbox WHERE workspace = $1 ORDER BY position",  # noqa: S608 - schema is the test's constant
        workspace,
    )
    events = [Event.from_bytes(r["payload"]) for r in rows]
    return [(e.type.removeprefix("prodops.").removesuffix(".v1"), e.data) for e in events]


async def posted(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> Any:
    """POST `body` to the collection at `path`, expect it created, and return its JSON."""
    answer = await client.post(path, headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> Any:
    """POST a feedback item (title "Wish" unless given) and return its JSON."""
    return await posted(client, headers, "/v1/feedback", {"title": "Wish", **fields})


class Jira:
    """A registered Jira source that sends signed issue deliveries."""

    def __init__(self, client: httpx.AsyncClient, source: dict[str, Any]) -> None:
        self.client, self.url, self.secret = client, source["webhook_url"], source["secret"]

    async def issue(
        self,
        key: str,
        *,
        labels: tuple[str, ...] = (),
        versions: tuple[str, ...] = (),
        points: float | None = None,
        done: bool = False,
        parent: str | None = None,
        event: str = "jira:issue_created",
    ) -> None:
        """Deliver an issue event for an issue whose id is its key; it must be processed."""
        fields: dict[str, Any] = {
            "summary": f"Work on {key}",
            "labels": list(labels),
            "fixVersions": [{"id": name, "name": name} for name in versions],
            "status": {"statusCategory": {"key": "done" if done else "new"}},
            "customfield_10016": points,
        }
        if parent is not None:
            fields["parent"] = {"key": parent}
        body = orjson.dumps(
            {"webhookEvent": event, "issue": {"id": key, "key": key, "fields": fields}}
        )
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature": f"sha256={signature}",
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "Prefer": "wait=10",  # answer with the outcome of normalising it
        }
        answer = await self.client.post(self.url, content=body, headers=headers)
        assert answer.status_code in {200, 202}, answer.text
        assert answer.json()["status"] == "processed"


async def register_source(
    client: httpx.AsyncClient, settings: Settings, workspace: str, provider: str, name: str
) -> Any:
    """Register a webhook source in the workspace: its id, URL and (this once) its secret."""
    answer = await client.post(
        "/v1/sources",
        headers=auth(settings, workspace, "admin"),
        json={"provider": provider, "name": name},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def register_jira(client: httpx.AsyncClient, settings: Settings, workspace: str) -> Jira:
    """Register a Jira source in the workspace and return a sender for it."""
    return Jira(client, await register_source(client, settings, workspace, "jira", "Jira"))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `prodops` subprocess these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODOPS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"PRODOPS_{name.upper()}"] = (
            json.dumps(plain) if isinstance(plain, tuple) else str(plain)
        )
    return env


async def run_cli(settings: Settings, *args: str) -> str:
    """Run `prodops <args>` in a subprocess with these settings; its output, or fail."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prodops_cli",
        *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


def requests_counted(service: str, method: str, route: str, status: int) -> float:
    """How many requests `/metrics` has counted for this service, method, route and status."""
    labels = {"service": service, "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("prodops_http_requests_total", labels) or 0.0


# A request: (method, path) or (method, path, JSON body).
Call = tuple[str, str] | tuple[str, str, Any]


async def answers(
    client: httpx.AsyncClient, headers: dict[str, str], *calls: Call
) -> list[httpx.Response]:
    """The answers to `calls`, made one after the other with `headers`."""
    found = []
    for method, path, *body in calls:
        found.append(
            await client.request(method, path, headers=headers, json=next(iter(body), None))
        )
    return found


def assert_problem(answer: httpx.Response, status: int) -> None:
    """The answer is a problem+json document (RFC 9457) with this status."""
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"


def assert_rate_limited(answer: httpx.Response) -> None:
    """The answer is the 429 problem of a caller whose rate bucket ran dry."""
    assert_problem(answer, 429)
    assert int(answer.headers["retry-after"]) >= 1


def assert_server_span(
    spans: Sequence[Any], name: str, route: str, status: int, trace_id: str
) -> None:
    """The one server span among `spans`: named for its route, in the caller's trace."""
    [span] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert span.name == name
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes is not None
    assert span.attributes["http.status_code"] == status
    assert span.attributes["http.route"] == route


async def apply_ticket(app: FastAPI, workspace: str, source_id: UUID, **fields: Any) -> Feedback:
    """A support-desk snapshot applied as the webhook normaliser applies it (the app's role)."""
    snapshot = TicketSnapshot(**fields)
    role = app.state.settings.app_role
    async with workspace_transaction(app.state.pool, workspace, role=role) as conn:
        return await upsert_from_source(
            conn=conn,
            workspace=workspace,
            source_id=source_id,
            provider="zendesk",
            snapshot=snapshot,
        )
