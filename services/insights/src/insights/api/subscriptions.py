"""`/v1/subscriptions`: outbound webhook subscriptions, their dispatches, pings and retries.

A subscription's secret is shown once, when it is created or rotated; lists never show it. The
API's words for a dispatch are its own (see the deliveries routes); the code says dispatch.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from insights.outbound import sql
from insights.outbound.dispatcher import PING_TYPE, EventType, record_attempt
from insights.outbound.http import (
    AttemptResult,
    UnsafeURLError,
    check_url,
    http_client,
    send_webhook,
)
from prodops.contract import Event, new_id, utcnow
from prodops.http.auth import Admin, Principal
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, require_json
from prodops.http.routes import newest_first
from prodops.runtime.db import Connection, request_transaction
from prodops.runtime.settings import Settings
from prodops.webhooks.sources import SecretBox
from prodops.webhooks.standard import new_secret

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"], responses=PROBLEM_RESPONSES)
_JSON = [Depends(require_json)]

DispatchStatus = Literal["pending", "delivered", "failed"]
EventTypes = Annotated[list[EventType], AfterValidator(lambda types: sorted(set(types)))]
Url = Annotated[str, Field(min_length=1, max_length=2000, description="an http or https URL")]


class SubscriptionIn(BaseModel):
    """A subscription to create."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes = Field(
        default_factory=list, description="the signal types to send; empty means every one"
    )
    description: str | None = Field(default=None, max_length=500)


class SubscriptionPatch(BaseModel):
    """The fields to change; those not sent stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=500)


class Subscription(BaseModel):
    """A subscription (never its secret)."""

    id: UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription):
    """A subscription as created or rotated: the only time its `whsec_` secret is shown."""

    secret: str


class Attempt(BaseModel):
    """One try to send a delivery, and what the receiver answered."""

    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class PingResult(Attempt):
    """The outcome of a test ping, recorded as a delivery of its own."""

    delivery_id: UUID
    ok: bool


class OutboundDelivery(BaseModel):
    """One event for one subscription, with every attempt to send it."""

    id: UUID
    event_id: UUID
    event_type: str
    status: DispatchStatus
    next_attempt_at: datetime | None = Field(description="when it is tried next, while pending")
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    attempts: list[Attempt]


def _not_found(what: str = "subscription") -> ProblemError:
    return ProblemError(404, "Not Found", f"no such {what} in this workspace")


def _view(row: asyncpg.Record | None) -> Subscription:
    if row is None:
        raise _not_found()
    return Subscription(**{name: row[name] for name in Subscription.model_fields})


async def _checked(request: Request, url: str) -> str:
    settings: Settings = request.app.state.settings
    try:
        await check_url(url, allow_private=settings.outbound_allow_private_urls)
    except UnsafeURLError as exc:
        raise ProblemError(422, "Unprocessable Content", f"url: {exc}") from exc
    return url


async def _subscription(conn: Connection, subscription_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(sql.GET_SUBSCRIPTION, subscription_id)
    if row is None:
        raise _not_found()
    return row


def _dispatch(row: asyncpg.Record) -> OutboundDelivery:
    return OutboundDelivery(**dict(row.items()))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionWithSecret,
    dependencies=_JSON,
)
async def create_subscription(
    request: Request, response: Response, body: SubscriptionIn, principal: Admin
) -> SubscriptionWithSecret:
    """Subscribe a URL to signals; the answer carries, this once, the signing secret."""
    url = await _checked(request, body.url)
    secret = new_secret()
    sealed = SecretBox(request.app.state.settings).seal(secret)
    async with request_transaction(request, principal.workspace) as conn:
        row = await conn.fetchrow(
            sql.INSERT_SUBSCRIPTION,
            new_id(),
            principal.workspace,
            url,
            body.description,
            body.event_types,
            sealed,
        )
    subscription = _view(row)
    response.headers["Location"] = f"/v1/subscriptions/{subscription.id}"
    return SubscriptionWithSecret(**subscription.model_dump(), secret=secret)


@router.get("", response_model=Page[Subscription])
async def list_subscriptions(
    request: Request, principal: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[Subscription]:
    """The workspace's subscriptions, newest first."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await conn.fetch(sql.LIST_SUBSCRIPTIONS, *time_id_after(cursor), limit + 1)
    return newest_first([_view(r) for r in rows], limit)


@router.get("/{subscription_id}", response_model=Subscription)
async def get_subscription(
    request: Request, subscription_id: UUID, principal: Admin
) -> Subscription:
    """One subscription."""
    async with request_transaction(request, principal.workspace) as conn:
        return _view(await _subscription(conn, subscription_id))


@router.patch("/{subscription_id}", response_model=Subscription, dependencies=_JSON)
async def patch_subscription(
    request: Request, subscription_id: UUID, body: SubscriptionPatch, principal: Admin
) -> Subscription:
    """Change the URL, the event types or the description; pending deliveries follow the URL."""
    url = await _checked(request, body.url) if body.url is not None else None
    async with request_transaction(request, principal.workspace) as conn:
        row = await conn.fetchrow(
            sql.PATCH_SUBSCRIPTION,
            subscription_id,
            url,
            body.event_types,
            "description" in body.model_fields_set,
            body.description,
        )
    return _view(row)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(
    request: Request, subscription_id: UUID, principal: Admin
) -> Response:
    """Delete a subscription with its deliveries; nothing more is sent to it."""
    async with request_transaction(request, principal.workspace) as conn:
        result = await conn.execute(sql.DELETE_SUBSCRIPTION, subscription_id)
    if result.endswith(" 0"):
        raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{subscription_id}/enable", response_model=Subscription)
