"""Shared HTTP conventions through a small app: problem+json errors, limits and cursors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from prodops.http.auth import FeedbackWrite, install_auth, mint_token
from prodops.http.limits import BodyLimitMiddleware, RateLimitMiddleware
from prodops.http.pagination import Cursor, Limit, Page, decode_cursor, page_of
from prodops.http.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_RESPONSES,
    ProblemError,
    install_problem_handlers,
    require_json,
)
from prodops.runtime.settings import Settings

SETTINGS = Settings(env="test", jwt_secret="x" * 40)
BODY_LIMIT = 1024
SECRET_VALUE = "hunter2-do-not-echo"


class NoteIn(BaseModel):
    title: str = Field(min_length=1)
    votes: int = Field(ge=0)


class Note(BaseModel):
    id: int
    title: str


class Item(BaseModel):
    id: int
    name: str


ITEMS = [Item(id=number, name=f"item {number}") for number in range(7)]


@dataclass
class Calls:
    notes: int = 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build_app(
    *, rate_per_second: float = 0.0, burst: int = 1, clock: FakeClock | None = None
) -> tuple[FastAPI, Calls]:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, SETTINGS)
    calls = Calls()
    router = APIRouter(
        prefix="/v1", responses=PROBLEM_RESPONSES, dependencies=[Depends(require_json)]
    )

    @router.post("/notes", status_code=201)
    async def create_note(note: NoteIn, principal: FeedbackWrite) -> Note:
        calls.notes += 1
        return Note(id=calls.notes, title=note.title)

    @router.post("/notes/{note_id}/links")
    async def link_note(note_id: int) -> None:
        raise ProblemError(409, "Conflict", "the note is already linked", linked_to=note_id)

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"connection failed with password {SECRET_VALUE}")

    @router.get("/items")
    async def list_items(limit: Limit = 50, cursor: Cursor = None) -> Page[Item]:
        after = decode_cursor(cursor)[0] if cursor else -1
        rows = [item for item in ITEMS if item.id > after][: limit + 1]
        return page_of(rows, limit, key=lambda item: [item.id])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, limit=BODY_LIMIT)
    app.add_middleware(
        RateLimitMiddleware,
        rate_per_second=rate_per_second,
        burst=burst,
        clock=clock or FakeClock(),
    )
    return app, calls


def client_for(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def bearer(*scopes: str) -> dict[str, str]:
    token = mint_token(SETTINGS, workspace="acme", scopes=scopes or ["feedback:write"])
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of `response`, after checking the fields every problem has."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["instance"] == response.request.url.path
    return body


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app, _ = build_app()
    async with client_for(app) as http:
        yield http


async def test_malformed_json_body_is_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/notes",
        content=b'{"title": ',
        headers={"content-type": "application/json", **bearer()},
    )
    assert problem(response, 400)["title"] == "Malformed JSON body"


async def test_missing_token_is_unauthorized_with_a_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/notes", json={"title": "a", "votes": 1})
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_without_the_scope_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/notes", json={"title": "a", "votes": 1}, headers=bearer("feedback:read")
    )
    assert "feedback:write" in problem(response, 403)["detail"]


async def test_unknown_path_is_not_found(client: httpx.AsyncClient) -> None:
    assert problem(await client.get("/v1/nowhere"), 404)["title"] == "Not Found"


async def test_wrong_method_is_not_allowed_and_says_which_are(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/notes")
    assert problem(response, 405)["title"] == "Method Not Allowed"
    assert response.headers["allow"] == "POST"


async def test_problem_error_keeps_its_extensions(client: httpx.AsyncClient) -> None:
    body = problem(await client.post("/v1/notes/7/links"), 409)
    assert body["detail"] == "the note is already linked"
    assert body["linked_to"] == 7


async def test_declared_body_over_the_limit_is_refused_unread() -> None:
    app, calls = build_app()
    async with client_for(app) as http:
        response = await http.post(
            "/v1/notes",
            content=b"x" * (BODY_LIMIT + 1),
            headers={"content-type": "application/json", **bearer()},
        )
    assert str(BODY_LIMIT) in problem(response, 413)["detail"]
    assert calls.notes == 0


async def test_streamed_body_over_the_limit_is_cut_off() -> None:
    app, calls = build_app()
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for number in range(64):
            sent.append(number)
            yield b" " * 100

    async with client_for(app) as http:
        response = await http.post(
            "/v1/notes", content=chunks(), headers={"content-type": "application/json", **bearer()}
        )
    assert "content-length" not in response.request.headers
    problem(response, 413)
    assert calls.notes == 0
    assert len(sent) < 64, "the middleware must stop reading once the limit is passed"


async def test_streamed_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "streamed",'
        yield b' "votes": 2}'

    response = await client.post(
        "/v1/notes", content=chunks(), headers={"content-type": "application/json", **bearer()}
    )
    assert response.status_code == 201
    assert response.json()["title"] == "streamed"


async def test_body_that_is_not_json_is_unsupported(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/notes", content=b"title=a", headers={"content-type": "text/plain", **bearer()}
    )
    assert problem(response, 415)["title"] == "Unsupported Media Type"


async def test_invalid_body_lists_errors_without_echoing_input(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/notes", json={"title": "a", "votes": SECRET_VALUE}, headers=bearer()
    )
    body = problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["body", "votes"]]
    assert set(body["errors"][0]) == {"loc", "msg", "type"}
    assert SECRET_VALUE not in response.text


async def test_caller_over_the_rate_is_told_when_to_retry() -> None:
    clock = FakeClock()
    app, _ = build_app(rate_per_second=0.5, burst=2, clock=clock)
    async with client_for(app) as http:
        assert (await http.get("/v1/items")).status_code == 200
        assert (await http.get("/v1/items")).status_code == 200
        refused = await http.get("/v1/items")
        assert (await http.get("/healthz")).status_code == 200
        clock.now += 2
        assert (await http.get("/v1/items")).status_code == 200
    problem(refused, 429)
    assert refused.headers["retry-after"] == "2"


async def test_callers_have_buckets_of_their_own() -> None:
    app, _ = build_app(rate_per_second=0.1, burst=1)
    async with client_for(app) as http:
        assert (await http.get("/v1/items")).status_code == 200
        assert (await http.get("/v1/items", headers=bearer())).status_code == 200
        assert (await http.get("/v1/items")).status_code == 429


async def test_unexpected_error_reveals_nothing(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = build_app()
    async with client_for(app, raise_app_exceptions=False) as http:
        response = await http.get("/v1/boom")
    body = problem(response, 500)
    assert body["title"] == "Internal Server Error"
    for leak in (SECRET_VALUE, "RuntimeError", "Traceback", "password"):
        assert leak not in response.text
    assert "RuntimeError" in caplog.text, "the error must still reach the log"


async def test_pages_walk_the_whole_list(client: httpx.AsyncClient) -> None:
    sizes: list[int] = []
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/items", params=params)).json()
        sizes.append(len(page["items"]))
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        with pytest.raises(json.JSONDecodeError):
            json.loads(cursor)
    assert sizes == [3, 3, 1]
    assert seen == list(range(7))


@pytest.mark.parametrize("cursor", ["not a cursor", "e30", "W3siYSI6MX1d", "x" * 5000])
async def test_garbage_cursor_is_bad_request(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/v1/items", params={"cursor": cursor})
    assert problem(response, 400)["detail"] == "cursor is not valid"


@pytest.mark.parametrize("limit", [0, 201])
async def test_limit_out_of_range_is_unprocessable(client: httpx.AsyncClient, limit: int) -> None:
    problem(await client.get("/v1/items", params={"limit": limit}), 422)


async def test_openapi_documents_problems_as_problem_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    responses = document["paths"]["/v1/notes"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "413", "415", "422", "429", "500"):
        assert responses[status]["content"] == {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    schemas = document["components"]["schemas"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(
        schemas["Problem"]["properties"]
    )
    assert "HTTPValidationError" not in schemas
