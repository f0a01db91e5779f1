"""WebhookFastPath: deliveries served ahead of FastAPI's stack, answered as the route would."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import recording_spans
from prodops.webhooks.fast_path import ROUTE, WebhookFastPath
from prodops.webhooks.intake import Intake
from prodops.webhooks.writer import NewDelivery
from signing import github_delivery
from support import (
    assert_problem,
    assert_rate_limited,
    assert_server_span,
    auth,
    create_app,
    requests_counted,
    running,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ISSUE = orjson.loads(
    (Path(__file__).parents[1] / "fixtures/webhooks/github/issues.opened.json").read_bytes()
)
Request = tuple[str, bytes, dict[str, str]]


def routed(app: FastAPI) -> ASGIApp:
    """The same app without its fast path: every request through the middlewares and router."""
    layer: Any = app.middleware_stack or app.build_middleware_stack()
    while not isinstance(layer, WebhookFastPath):
        layer = layer.app
    inner = layer.app

    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        await inner({**scope, "app": app}, receive, send)

    return call


def client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://prodops.test")


@pytest.fixture
async def roadmap(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app("roadmap", settings)) as fast:
        yield fast


async def github_source(roadmap: httpx.AsyncClient, settings: Settings, workspace: str) -> Any:
    admin = auth(settings, workspace, "admin")
    answer = await roadmap.post(
        "/v1/sources", headers=admin, json={"provider": "github", "name": "GitHub"}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _delivery(secret: str, url: str) -> Request:
    body, headers = github_delivery(secret, "issues", ISSUE)
    return url, body, headers


def _bad_signature(secret: str, url: str) -> Request:
    body, headers = github_delivery(secret + "x", "issues", ISSUE)
    return url, body, headers


def _ping(secret: str, url: str) -> Request:
    body, headers = github_delivery(secret, "ping", {"zen": "Keep it simple."})
    return url, body, headers


def _not_json(secret: str, url: str) -> Request:
    _, headers = github_delivery(secret, "issues", ISSUE)
    body = b"not json"
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return url, body, {**headers, "X-Hub-Signature-256": f"sha256={digest}"}


def _unknown_source(secret: str, url: str) -> Request:
    return _delivery(secret, url.rsplit("/", 1)[0] + f"/{uuid.uuid5(uuid.NAMESPACE_URL, url)}")


def _malformed_source_id(secret: str, url: str) -> Request:
    return _delivery(secret, url.rsplit("/", 1)[0] + "/not-a-uuid")


def _unknown_provider(secret: str, url: str) -> Request:
    return _delivery(secret, url.replace("/github/", "/gitea/"))


def _too_large(secret: str, url: str) -> Request:
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    return url, body, {"Content-Type": "application/json"}


CASES: dict[str, Callable[[str, str], Request]] = {
    "delivery": _delivery,
    "bad signature": _bad_signature,
    "ping": _ping,
    "body not JSON": _not_json,
    "unknown source": _unknown_source,
    "malformed source id": _malformed_source_id,
    "unknown provider": _unknown_provider,
    "too large": _too_large,
}


def _shape(answer: httpx.Response) -> tuple[int, str, Any]:
    body = answer.json()
    if isinstance(body, dict) and body.get("id"):
        body["id"] = "<id>"
    return answer.status_code, answer.headers["content-type"], body


@pytest.mark.parametrize("case", CASES)
async def test_the_fast_path_answers_as_the_routed_path_does(
    settings: Settings, workspace: str, case: str
) -> None:
    app = create_app("roadmap", settings)
    async with running(app) as fast, client(routed(app)) as slow:
        source = await github_source(fast, settings, workspace)
        answers: list[list[tuple[int, str, Any]]] = [[], []]
        for sender, answered in zip((fast, slow), answers, strict=True):
            url, body, headers = CASES[case](source["secret"], source["webhook_url"])
            answered.append(_shape(await sender.post(url, content=body, headers=headers)))
            if case == "delivery":  # and the same delivery again
                answered.append(_shape(await sender.post(url, content=body, headers=headers)))
    assert answers[0] == answers[1], answers
    if case == "delivery":
        assert answers[0][0][:2] == (202, "application/json")
        assert answers[0][1] == (200, "application/json", {"id": None, "status": "duplicate"})


async def test_a_streamed_body_past_the_limit_is_refused_without_a_length(
    roadmap: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await github_source(roadmap, settings, workspace)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * (settings.body_limit_bytes // 2)

    answer = await roadmap.post(source["webhook_url"], content=chunks())
    assert_problem(answer, 413)
    assert answer.headers["connection"] == "close"


async def test_other_methods_and_paths_are_left_to_the_router(
    roadmap: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await github_source(roadmap, settings, workspace)
    wrong_method = await roadmap.get(source["webhook_url"])
    assert_problem(wrong_method, 405)
    longer = await roadmap.post(source["webhook_url"] + "/more", content=b"{}")
    assert_problem(longer, 404)


async def test_webhooks_and_the_api_spend_one_rate_bucket_per_caller(
    settings: Settings, workspace: str
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.01, "rate_limit_burst": 2})
    async with running(create_app("roadmap", limited)) as roadmap:
        unsigned = await roadmap.post(f"/webhooks/github/{uuid.uuid4()}", content=b"{}")
        assert unsigned.status_code == 404  # a token spent by this client's IP
        anonymous = await roadmap.get("/v1/items")
        assert anonymous.status_code == 401  # the second, by the same IP
        refused = await roadmap.post(f"/webhooks/github/{uuid.uuid4()}", content=b"{}")
    assert_rate_limited(refused)


def _requests_counted(status: int) -> float:
    return requests_counted("roadmap", "POST", ROUTE, status)


async def test_a_delivery_is_traced_and_counted_like_any_request(
    roadmap: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await github_source(roadmap, settings, workspace)
    url, body, headers = _delivery(source["secret"], source["webhook_url"])
    before = _requests_counted(202)
    with recording_spans() as exporter:
        traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        answer = await roadmap.post(
            url, content=body, headers={**headers, "traceparent": traceparent}
        )
    assert answer.status_code == 202
    assert _requests_counted(202) == before + 1
    assert_server_span(exporter.get_finished_spans(), f"POST {ROUTE}", ROUTE, 202, TRACE_ID)


async def test_an_unexpected_failure_is_a_500_problem_and_an_error_span(
    roadmap: httpx.AsyncClient,
    settings: Settings,
    workspace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = await github_source(roadmap, settings, workspace)

    async def broken(self: Intake, delivery: NewDelivery) -> bool:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Intake, "store", broken)
    url, body, headers = _delivery(source["secret"], source["webhook_url"])
    with recording_spans() as exporter:
        answer = await roadmap.post(url, content=body, headers=headers)
    assert_problem(answer, 500)
    problem = orjson.loads(answer.content)
    assert problem["status"] == 500
    assert "disk on fire" not in answer.text
    [span] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.status.status_code == StatusCode.ERROR