async def enable_subscription(
    request: Request, subscription_id: UUID, principal: Admin
) -> Subscription:
    """Enable a subscription again; the deliveries held while it was disabled go out now."""
    async with request_transaction(request, principal.workspace) as conn:
        subscription = _view(await conn.fetchrow(sql.ENABLE_SUBSCRIPTION, subscription_id))
        await conn.execute(sql.RESUME_HELD, subscription_id)
        await conn.execute(sql.WAKE_DISPATCHERS)
    return subscription


@router.post("/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret)
async def rotate_secret(
    request: Request, subscription_id: UUID, principal: Admin
) -> SubscriptionWithSecret:
    """Replace the signing secret; every message from now on is signed with the new one."""
    secret = new_secret()
    sealed = SecretBox(request.app.state.settings).seal(secret)
    async with request_transaction(request, principal.workspace) as conn:
        row = await conn.fetchrow(sql.ROTATE_SUBSCRIPTION, subscription_id, sealed)
    return SubscriptionWithSecret(**_view(row).model_dump(), secret=secret)


@router.post("/{subscription_id}/ping", response_model=PingResult)
async def ping_subscription(
    request: Request, subscription_id: UUID, principal: Admin
) -> PingResult:
    """Send one signed `prodops.webhook.ping.v1` now and answer how it went (also recorded)."""
    settings: Settings = request.app.state.settings
    async with request_transaction(request, principal.workspace) as conn:
        row = await _subscription(conn, subscription_id)
    event = _ping_event(principal, subscription_id)
    body = event.to_bytes()
    # Sent outside the transaction: a slow receiver must not hold a connection of the pool.
    async with http_client(settings) as client:
        result = await send_webhook(
            client,
            settings,
            url=row["url"],
            secret=SecretBox(settings).open(row["secret"]),
            message_id=event.id,
            body=body,
        )
    dispatch_id = await _record_ping(request, principal, subscription_id, event, result)
    return PingResult(**asdict(result), delivery_id=dispatch_id, ok=result.ok)


def _ping_event(principal: Principal, subscription_id: UUID) -> Event:
    return Event(
        id=new_id(),
        source="/prodops/insights",
        type=PING_TYPE,
        time=utcnow(),
        subject=str(subscription_id),
        workspace=principal.workspace,
        data={"subscription_id": str(subscription_id), "message": "a test ping from prodops"},
    )


async def _record_ping(
    request: Request,
    principal: Principal,
    subscription_id: UUID,
    event: Event,
    result: AttemptResult,
) -> UUID:
    dispatch_id = new_id()
    try:
        async with request_transaction(request, principal.workspace) as conn:
            await conn.execute(
                sql.INSERT_SETTLED_DISPATCH,
                dispatch_id,
                subscription_id,
                principal.workspace,
                event.id,
                event.type,
                event.to_bytes(),
                "delivered" if result.ok else "failed",
                utcnow() if result.ok else None,
                result.error,
            )
            await record_attempt(
                conn, dispatch_id=dispatch_id, workspace=principal.workspace, result=result
            )
    except asyncpg.ForeignKeyViolationError as exc:
        raise _not_found() from exc  # deleted while the ping was on its way
    return dispatch_id


# The API says "delivery" where the code says dispatch: its paths, `delivery_id`, the models'
# names and docstrings and these functions' names (the operation ids) are what clients build on.
@router.get("/{subscription_id}/deliveries", response_model=Page[OutboundDelivery])
async def list_deliveries(
    request: Request,
    subscription_id: UUID,
    *,
    principal: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: DispatchStatus | None = None,
) -> Page[OutboundDelivery]:
    """The subscription's deliveries, newest first, each with its attempts; `?status=failed`."""
    after = time_id_after(cursor)
    async with request_transaction(request, principal.workspace) as conn:
        await _subscription(conn, subscription_id)
        rows = await conn.fetch(sql.LIST_DISPATCHES, subscription_id, status, *after, limit + 1)
    return newest_first([_dispatch(r) for r in rows], limit)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OutboundDelivery,
)
async def retry_delivery(
    request: Request, subscription_id: UUID, delivery_id: UUID, principal: Admin
) -> OutboundDelivery:
    """Send a failed delivery again, with a fresh retry horizon (409 unless it failed)."""
    async with request_transaction(request, principal.workspace) as conn:
        await _subscription(conn, subscription_id)
        retried = await conn.fetchval(sql.RETRY_DISPATCH, delivery_id, subscription_id)
        row = await conn.fetchrow(sql.GET_DISPATCH, delivery_id, subscription_id)
        if row is None:
            raise _not_found("delivery")
        if retried is None:
            raise ProblemError(
                409,
                "Conflict",
                f"only a failed delivery can be retried; this one is {row['status']}",
            )
        await conn.execute(sql.WAKE_DISPATCHERS)
    return _dispatch(row)
