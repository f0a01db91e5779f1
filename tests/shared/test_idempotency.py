"""Idempotency-Key on POST, against the real database: replays, conflicts and releases."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from prodops.http.auth import FeedbackWrite, install_auth, mint_token
from prodops.http.idempotency import (
    IN_PROGRESS_LEASE_SECONDS,
    IdempotencyMiddleware,
    purge_expired_keys,
)
from prodops.http.limits import BodyLimitMiddleware
from prodops.http.problems import PROBLEM_MEDIA_TYPE, ProblemError, install_problem_handlers
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings


class NoteIn(BaseModel):
    title: str


class Gate:
    """Holds a request inside its route until the test lets it go."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def build_app(settings: Settings, pool: Pool, calls: Counter[str], gate: Gate) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, settings)
    app.state.pool = pool
    app.state.settings = settings

    @app.post("/v1/notes", status_code=201)
    async def create_note(note: NoteIn, principal: FeedbackWrite) -> JSONResponse:
        calls["notes"] += 1
        number = calls["notes"]
        body = {"id": number, "title": note.title, "workspace": principal.workspace}
        return JSONResponse(body, status_code=201, headers={"Location": f"/v1/notes/{number}"})

    @app.post("/v1/flaky")
    async def flaky(principal: FeedbackWrite) -> dict[str, int]:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("the database went away")
        if calls["flaky"] == 2:
            raise ProblemError(503, "Service Unavailable", "the broker is unreachable")
        return {"attempt": calls["flaky"]}

    @app.post("/v1/slow")
    async def slow(principal: FeedbackWrite) -> dict[str, str]:
        calls["slow"] += 1
        gate.entered.set()
        await gate.release.wait()
        return {"status": "done"}

    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.body_limit_bytes)
    return app


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def client(
    settings: Settings, pool: Pool, calls: Counter[str], gate: Gate
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings, pool, calls, gate)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


def headers(settings: Settings, workspace: str, key: str) -> dict[str, str]:
    token = mint_token(settings, workspace=workspace, scopes=["feedback:write"])
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


async def test_retry_with_the_same_key_gets_the_first_response(
    client: httpx.AsyncClient, settings: Settings, workspace: str, calls: Counter[str]
) -> None:
    sent = headers(settings, workspace, "create-note-1")
    first = await client.post("/v1/notes", json={"title": "Dark mode"}, headers=sent)
    retry = await client.post("/v1/notes", json={"title": "Dark mode"}, headers=sent)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"] == "/v1/notes/1"
    assert retry.headers["content-type"] == "application/json"
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert calls["notes"] == 1


async def test_same_key_with_another_body_is_a_conflict(
    client: httpx.AsyncClient, settings: Settings, workspace: str, calls: Counter[str]
) -> None:
    sent = headers(settings, workspace, "create-note-2")
    await client.post("/v1/notes", json={"title": "Dark mode"}, headers=sent)
    reused = await client.post("/v1/notes", json={"title": "Light mode"}, headers=sent)
    assert reused.status_code == 409
    assert reused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert reused.json()["title"] == "Idempotency-Key reused with a different request"
    assert calls["notes"] == 1


async def test_workspaces_use_the_same_key_independently(
    client: httpx.AsyncClient, settings: Settings, workspace: str, calls: Counter[str]
) -> None:
    other = f"{workspace}-other"
    ours = await client.post(
        "/v1/notes", json={"title": "x"}, headers=headers(settings, workspace, "shared-key")
    )
    theirs = await client.post(
        "/v1/notes", json={"title": "x"}, headers=headers(settings, other, "shared-key")
    )
    assert (ours.json()["workspace"], theirs.json()["workspace"]) == (workspace, other)
    assert "idempotent-replayed" not in theirs.headers
    assert calls["notes"] == 2


async def test_server_errors_are_not_stored_so_a_retry_runs_again(
    client: httpx.AsyncClient, settings: Settings, workspace: str, calls: Counter[str]
) -> None:
    sent = headers(settings, workspace, "flaky-1")
    statuses = [(await client.post("/v1/flaky", headers=sent)).status_code for _ in range(3)]
    replay = await client.post("/v1/flaky", headers=sent)
    assert statuses == [500, 503, 200]
    assert replay.json() == {"attempt": 3}
    assert replay.headers["idempotent-replayed"] == "true"
    assert calls["flaky"] == 3


