"""ReadFastPath: a launch's readiness answered ahead of FastAPI's stack, as the route would."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from insights.api import sql as api_sql
from insights.api.signals import LAUNCH_ROUTE
from prodops.http.auth import mint_token
from prodops.http.read_fast_path import ReadFastPath
from prodops.runtime.app import YOUNG_COLLECTION_THRESHOLD
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import recording_spans
from prodops_cli.commands import _create_app as served_app
from signal_events import Builder
from support import (
    assert_rate_limited,
    assert_server_span,
    auth,
    create_app,
    eventually,
    publish,
    requests_counted,
    running,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Behind:
    """What the fast path passed on: the app behind it, counting the requests it received."""

    def __init__(self, app: FastAPI) -> None:
        if app.middleware_stack is None:
            app.middleware_stack = app.build_middleware_stack()
        layer: Any = app.middleware_stack
        while not isinstance(layer, ReadFastPath):
            layer = layer.app
        self.inner: ASGIApp = layer.app
        self.passed_on = 0
        layer.app = self._counting
        self.app = app

    async def _counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.passed_on += 1
        await self.inner(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same app without its fast path: every request through the middlewares and router."""
        await self.inner({**scope, "app": self.app}, receive, send)


def client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://prodops.test")


@pytest.fixture
async def launched(settings: Settings, workspace: str) -> AsyncIterator[tuple[FastAPI, Behind]]:
    """A running insights app with launch L1 (one item, one open blocker) already signalled."""
    b = Builder(workspace)
    app = create_app("insights", settings)
    async with running(app) as insights:
        behind = Behind(app)
        await publish(
            settings,
            b.item("A"),
            b.launch("L1", items=("A",)),
            b.issue("acme/shop#1", item_keys=["A"], labels=["blocker"], blocker=True),
        )
        reader = auth(settings, workspace, "insights:read")

        async def status() -> str:
            answer = await insights.get("/v1/signals/launches/L1", headers=reader)
            return str(answer.json()["status"]) if answer.status_code == 200 else "absent"

        # The launch may be signalled before its blocker is applied: wait for the blocker too.
        await eventually(status, "blocked".__eq__)
        yield app, behind


def _expired(settings: Settings, workspace: str) -> dict[str, str]:
    assert settings.jwt_secret is not None
    claims = {"ws": workspace, "scope": "insights:read", "exp": int(time.time()) - 3600}
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


# Each case: the request (path, headers), and whether the fast path answers it itself.
Case = Callable[[Settings, str], tuple[str, dict[str, str], bool]]
CASES: dict[str, Case] = {
    "a launch": lambda s, ws: ("/v1/signals/launches/L1", auth(s, ws, "insights:read"), True),
    "an unknown launch": lambda s, ws: ("/v1/signals/launches/L9", auth(s, ws), True),
    "another workspace's launch": lambda s, ws: (
        "/v1/signals/launches/L1",
        auth(s, f"{ws}-x", "insights:read"),
        True,
    ),
    "no token": lambda _s, _ws: ("/v1/signals/launches/L1", {}, False),
    "another scheme": lambda s, ws: (
        "/v1/signals/launches/L1",
        {"Authorization": auth(s, ws)["Authorization"].replace("Bearer", "Basic")},
        False,
    ),
    "an expired token": lambda s, ws: ("/v1/signals/launches/L1", _expired(s, ws), False),
    "a token without the scope": lambda s, ws: (
        "/v1/signals/launches/L1",
        auth(s, ws, "roadmap:read"),
        False,
    ),
    "a key too long": lambda s, ws: ("/v1/signals/launches/" + "k" * 201, auth(s, ws), False),
    "a key at the length limit": lambda s, ws: (
        "/v1/signals/launches/" + "k" * 200,
        auth(s, ws),
        True,
    ),
    "an encoded slash": lambda s, ws: ("/v1/signals/launches/L1%2Fx", auth(s, ws), False),
    "the history below": lambda s, ws: ("/v1/signals/launches/L1/history", auth(s, ws), False),
    "the list": lambda s, ws: ("/v1/signals/launches", auth(s, ws), False),
}


@pytest.mark.parametrize("case", CASES)
async def test_the_fast_path_answers_as_the_routed_path_does(
    launched: tuple[FastAPI, Behind], settings: Settings, workspace: str, case: str
) -> None:
    app, behind = launched
    path, headers, answered_fast = CASES[case](settings, workspace)
    async with client(app) as fast, client(behind.routed) as slow:
        # The routed answer first: it verifies the token, which the fast path only remembers.
        expected = await slow.get(path, headers=headers)
        before = behind.passed_on
        answer = await fast.get(path, headers=headers)
    assert behind.passed_on == before + (0 if answered_fast else 1)
    assert answer.status_code == expected.status_code
    assert answer.headers["content-type"] == expected.headers["content-type"]
    assert answer.headers.get("www-authenticate") == expected.headers.get("www-authenticate")
    assert answer.content == expected.content
    if case == "a launch":
        signal = answer.json()
        assert (signal["launch_key"], signal["status"]) == ("L1", "blocked")


