"""A webhook pipeline of its own for tests (a toy vendor, a normaliser the test controls), and
the table of real vendors that `tests/shared/test_vendor_contract.py` holds to one contract."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from feedback.webhooks import freshdesk, front, generic, helpscout, intercom, zendesk
from prodops.http.auth import install_auth
from prodops.http.limits import BodyLimitMiddleware
from prodops.http.problems import install_problem_handlers
from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import WebhookEndpoint, webhook_routers
from prodops.webhooks.intake import Delivery, Intake
from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError, Provider
from prodops.webhooks.sources import sources_router
from prodops.webhooks.standard import SignatureError
from roadmap.webhooks import github, gitlab, jira, linear
from support import register_source


class Signed:
    """A vendor that signs the body with hex HMAC-SHA256 in `x-signature`."""

    name = "signed"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        offered = webhook.headers.get("x-signature", "")
        for secret in secrets:
            expected = hmac.new(secret.encode(), webhook.body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, offered):
                return
        raise SignatureError("no signature matches")

    def identify(self, webhook: InboundWebhook) -> Identity:
        try:
            body = orjson.loads(webhook.body)
            return Identity(str(body["id"]), str(body["type"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise MalformedWebhookError("body needs an id and a type") from exc

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        if webhook.headers.get("x-ping"):
            return JSONResponse({"pong": True})
        return None


# The table a recording Mapper writes to (in the feedback schema the kit's pool uses).
MAPPED = """
CREATE TABLE IF NOT EXISTS feedback.webhook_kit_mapped (id uuid PRIMARY KEY);
GRANT INSERT, SELECT ON feedback.webhook_kit_mapped TO PUBLIC
"""


@dataclass
class Mapper:
    """A normaliser the test controls."""

    seen: list[Delivery] = field(default_factory=list)
    broken: bool = False
    # Write each delivery's id to MAPPED, in the normaliser's transaction.
    record: bool = False

    async def __call__(self, conn: Connection, deliveries: Sequence[Delivery]) -> list[bool]:
        return [await self.one(conn, delivery) for delivery in deliveries]

    async def one(self, conn: Connection, delivery: Delivery) -> bool:
        """Map one delivery: fail it when broken or poisoned, ignore it when `unknown`."""
        if self.record:
            await conn.execute("INSERT INTO webhook_kit_mapped (id) VALUES ($1)", delivery.id)
        if self.broken or orjson.loads(delivery.body)["type"] == "poison":
            raise ValueError("cannot map this payload")
        self.seen.append(delivery)
        return bool(orjson.loads(delivery.body)["type"] != "unknown")


def signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Signature": signature, "Content-Type": "application/json"}


@asynccontextmanager
async def webhook_app(settings: Settings, pool: Pool, mapper: Mapper) -> AsyncIterator[FastAPI]:
    """An app of just the webhook pipeline, its writer and normaliser running."""
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, settings)
    app.state.pool, app.state.settings = pool, settings
    app.include_router(sources_router(providers={"signed"}))
    intake = Intake(mapper)
    for router in webhook_routers(WebhookEndpoint({"signed": Signed()}, intake)):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, limit=4096)
    app.state.intake = intake
    async with intake_running(intake, pool, settings):
        yield app


@asynccontextmanager
async def intake_running(intake: Intake, pool: Pool, settings: Settings) -> AsyncIterator[None]:
    """The intake's writer and normaliser, running for the block (a service's lifespan does it)."""
    loops = [asyncio.create_task(loop) for _, loop in intake.loops(pool, settings)]
    try:
        yield
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


async def register(client: httpx.AsyncClient, settings: Settings, workspace: str) -> dict[str, Any]:
    source: dict[str, Any] = await register_source(
        client, settings, workspace, "signed", "Support desk"
    )
    return source


WAIT = {"Prefer": "wait=10"}


async def settled(client: httpx.AsyncClient, admin: dict[str, str], delivery_id: str) -> Any:
    """The delivery once normalised in the background."""
    for _ in range(200):
        view = (await client.get(f"/v1/deliveries/{delivery_id}", headers=admin)).json()
        if view["status"] != "received":
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"delivery {delivery_id} was never normalised")


async def deliveries(pool: Pool, workspace: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM webhook_delivery WHERE workspace = $1", workspace
    )
    return count


def assert_only_the_signed_body_verifies(
    verify: Callable[[InboundWebhook], None],
    signed: Callable[..., InboundWebhook],
    body: bytes,
    tamper: tuple[bytes, bytes],
) -> None:
    """`signed(body)` verifies; its body tampered with, or `signed(body, secret=…)`, do not."""
    verify(signed(body))
    original = signed(body)
    with pytest.raises(SignatureError):
        verify(InboundWebhook(original.headers, original.body.replace(*tamper)))
    with pytest.raises(SignatureError):
        verify(signed(body, secret="not-the-secret"))


def _fixture(vendor: str, name: str) -> bytes:
    return (Path(__file__).parent / "fixtures" / "webhooks" / vendor / name).read_bytes()


NOT_JSON = (b"not json", b"[1, 2]")
NOT_AN_OBJECT = (b"<xml/>", b"[]", b"null")
VENDORS: dict[str, Provider] = {
    m.PROVIDER.name: m.PROVIDER
    for m in (github, gitlab, jira, linear, freshdesk, front, generic, helpscout, intercom, zendesk)
}
# The headers identify() and handshake() read, where a vendor has them; neither reads signatures.
ROUTING = {
    "github": {"x-github-delivery": "72d3162e-cc78-11e3-81ab", "x-github-event": "issues"},
    "gitlab": {"x-gitlab-event": "Issue Hook"},
    "linear": {"linear-event": "Issue"},
    "freshdesk": {"content-type": "application/json"},
    "generic": {"webhook-id": "msg_2b3c"},
    "helpscout": {"x-helpscout-event": "convo.created"},
}
# Bodies that are no event of the vendor.
MALFORMED: dict[str, tuple[bytes, ...]] = {
    "gitlab": NOT_AN_OBJECT,
    "helpscout": NOT_AN_OBJECT,
    "jira": (*NOT_JSON, b'{"issue": {}}'),
    "linear": (b"not json", b'["Issue"]', b'{"type": "Issue"}'),
    "freshdesk": (*NOT_JSON, b'"ticket"'),
    "front": (*NOT_JSON, b'{"id": "evt_1"}'),
    "generic": (b"{not json", b"[]", b'{"data": {}}', b'{"type": 3}'),
    "intercom": (*NOT_JSON, b'{"id": "notif_1"}'),
    "zendesk": (*NOT_JSON, b'"text"'),
}
# Ordinary deliveries, which are no setup handshake.
ORDINARY: dict[str, tuple[bytes, ...]] = {
    "github": (_fixture("github", "issues.opened.json"),),
    "gitlab": (_fixture("gitlab", "issue.json"),),
    "jira": (b"{}",),
    "linear": (b"{}",),
    "freshdesk": (_fixture("freshdesk", "zulip.ticket_created.json"),),
    "front": (_fixture("front", "zulip.conversation_tagged.json"),),
    "generic": (b'{"type": "ticket.upserted", "data": {"id": "T-1"}}',),
    "helpscout": (_fixture("helpscout", "DERIVED.helpscout-api-php.conversation_v2.json"),),
    "intercom": (_fixture("intercom", "zulip.conversation_priority_updated.json"), b"not json"),
    "zendesk": (_fixture("zendesk", "dust.ticket_created.example.json"),),
}


def vendor_webhook(vendor: str, body: bytes) -> InboundWebhook:
    """A delivery of `body` with the routing headers `vendor` sends."""
    return InboundWebhook(ROUTING.get(vendor, {}), body)
