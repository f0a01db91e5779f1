"""`/v1/subscriptions` over HTTP: the API, the URL guard, pings, and workspace isolation."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from insights.outbound.dispatcher import EVENT_TYPES
from insights.outbound.http import UnsafeURLError, check_url, retry_delay
from prodops.contract import AlignmentChanged, LaunchReadinessChanged
from prodops.runtime.settings import Settings
from prodops.webhooks.standard import SignatureError
from receiver import webhook_receiver
from support import auth, create_app, running

READINESS = LaunchReadinessChanged.TYPE
ALIGNMENT = AlignmentChanged.TYPE
PROBLEM = "application/problem+json"
CLOSED_PORT = "http://127.0.0.1:9/hooks"  # the discard port: nothing listens there


def quick(settings: Settings, **overrides: object) -> Settings:
    """The test's settings with private URLs allowed (the receiver is local) and short timings."""
    values = {
        **settings.model_dump(),
        "outbound_allow_private_urls": True,
        "outbound_timeout_seconds": 2.0,
        "outbound_poll_interval_seconds": 0.1,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app("insights", quick(settings))) as http:
        yield http


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An insights app that refuses private URLs, as production does."""
    strict = quick(settings, outbound_allow_private_urls=False)
    async with running(create_app("insights", strict)) as http:
        yield http


async def subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **fields: Any
) -> dict[str, Any]:
    answer = await client.post("/v1/subscriptions", headers=headers, json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = answer.json()
    return problem


async def test_subscription_is_created_listed_patched_and_deleted_with_its_secret_shown_once(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    created = await subscribe(
        client, admin, CLOSED_PORT, event_types=[READINESS, READINESS], description="CRM"
    )
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == [READINESS]
    assert (created["enabled"], created["disabled_reason"]) == (True, None)
    url = f"/v1/subscriptions/{created['id']}"
    fetched = await client.get(url, headers=admin)
    listed = await client.get("/v1/subscriptions", headers=admin)
    for answer in (fetched, listed):
        assert answer.status_code == 200
        assert created["secret"] not in answer.text
        assert "secret" not in answer.text
    assert [s["id"] for s in listed.json()["items"]] == [created["id"]]
    patched = await client.patch(url, headers=admin, json={"event_types": [], "url": CLOSED_PORT})
    assert (patched.json()["event_types"], patched.json()["description"]) == ([], "CRM")
    cleared = await client.patch(url, headers=admin, json={"description": None})
    assert cleared.json()["description"] is None
    assert (await client.delete(url, headers=admin)).status_code == 204
    assert_problem(await client.get(url, headers=admin), 404)
    assert_problem(await client.delete(url, headers=admin), 404)


async def test_another_workspace_can_neither_see_nor_touch_a_subscription(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    created = await subscribe(client, auth(settings, workspace, "admin"), CLOSED_PORT)
    other = auth(settings, f"{workspace}-other", "admin")
    url = f"/v1/subscriptions/{created['id']}"
    assert (await client.get("/v1/subscriptions", headers=other)).json()["items"] == []
    attempts = [
        ("GET", url, None),
        ("PATCH", url, {"description": "mine now"}),
        ("POST", f"{url}/enable", None),
        ("POST", f"{url}/ping", None),
        ("POST", f"{url}/rotate-secret", None),
        ("GET", f"{url}/deliveries", None),
        ("POST", f"{url}/deliveries/{created['id']}/retry", None),
        ("DELETE", url, None),
    ]
    for method, path, body in attempts:
        assert_problem(await client.request(method, path, headers=other, json=body), 404)
    mine = await client.get(url, headers=auth(settings, workspace, "admin"))
    assert mine.json()["description"] is None


async def test_subscriptions_need_the_admin_scope(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    reader = auth(settings, workspace, "insights:read")
    assert_problem(await client.get("/v1/subscriptions", headers=reader), 403)
    assert_problem(await client.post("/v1/subscriptions", json={"url": CLOSED_PORT}), 401)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "http://localhost:8080/hooks",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",
        "ftp://8.8.8.8/",
        "8.8.8.8/hooks",
        "http:///no-host",
        "http://8.8.8.8:99999/",
        "http://[::1/",
    ],
)
async def test_unsafe_or_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        await check_url(url, allow_private=False)


async def test_public_addresses_pass_and_private_ones_only_when_allowed() -> None:
    assert [str(a) for a in await check_url("https://8.8.8.8/x", allow_private=False)] == [
        "8.8.8.8"
    ]
    assert await check_url("http://[2606:4700:4700::1111]:8443/", allow_private=False)
    assert await check_url("http://localhost:9/", allow_private=True)


async def test_private_urls_are_refused_at_create_and_patch_as_problem_details(
    strict_client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    for url in ("http://127.0.0.1:9/", "http://10.0.0.1/", "http://localhost/hooks"):
        answer = await strict_client.post("/v1/subscriptions", headers=admin, json={"url": url})
        assert "non-public" in assert_problem(answer, 422)["detail"]
    bad_scheme = await strict_client.post(
        "/v1/subscriptions", headers=admin, json={"url": "file:///etc/passwd"}
    )
    assert "http or https" in assert_problem(bad_scheme, 422)["detail"]
    public = await subscribe(strict_client, admin, "https://8.8.8.8/hooks")
    moved = await strict_client.patch(
        f"/v1/subscriptions/{public['id']}", headers=admin, json={"url": "http://[::1]/"}
    )
    assert_problem(moved, 422)
    kept = await strict_client.get(f"/v1/subscriptions/{public['id']}", headers=admin)
    assert kept.json()["url"] == "https://8.8.8.8/hooks"


async def test_bad_bodies_are_refused(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    for body in (
        {"url": CLOSED_PORT, "event_types": ["prodops.feedback.received.v1"]},
        {"url": CLOSED_PORT, "secret": "whsec_mine"},
        {"event_types": [READINESS]},
        {"url": CLOSED_PORT, "description": "x" * 501},
        {"url": ""},
    ):
        answer = await client.post("/v1/subscriptions", headers=admin, json=body)
        assert assert_problem(answer, 422)["errors"], body
    text = await client.post(
        "/v1/subscriptions", headers={**admin, "content-type": "text/plain"}, content=b"url"
    )
    assert_problem(text, 415)
    assert_problem(await client.get("/v1/subscriptions?cursor=bogus", headers=admin), 400)
    created = await subscribe(client, admin, CLOSED_PORT)
    deliveries = f"/v1/subscriptions/{created['id']}/deliveries"
    assert_problem(await client.get(f"{deliveries}?status=lost", headers=admin), 422)
    assert_problem(await client.get("/v1/subscriptions/not-a-uuid", headers=admin), 422)


async def test_subscriptions_are_listed_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    ids = [(await subscribe(client, admin, CLOSED_PORT))["id"] for _ in range(3)]
    first = (await client.get("/v1/subscriptions?limit=2", headers=admin)).json()
    cursor = first["next_cursor"]
    rest = (await client.get(f"/v1/subscriptions?limit=2&cursor={cursor}", headers=admin)).json()
    assert [s["id"] for s in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None


async def test_ping_arrives_signed_and_is_recorded_as_a_delivery(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver:
        created = await subscribe(client, admin, receiver.url)
        answer = await client.post(f"/v1/subscriptions/{created['id']}/ping", headers=admin)
        assert answer.status_code == 200, answer.text
        ping = answer.json()
        assert (ping["ok"], ping["status_code"], ping["error"]) == (True, 200, None)
        [request] = receiver.requests
    receiver.verify(created["secret"], request)
    with pytest.raises(SignatureError):
        receiver.verify("whsec_" + "A" * 32, request)
    body = request.json()
    assert (request.method, request.path) == ("POST", "/hooks")
    assert request.headers["content-type"] == "application/json"
    assert (body["type"], body["workspace"]) == ("prodops.webhook.ping.v1", workspace)
    assert request.webhook_id == body["id"]
    listed = await client.get(f"/v1/subscriptions/{created['id']}/deliveries", headers=admin)
    [delivery] = listed.json()["items"]
    assert (delivery["id"], delivery["event_id"]) == (ping["delivery_id"], body["id"])
    assert (delivery["status"], delivery["next_attempt_at"]) == ("delivered", None)
    assert [a["status_code"] for a in delivery["attempts"]] == [200]


async def test_failed_pings_are_answered_and_recorded_as_failed(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver:
        receiver.respond_with(500)
        erring = await subscribe(client, admin, receiver.url)
        answer = await client.post(f"/v1/subscriptions/{erring['id']}/ping", headers=admin)
    assert (answer.json()["ok"], answer.json()["status_code"]) == (False, 500)
    assert answer.json()["error"] == "HTTP 500"
    closed = await subscribe(client, admin, CLOSED_PORT)
    refused = (await client.post(f"/v1/subscriptions/{closed['id']}/ping", headers=admin)).json()
    assert (refused["ok"], refused["status_code"]) == (False, None)
    assert refused["error"]
    listed = await client.get(
        f"/v1/subscriptions/{closed['id']}/deliveries?status=failed", headers=admin
    )
    [failed] = listed.json()["items"]
    assert failed["last_error"] == refused["error"]
    assert [a["error"] for a in failed["attempts"]] == [refused["error"]]


async def test_ping_to_an_address_that_became_private_is_refused_at_send_time(
    client: httpx.AsyncClient, strict_client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver:
        # Stored while private URLs were allowed: what a DNS rebinding would look like later.
        created = await subscribe(client, admin, receiver.url)
        url = f"/v1/subscriptions/{created['id']}/ping"
        ping = (await strict_client.post(url, headers=admin)).json()
        assert receiver.requests == []
    assert (ping["ok"], ping["status_code"]) == (False, None)
    assert ping["error"].startswith("refused: ")


async def test_rotated_secret_signs_from_then_on(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    async with webhook_receiver() as receiver:
        created = await subscribe(client, admin, receiver.url)
        rotated = await client.post(
            f"/v1/subscriptions/{created['id']}/rotate-secret", headers=admin
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_")
        assert new_secret != created["secret"]
        await client.post(f"/v1/subscriptions/{created['id']}/ping", headers=admin)
        [request] = await receiver.wait_for(1)
    receiver.verify(new_secret, request)
    with pytest.raises(SignatureError):
        receiver.verify(created["secret"], request)


def test_retry_delay_doubles_from_the_base_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    for failures in range(1, 30):
        ceiling = min(3600.0, 10.0 * 2 ** (failures - 1))
        delays = {retry_delay(failures, base=10.0, cap=3600.0, rng=rng) for _ in range(20)}
        assert all(10.0 <= d <= ceiling for d in delays), failures
        assert len(delays) > 1 or ceiling == 10.0


def test_a_retry_horizon_under_a_day_is_refused_outside_tests(settings: Settings) -> None:
    values = {**settings.model_dump(), "outbound_retry_horizon_hours": 1.0}
    assert Settings.model_validate(values).outbound_retry_horizon_hours == 1.0
    with pytest.raises(ValidationError, match="at least 24"):
        Settings.model_validate({**values, "env": "development"})
    assert Settings.model_fields["outbound_retry_horizon_hours"].default >= 24


def test_subscribable_types_are_the_signal_events() -> None:
    assert EVENT_TYPES == (READINESS, ALIGNMENT)