async def test_a_token_is_verified_by_the_app_before_the_fast_path_takes_it(
    launched: tuple[FastAPI, Behind], settings: Settings, workspace: str
) -> None:
    app, behind = launched
    # A token of its own (the subject makes it so), never verified before.
    token = mint_token(settings, workspace=workspace, scopes=["insights:read"], subject="new")
    new = {"Authorization": f"Bearer {token}"}
    async with client(app) as fast:
        before = behind.passed_on
        first = await fast.get("/v1/signals/launches/L1", headers=new)
        second = await fast.get("/v1/signals/launches/L1", headers=new)
        with_body = await fast.request("GET", "/v1/signals/launches/L1", headers=new, content=b"{}")
    assert (first.status_code, second.status_code, with_body.status_code) == (200, 200, 200)
    assert first.content == second.content == with_body.content
    assert behind.passed_on == before + 2  # the first, and the one with a body


async def test_the_statement_confines_itself_to_the_workspace_and_leaves_nothing_set(
    launched: tuple[FastAPI, Behind], settings: Settings, workspace: str
) -> None:
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": "insights"})
    try:
        owner = await conn.fetchval("SELECT current_user")
        [mine] = await conn.fetch(api_sql.LAUNCH_OF, workspace, settings.app_role, "L1")
        theirs = await conn.fetch(api_sql.LAUNCH_OF, f"{workspace}-x", settings.app_role, "L1")
        after = await conn.fetchrow(
            "SELECT current_user AS role, current_setting('prodops.workspace', true) AS ws"
        )
        # The owner sees every workspace: the statement, not the caller, confined the read.
        everyone = await conn.fetchval(
            "SELECT count(*) FROM launch_signal WHERE launch_key = 'L1' AND workspace = $1",
            workspace,
        )
    finally:
        await conn.close()
    assert (mine["workspace"], mine["launch_key"], theirs) == (workspace, "L1", [])
    assert after is not None
    assert after["role"] == owner
    assert not after["ws"]
    assert everyone == 1


async def test_the_fast_path_spends_the_callers_rate_bucket(
    settings: Settings, workspace: str
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 2})
    reader = auth(settings, workspace, "insights:read")
    async with running(create_app("insights", limited)) as insights:
        first = await insights.get("/v1/signals/launches/L1", headers=reader)  # routed, verified
        second = await insights.get("/v1/signals/launches/L1", headers=reader)  # the fast path
        refused = await insights.get("/v1/signals/launches/L1", headers=reader)
    assert (first.status_code, second.status_code) == (404, 404)
    assert_rate_limited(refused)


def _requests_counted(status: int) -> float:
    return requests_counted("insights", "GET", LAUNCH_ROUTE, status)


async def test_a_fast_read_is_traced_and_counted_like_any_request(
    launched: tuple[FastAPI, Behind], settings: Settings, workspace: str
) -> None:
    app, behind = launched
    reader = auth(settings, workspace, "insights:read")
    async with client(app) as fast:
        await fast.get("/v1/signals/launches/L1", headers=reader)  # verified by the app
        before, passed_on = _requests_counted(200), behind.passed_on
        with recording_spans() as exporter:
            traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
            answer = await fast.get(
                "/v1/signals/launches/L1", headers={**reader, "traceparent": traceparent}
            )
    assert answer.status_code == 200
    assert behind.passed_on == passed_on
    assert _requests_counted(200) == before + 1
    assert_server_span(
        exporter.get_finished_spans(), f"GET {LAUNCH_ROUTE}", LAUNCH_ROUTE, 200, TRACE_ID
    )


async def test_an_unexpected_failure_is_a_500_problem_and_an_error_span(
    launched: tuple[FastAPI, Behind],
    settings: Settings,
    workspace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, behind = launched
    reader = auth(settings, workspace, "insights:read")
    async with client(app) as fast:
        await fast.get("/v1/signals/launches/L1", headers=reader)  # verified by the app
        monkeypatch.setattr(api_sql, "LAUNCH_OF", "SELECT * FROM no_such_table WHERE $1 = $2")
        passed_on = behind.passed_on
        with recording_spans() as exporter:
            answer = await fast.get("/v1/signals/launches/L1", headers=reader)
    assert behind.passed_on == passed_on
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 500
    assert "no_such_table" not in answer.text
    [span] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.status.status_code == StatusCode.ERROR


async def test_a_served_app_keeps_what_its_startup_made_out_of_garbage_collections(
    settings: Settings,
) -> None:
    assert gc.get_freeze_count() == 0  # apps made in tests freeze nothing
    before = gc.get_threshold()
    app = served_app("insights", settings)  # as `prodops serve` makes it
    try:
        async with running(app):
            frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert frozen > 10_000
    assert threshold == (YOUNG_COLLECTION_THRESHOLD, *before[1:])
