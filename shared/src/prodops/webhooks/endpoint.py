"""Inbound webhooks: verify as the vendor signs, store once, answer fast, normalise, replay.

`POST /webhooks/<provider>/<source_id>` follows design.md §4: the body limit answers 413 before
the body is read whole; a bad signature is 401 with nothing stored; the delivery is stored under a
unique (source, vendor delivery key), so a redelivery is answered 2xx and changes nothing; a 2xx
goes out only after the commit; a payload the mapper cannot handle is kept as `failed` with its
error (answered 2xx) and can be replayed after a fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from prodops.contract import new_id
from prodops.http.auth import Admin
from prodops.http.pagination import Cursor, Limit, Page, page_of, time_id_after, time_id_key
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, documented_problem
from prodops.runtime.db import Connection, Pool, request_transaction
from prodops.runtime.settings import Settings
from prodops.runtime.telemetry import WEBHOOKS_RECEIVED
from prodops.webhooks import body_codec
from prodops.webhooks.intake import Delivery, Intake, Normaliser
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    Provider,
    headers_of,
)
from prodops.webhooks.sources import WebhookSource, source_cache
from prodops.webhooks.standard import SignatureError
from prodops.webhooks.writer import NewDelivery

log = logging.getLogger(__name__)

__all__ = [
    "WebhookEndpoint",
    "purge_deliveries",
    "wait_preference",
    "webhook_routers",
]


_SETTLE = """
UPDATE webhook_delivery SET status = $2, error = $3, processed_at = now() WHERE id = $1
"""
_LIST = """
SELECT id, source_id, provider, delivery_key, event_type, received_at, status, error,
       processed_at