async def test_duplicate_while_the_first_runs_is_told_to_retry(
    client: httpx.AsyncClient, settings: Settings, workspace: str, calls: Counter[str], gate: Gate
) -> None:
    sent = headers(settings, workspace, "slow-1")
    first = asyncio.create_task(client.post("/v1/slow", headers=sent))
    await asyncio.wait_for(gate.entered.wait(), timeout=10)
    duplicate = await client.post("/v1/slow", headers=sent)
    gate.release.set()
    assert (await first).status_code == 200
    assert duplicate.status_code == 409
    assert duplicate.json()["title"] == "A request with this Idempotency-Key is still in progress"
    assert duplicate.headers["retry-after"] == "1"
    later = await client.post("/v1/slow", headers=sent)
    assert later.headers["idempotent-replayed"] == "true"
    assert calls["slow"] == 1


@pytest.mark.parametrize("key", ["k" * 256, "caf\u00e9"])
async def test_malformed_key_is_bad_request(
    client: httpx.AsyncClient, settings: Settings, workspace: str, key: str
) -> None:
    sent = headers(settings, workspace, "placeholder")
    sent["Idempotency-Key"] = key
    raw = [(name.encode(), value.encode()) for name, value in sent.items()]
    response = await client.post("/v1/notes", json={"title": "x"}, headers=raw)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_request_without_a_valid_token_is_left_to_the_route(
    client: httpx.AsyncClient, pool: Pool, workspace: str
) -> None:
    sent = {"Authorization": "Bearer not-a-token", "Idempotency-Key": "anonymous-1"}
    response = await client.post("/v1/notes", json={"title": "x"}, headers=sent)
    assert response.status_code == 401
    assert (
        await pool.fetchval("SELECT count(*) FROM idempotency_key WHERE key = 'anonymous-1'") == 0
    )


async def test_expired_key_may_be_used_again(
    settings: Settings, pool: Pool, workspace: str, calls: Counter[str], gate: Gate
) -> None:
    short_lived = settings.model_copy(update={"idempotency_ttl_hours": 0.01 / 3600})
    app = build_app(short_lived, pool, calls, gate)
    transport = httpx.ASGITransport(app=app)
    sent = headers(settings, workspace, "expiring-1")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        await http.post("/v1/notes", json={"title": "first"}, headers=sent)
        await asyncio.sleep(0.05)
        again = await http.post("/v1/notes", json={"title": "second"}, headers=sent)
    assert again.status_code == 201
    assert again.json()["title"] == "second"
    await asyncio.sleep(0.05)
    assert await purge_expired_keys(pool) >= 1


async def test_oversized_streamed_body_is_refused_before_the_key_is_claimed(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.body_limit_bytes // 65536 + 2):
            yield b" " * 65536

    sent = headers(settings, workspace, "too-big-1") | {"content-type": "application/json"}
    response = await client.post("/v1/notes", content=chunks(), headers=sent)
    assert response.status_code == 413
    found = await pool.fetchval("SELECT count(*) FROM idempotency_key WHERE key = 'too-big-1'")
    assert found == 0


async def test_claim_left_by_a_crashed_process_frees_up_after_its_lease(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, calls: Counter[str]
) -> None:
    sent = headers(settings, workspace, "crashed-1")
    # What a process that died mid-request leaves: a claim with no response, its lease run out.
    await pool.execute(
        "INSERT INTO idempotency_key (workspace, key, method, path, request_hash, expires_at) "
        "VALUES ($1, 'crashed-1', 'POST', '/v1/notes', 'whatever', now() - interval '1 second')",
        workspace,
    )
    answer = await client.post("/v1/notes", json={"title": "after the crash"}, headers=sent)
    assert answer.status_code == 201
    assert calls["notes"] == 1
    expires = await pool.fetchval(
        "SELECT expires_at - now() FROM idempotency_key WHERE workspace = $1 AND key = $2",
        workspace,
        "crashed-1",
    )
    assert expires.total_seconds() > IN_PROGRESS_LEASE_SECONDS  # the completed key keeps its TTL
