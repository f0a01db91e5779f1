"""Zendesk: event-subscription webhooks (`zen:event-type:ticket.*`) and legacy trigger webhooks.

Zendesk signs base64 HMAC-SHA256 over the signature timestamp header followed by the raw body.
An event-subscription delivery carries its own `id` and a full ticket snapshot in `detail`; a
trigger webhook's body is whatever JSON the admin's template renders, so it is identified by the
body hash and mapped best-effort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi.responses import Response

from feedback.domain import TicketSnapshot
from feedback.webhooks import signing_headers, vendor_tags
from prodops.contract import Customer, Priority
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    Provider,
    base64_hmac,
    body_hash,
    json_object,
    matches_one,
    text_of,
)
from prodops.webhooks.standard import SignatureError

SIGNATURE = "x-zendesk-webhook-signature"
TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
TRIGGER = "trigger"
_EVENT_PREFIX = "zen:event-type:"
_TICKET_PREFIX = "zen:event-type:ticket."

Status = Literal["open", "archived"]
# DELETED and SCRUBBED say nothing about whether the feedback is still open: left unknown.
_STATUSES: dict[str, Status] = {
    "NEW": "open",
    "OPEN": "open",
    "PENDING": "open",
    "HOLD": "open",
    "SOLVED": "archived",
    "CLOSED": "archived",
    "ARCHIVED": "archived",
}
_PRIORITIES: dict[str, Priority] = {
    "LOW": "low",
    "NORMAL": "normal",
    "HIGH": "high",
    "URGENT": "urgent",
}


class ZendeskProvider:
    """Zendesk's scheme: timestamp + body signed; the event `id`, else the body hash, as key."""

    name = "zendesk"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless one secret signed this timestamp and body, in time."""
        signature, stamp = signing_headers(webhook, "Zendesk", SIGNATURE, TIMESTAMP)
        if abs(now - _signed_at(stamp)) > tolerance:
            raise SignatureError("Zendesk signature timestamp is outside the tolerance")
        signed = stamp.encode() + webhook.body
        if not matches_one(signature, (base64_hmac(s, signed) for s in secrets)):
            raise SignatureError("no Zendesk signature matches")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The event's `id` and `type`; a trigger webhook: the body hash and `trigger`."""
        body = json_object(webhook.body)
        event_type = body.get("type")
        if isinstance(event_type, str) and event_type.startswith(_EVENT_PREFIX):
            key = body.get("id")
            if not isinstance(key, str) or not key:
                raise MalformedWebhookError("Zendesk event without an id")
            return Identity(key, event_type)
        # A trigger body is the admin's template: an `id` (or `type`) there is the ticket's own,
        # the same on every delivery about that ticket, so only the body hash is a delivery key.
        return Identity(body_hash(webhook), TRIGGER)

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """Zendesk has no setup handshake."""
        return None


PROVIDER: Provider = ZendeskProvider()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:
    """The ticket state one Zendesk delivery tells, or None for a non-ticket event."""
    if event_type == TRIGGER:
        return _trigger_snapshot(_mapping(payload, "body"))
    if not event_type.startswith(_TICKET_PREFIX):
        return None
    body = _mapping(payload, "body")
    fields = _detail_fields(_mapping(body.get("detail"), "detail"))
    event = body.get("event")
    if isinstance(event, Mapping):
        fields.update(_event_fields(event_type.removeprefix(_TICKET_PREFIX), event))
    return TicketSnapshot(**fields)


def _detail_fields(detail: Mapping[str, Any]) -> dict[str, Any]:
    ticket_id = text_of(detail.get("id"))
    if ticket_id is None:
        raise ValueError("Zendesk ticket event without detail.id")
    requester = text_of(detail.get("requester_id"))
    tags = detail.get("tags")
    return {
        "external_id": ticket_id,
        "title": text_of(detail.get("subject")),
        "body": text_of(detail.get("description")),
        "url": text_of(detail.get("url")),
        "status": _STATUSES.get(_upper(detail.get("status"))),
        "priority": _PRIORITIES.get(_upper(detail.get("priority"))),
        "tags": vendor_tags(tags) if isinstance(tags, list) else None,
        "customer": Customer(external_id=requester) if requester else None,
        "account_external_id": _organization(detail.get("organization_id")),
        "created_at": _moment(detail.get("created_at")),
    }


def _event_fields(kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """What the delta `event` of a change adds to the snapshot in `detail`."""
    if kind == "status_changed" and _upper(event.get("current")) in _STATUSES:
        return {"status": _STATUSES[_upper(event.get("current"))]}
    if kind == "priority_changed" and _upper(event.get("current")) in _PRIORITIES:
        return {"priority": _PRIORITIES[_upper(event.get("current"))]}
    if kind == "tags_changed":
        added, removed = event.get("tags_added"), event.get("tags_removed")
        return {
            "tags_added": vendor_tags(added) if isinstance(added, list) else [],
            "tags_removed": vendor_tags(removed) if isinstance(removed, list) else [],
        }
    return {}


def _trigger_snapshot(body: Mapping[str, Any]) -> TicketSnapshot:
    """Best effort over an admin-written template: flat, or nested under `ticket`."""
    nested = body.get("ticket")
    ticket: Mapping[str, Any] = nested if isinstance(nested, Mapping) else body
    ticket_id = text_of(ticket.get("ticket_id")) or text_of(ticket.get("id"))
    title = text_of(ticket.get("title")) or text_of(ticket.get("subject"))
    if ticket_id is None or title is None:
        raise ValueError("Zendesk trigger body needs an id/ticket_id and a title/subject key")
    return TicketSnapshot(
        external_id=ticket_id,
        title=title,
        body=text_of(ticket.get("description")),
        url=text_of(ticket.get("url")) or text_of(ticket.get("link")),
        status=_STATUSES.get(_upper(ticket.get("status"))),
        priority=_PRIORITIES.get(_upper(ticket.get("priority"))),
        tags=_trigger_tags(ticket.get("tags")),
        customer=_trigger_customer(ticket),
        account_external_id=_organization(ticket.get("organization_id")),
    )


def _trigger_tags(value: object) -> list[str] | None:
    # The `{{ticket.tags}}` placeholder renders the tags as one space-separated string.
    if isinstance(value, str):
        return vendor_tags(value.split())
    return vendor_tags(value) if isinstance(value, list) else None


def _trigger_customer(ticket: Mapping[str, Any]) -> Customer | None:
    requester = ticket.get("requester")
    if isinstance(requester, Mapping):
        found = {k: text_of(requester.get(k)) for k in ("id", "email", "name")}
    else:
        found = {k: text_of(ticket.get(f"requester_{k}")) for k in ("id", "email", "name")}
    if not any(found.values()):
        return None
    return Customer(external_id=found["id"], email=found["email"], name=found["name"])


def _signed_at(stamp: str) -> float:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise SignatureError("Zendesk signature timestamp is not ISO 8601") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        # ValueError, not TypeError: the mapper contract is "ValueError = stored as failed".
        raise ValueError(f"Zendesk {what} is not a JSON object")  # noqa: TRY004
    return value


def _upper(value: object) -> str:
    return value.upper() if isinstance(value, str) else ""


def _organization(value: object) -> str | None:
    # Zendesk renders "no organization" as null in ticket events but as "0" in user events.
    found = text_of(value)
    return None if found == "0" else found


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