FROM webhook_delivery
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::timestamptz IS NULL OR (received_at, id) < ($2, $3::uuid))
ORDER BY received_at DESC, id DESC LIMIT $4
"""
_GET = "SELECT * FROM webhook_delivery WHERE id = $1"
_LOCK = "SELECT * FROM webhook_delivery WHERE id = $1 FOR UPDATE"
# Failed deliveries stay until someone fixes and replays them; the rest go after the retention,
# which is longer than any vendor retries (72 hours), so the dedup key outlives every retry.
_PURGE = """
DELETE FROM webhook_delivery
WHERE status IN ('processed', 'ignored') AND received_at < now() - $1::float8 * interval '1 hour'
"""

Status = Literal["received", "processed", "ignored", "failed"]
# Longer vendor delivery keys are stored as their hash (still stable across the vendor's retries).
_KEY_LENGTH = 500
# The longest `Prefer: wait=N` honoured: vendors give up after about 10 s.
_MAX_WAIT = 10.0


class DeliveryView(BaseModel):
    """A stored delivery and what became of it."""

    id: UUID
    source_id: UUID
    provider: str
    delivery_key: str
    event_type: str
    received_at: datetime
    status: Status
    error: str | None
    processed_at: datetime | None


class Accepted(BaseModel):
    """The answer to a vendor: stored (or already stored), and what became of it so far."""

    id: UUID | None = Field(description="the stored delivery; null for a redelivery")
    status: Literal["received", "processed", "ignored", "failed", "duplicate"] = Field(
        description="`received`: stored, to be normalised in the background; with "
        "`Prefer: wait=N`, what normalising it gave within N seconds; `duplicate`: stored before"
    )


async def _normalise(
    conn: Connection, normalise: Normaliser, delivery: Delivery, failed: str | None
) -> Status:
    """Normalise one delivery (a batch of one) in a savepoint; `failed`: its look-ups failed."""
    if failed is not None:
        await conn.execute(_SETTLE, delivery.id, "failed", failed)
        return "failed"
    try:
        async with conn.transaction():
            [handled] = await normalise(conn, [delivery])
    except Exception as exc:  # noqa: BLE001 - any mapper failure is kept with its error
        log.warning("delivery %s of %s failed to map: %r", delivery.id, delivery.provider, exc)
        await conn.execute(_SETTLE, delivery.id, "failed", f"{type(exc).__name__}: {exc}")
        return "failed"
    outcome: Status = "processed" if handled else "ignored"
    await conn.execute(_SETTLE, delivery.id, outcome, None)
    return outcome


async def purge_deliveries(pool: Pool, *, older_than_hours: float) -> int:
    """Delete settled deliveries older than the retention; returns how many went."""
    status: str = await pool.execute(_PURGE, older_than_hours)
    return int(status.rsplit(maxsplit=1)[-1])


_REPEATED_OR_HANDSHAKE: dict[str, Any] = {
    "description": "A redelivery (`duplicate`, changing nothing), or the answer to a vendor's "
    "setup request (a ping or a challenge, in the vendor's own shape)",
    "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {"type": "string"}}},
}


def _storable(identity: Identity) -> Identity:
    """The identity as the table can keep it; a too long or NUL-bearing key by its hash."""
    # PostgreSQL text holds no NUL, and a unique index no key over ~2.7 kB: both were a 500.
    if "\x00" in identity.event_type:
        raise MalformedWebhookError("the event type contains a NUL character")
    key = identity.delivery_key
    if len(key) > _KEY_LENGTH or "\x00" in key:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return Identity(key, identity.event_type)


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def wait_preference(prefer: str | None) -> float:
    """Seconds the caller asks to wait for the outcome (RFC 7240 `Prefer: wait=N`), capped."""
    if not prefer:
        return 0.0
    wait = 0.0
    for part in prefer.replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "respond-async":
            return 0.0
        if name.strip().lower() == "wait":
            # Whole seconds; anything else ("soon", "²", 5 000 digits) is no preference.
            with contextlib.suppress(ValueError):
                wait = float(int(value))
    return max(0.0, min(wait, _MAX_WAIT))


PreferHeader = Annotated[
    str | None,
    Header(
        description="`wait=N` (RFC 7240): answer with what normalising the delivery gave, "
        "waiting at most N seconds (up to 10); without it the answer comes once the delivery "
        "is stored, as `received`"
    ),
]


def webhook_routers(endpoint: WebhookEndpoint) -> list[APIRouter]:
    """The inbound webhook endpoint and `/v1/deliveries` (list, get, replay) for its providers."""
    inbound = APIRouter(tags=["webhooks"], responses=PROBLEM_RESPONSES)
    deliveries = APIRouter(prefix="/v1/deliveries", tags=["webhooks"], responses=PROBLEM_RESPONSES)

    @inbound.post(
        "/webhooks/{provider}/{source_id}",
        response_model=Accepted,
        status_code=202,
        response_description="Stored (and with `Prefer: wait`, normalised), after the commit",
        # 503: the process is stopping, or too many deliveries wait to be stored (Retry-After).
        responses={200: _REPEATED_OR_HANDSHAKE, 503: documented_problem(503)},
    )
    async def receive(
        request: Request,
        provider: str,
        source_id: str,
        prefer: PreferHeader = None,  # noqa: ARG001 - documented here, read by `answer`
    ) -> Response:
        """A vendor's delivery: verified, stored once, normalised; 2xx only after the commit."""
        # A service serves this route from WebhookFastPath, outside FastAPI's stack; this is the
        # same answer, for the document and for apps without the fast path.
        body = await request.body()
        headers = headers_of(request.scope["headers"])
        return await endpoint.answer(request.app, provider, source_id, headers, body)

    @deliveries.get("", response_model=Page[DeliveryView])
    async def list_deliveries(
        request: Request,
        principal: Admin,
        limit: Limit = 50,
        cursor: Cursor = None,
        status: Status | None = None,
    ) -> Page[DeliveryView]:
        """The workspace's deliveries, newest first; `?status=failed` for those to fix."""
        async with request_transaction(request, principal.workspace) as conn:
            rows = await conn.fetch(_LIST, status, *time_id_after(cursor), limit + 1)
        views = [_view(r) for r in rows]
        return page_of(views, limit, lambda d: time_id_key(d.received_at, d.id))

    @deliveries.get("/{delivery_id}", response_model=DeliveryView)
    async def get_delivery(request: Request, delivery_id: UUID, principal: Admin) -> DeliveryView:
        """One delivery and what became of it (`received` until it is normalised)."""
        async with request_transaction(request, principal.workspace) as conn:
            row = await conn.fetchrow(_GET, delivery_id)
        if row is None:
            raise ProblemError(404, "Not Found", "no such delivery in this workspace")
        return _view(row)

    @deliveries.post("/{delivery_id}/replay", response_model=DeliveryView)
    async def replay_delivery(
        request: Request, delivery_id: UUID, principal: Admin
    ) -> DeliveryView:
        """Normalise a stored delivery again (after a fix); its new status is answered."""
        async with request_transaction(request, principal.workspace) as conn:
            row = await conn.fetchrow(_GET, delivery_id)
        if row is None:
            raise ProblemError(404, "Not Found", "no such delivery in this workspace")
        delivery = Delivery(
            row["id"],
            row["workspace"],
            row["source_id"],
            row["provider"],
            row["event_type"],
            body_codec.decode(row["body_codec"], row["body"]),
            row["received_at"],
        )
        # Vendor look-ups first, with no transaction open.
        failed = await endpoint.intake.prepare(request.app.state.pool, [delivery])
        async with request_transaction(request, principal.workspace) as conn:
            if await conn.fetchrow(_LOCK, delivery_id) is None:
                raise ProblemError(404, "Not Found", "no such delivery in this workspace")
            await _normalise(conn, endpoint.intake.normalise, delivery, failed.get(delivery.id))
            row = await conn.fetchrow(_GET, delivery_id)
        assert row is not None  # locked FOR UPDATE above, in the same transaction
        return _view(row)

    return [inbound, deliveries]


