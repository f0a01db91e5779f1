"""What the fuzzing found, pinned: each of these answered 500 before its fix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from feedback.webhooks import front, generic
from prodops.runtime.settings import Settings
from prodops.webhooks.provider import InboundWebhook
from prodops.webhooks.standard import SignatureError
from roadmap.webhooks import gitlab, linear
from support import auth, create_app, register_source, running

HUGE = "9" * 400


@pytest.fixture
async def feedback(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app("feedback", settings)) as client:
        yield client


async def _zendesk_source(client: httpx.AsyncClient, settings: Settings, workspace: str) -> Any:
    return await register_source(client, settings, workspace, "zendesk", "Support")


def _zendesk_headers(secret: str, body: bytes) -> dict[str, str]:
    stamp = datetime.now(UTC).isoformat()
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def _problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    return problem


async def test_a_nul_character_in_a_body_or_query_is_a_422_not_a_500(
    feedback: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await feedback.post("/v1/feedback", headers=headers, json={"title": "Wish\u0000"})
    assert "NUL" in _problem(created, 422)["detail"]
    listed = await feedback.get("/v1/feedback", headers=headers, params={"tag": "a\u0000"})
    _problem(listed, 422)
    assert (await feedback.get("/v1/feedback", headers=headers)).json()["items"] == []


async def test_a_nul_character_in_a_json_document_column_is_a_422_not_a_500(
    settings: Settings, workspace: str
) -> None:
    async with running(create_app("roadmap", settings)) as roadmap:
        template = [{"title": "Docs\u0000"}]
        answer = await roadmap.put(
            "/v1/checklist-template", headers=auth(settings, workspace), json=template
        )
        _problem(answer, 422)


async def test_a_malformed_webhook_source_id_is_an_unknown_source(
    feedback: httpx.AsyncClient,
) -> None:
    answer = await feedback.post("/webhooks/zendesk/not-a-uuid", content=b"{}")
    assert _problem(answer, 404)["detail"] == "no such webhook source"


async def test_the_webhook_answers_are_documented(feedback: httpx.AsyncClient) -> None:
    document = (await feedback.get("/openapi.json")).json()
    responses = document["paths"]["/webhooks/{provider}/{source_id}"]["post"]["responses"]
    assert {"200", "202", "400", "401", "404", "413", "503"} <= set(responses)


async def test_long_and_nul_bearing_delivery_ids_are_stored_and_deduplicated(
    feedback: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await _zendesk_source(feedback, settings, workspace)
    for delivery_id in ("x" * 9000, "evt-\u0000"):
        payload = {"type": "zen:event-type:ticket.created", "id": delivery_id}
        body = json.dumps(payload).encode()
        for expected in ("failed", "duplicate"):
            headers = _zendesk_headers(source["secret"], body) | {"Prefer": "wait=10"}
            answer = await feedback.post(source["webhook_url"], content=body, headers=headers)
            assert answer.status_code in {200, 202}, answer.text
            assert answer.json()["status"] == expected


async def test_an_event_type_with_a_nul_character_is_a_bad_request(
    feedback: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await _zendesk_source(feedback, settings, workspace)
    body = json.dumps({"type": "zen:event-type:ticket.\u0000", "id": "evt-1"}).encode()
    headers = _zendesk_headers(source["secret"], body)
    answer = await feedback.post(source["webhook_url"], content=body, headers=headers)
    _problem(answer, 400)


async def test_an_absurd_front_timestamp_is_a_401_over_http(
    feedback: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    answer = await feedback.post(
        "/v1/sources",
        headers=auth(settings, workspace, "admin"),
        json={"provider": "front", "name": "Front"},
    )
    url = answer.json()["webhook_url"]
    sent = {"X-Front-Signature": "c2ln", "X-Front-Request-Timestamp": HUGE}
    _problem(await feedback.post(url, content=b"{}", headers=sent), 401)


@pytest.mark.parametrize(
    ("scheme", "headers", "body"),
    [
        (front.PROVIDER, {"x-front-signature": "c2ln", "x-front-request-timestamp": HUGE}, b"{}"),
        (
            generic.PROVIDER,
            {"webhook-id": "m", "webhook-timestamp": HUGE, "webhook-signature": "v1,c2ln"},
            b"{}",
        ),
        (
            gitlab.PROVIDER,
            {"webhook-id": "m", "webhook-timestamp": HUGE, "webhook-signature": "v1,c2ln"},
            b"{}",
        ),
    ],
    ids=["front", "generic", "gitlab"],
)
def test_a_timestamp_too_large_for_a_float_is_a_bad_signature(
    scheme: Any, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        scheme.verify(
            InboundWebhook(headers, body), ["whsec_c2VjcmV0"], now=time.time(), tolerance=300
        )


def test_a_linear_body_timestamp_too_large_for_a_float_is_a_bad_signature() -> None:
    body = b'{"type": "Issue", "action": "create", "webhookTimestamp": ' + HUGE.encode() + b"}"
    signature = hmac.new(b"linear-secret", body, hashlib.sha256).hexdigest()
    webhook = InboundWebhook({"linear-signature": signature}, body)
    with pytest.raises(SignatureError, match="tolerance"):
        linear.PROVIDER.verify(webhook, ["linear-secret"], now=time.time(), tolerance=300)