@dataclass(frozen=True)
class WebhookEndpoint:
    """`POST /webhooks/{provider}/{source_id}`: verify, store once, answer after the commit."""

    providers: Mapping[str, Provider]
    intake: Intake

    async def answer(
        self,
        app: FastAPI,
        provider: str,
        source_id: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        """The answer to one delivery (`headers` with lower-case names); ProblemError if refused."""
        scheme = self.providers.get(provider)
        # A malformed source id is just another unknown source to the vendor: 404, not 422.
        source_uuid = _uuid_or_none(source_id)
        if scheme is None or source_uuid is None:
            raise ProblemError(404, "Not Found", "no such webhook source")
        webhook = InboundWebhook(headers, body)
        source = await _verified(app, scheme, provider, source_uuid, webhook)
        answer = scheme.handshake(webhook)
        if answer is not None:
            return answer
        try:
            identity = _storable(scheme.identify(webhook))
        except MalformedWebhookError as exc:
            raise ProblemError(400, "Bad Request", str(exc)) from exc
        delivery = NewDelivery(
            new_id(),
            source.workspace,
            source_uuid,
            provider,
            identity.delivery_key,
            identity.event_type,
            body,
        )
        outcome = "received" if await self.intake.store(delivery) else "duplicate"
        wait = wait_preference(headers.get("prefer"))
        if outcome == "received" and wait > 0:
            outcome = await self.intake.settled(app.state.pool, delivery.id, within=wait)
        WEBHOOKS_RECEIVED.labels(app.title, provider, outcome).inc()
        if outcome == "duplicate":
            return Response(_DUPLICATE, status_code=200, media_type="application/json")
        accepted = {"id": str(delivery.id), "status": outcome}
        return Response(orjson.dumps(accepted), status_code=202, media_type="application/json")


_DUPLICATE = orjson.dumps({"id": None, "status": "duplicate"})


async def _verified(
    app: FastAPI, scheme: Provider, provider: str, source_id: UUID, webhook: InboundWebhook
) -> WebhookSource:
    """The request's source, once its signature holds: 404 or 401 otherwise."""
    pool: Pool = app.state.pool
    settings: Settings = app.state.settings
    sources = source_cache(app)
    source = await sources.get(pool, provider=provider, source_id=source_id)
    if source is None:
        raise ProblemError(404, "Not Found", "no such webhook source")
    tolerance = settings.webhook_timestamp_tolerance_seconds
    try:
        try:
            scheme.verify(webhook, source.secrets, now=time.time(), tolerance=tolerance)
        except SignatureError:
            # The cached secrets may predate a rotation: read them again before refusing.
            source = await sources.get(pool, provider=provider, source_id=source_id, fresh=True)
            if source is None:
                raise ProblemError(404, "Not Found", "no such webhook source") from None
            scheme.verify(webhook, source.secrets, now=time.time(), tolerance=tolerance)
    except SignatureError as exc:
        WEBHOOKS_RECEIVED.labels(app.title, provider, "unauthorized").inc()
        raise ProblemError(401, "Unauthorized", f"webhook signature: {exc}") from exc
    return source


def _view(row: Any) -> DeliveryView:
    return DeliveryView(**{k: v for k, v in row.items() if k in DeliveryView.model_fields})
