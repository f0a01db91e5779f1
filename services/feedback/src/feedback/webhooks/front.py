"""Front: application webhooks carrying Front events (`tag`, `archive`, `inbound`, …).

`X-Front-Signature` is the base64 HMAC-SHA256 of `"<X-Front-Request-Timestamp>:" + raw body`,
keyed with the app's signing secret; the timestamp is in milliseconds. Saving the webhook sends a
signed request with an `X-Front-Challenge` header, which is echoed. An application webhook wraps
the event as `{type, authorization, payload}`; a bare event body (as rule webhooks and the
published samples have it) is read too. The delivery key is the event `id` (`evt_…`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi.responses import PlainTextResponse, Response

from feedback.domain import TicketSnapshot
from feedback.webhooks import signing_headers, vendor_tags
from prodops.contract import Customer
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

SIGNATURE = "x-front-signature"
TIMESTAMP = "x-front-request-timestamp"
CHALLENGE = "x-front-challenge"
_TITLE_LENGTH = 200
# Far beyond any real timestamp, yet exact as a float.
_LATEST_MS = 2**53
Status = Literal["open", "archived"]
# The event types that change what feedback keeps about a conversation; others are ignored.
_TYPE_STATUS: dict[str, Status | None] = {
    "tag": None,
    "untag": None,
    "inbound": None,
    "archive": "archived",
    "reopen": "open",
    "unarchive": "open",
}
# `deleted` (trashed) says nothing about the feedback itself: left unknown.
_STATUSES: dict[str, Status] = {
    "archived": "archived",
    "unassigned": "open",
    "assigned": "open",
    "open": "open",
}


class FrontProvider:
    """Front's scheme: `timestamp:body` signed, `evt_…` ids, a challenge echoed on setup."""

    name = "front"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless one secret signed this timestamp and body, in time."""
        signature, stamp = signing_headers(webhook, "Front", SIGNATURE, TIMESTAMP)
        try:
            sent_ms = int(stamp)
        except ValueError as exc:
            raise SignatureError("X-Front-Request-Timestamp is not milliseconds") from exc
        # The bound first: a caller's integer may be too large for a float (an OverflowError).
        if abs(sent_ms) > _LATEST_MS or abs(now - sent_ms / 1000) > tolerance:
            raise SignatureError("X-Front-Request-Timestamp is outside the tolerance")
        signed = f"{stamp}:".encode() + webhook.body
        if not matches_one(signature, (base64_hmac(s, signed) for s in secrets)):
            raise SignatureError("no X-Front-Signature matches")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The event `id` (else the body hash) and its `type`."""
        body = json_object(webhook.body)
        event = _event(body)
        event_type = event.get("type") or body.get("type")
        if not isinstance(event_type, str):
            raise MalformedWebhookError("Front body without an event type")
        key = event.get("id")
        return Identity(key if isinstance(key, str) and key else body_hash(webhook), event_type)

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        """Echo the challenge Front sends (signed) when the webhook is saved."""
        challenge = webhook.headers.get(CHALLENGE)
        if challenge is None:
            return None
        return PlainTextResponse(challenge, status_code=200)


PROVIDER: Provider = FrontProvider()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:
    """The conversation one Front event tells about, or None for other event types."""
    if event_type not in _TYPE_STATUS:
        return None
    if not isinstance(payload, Mapping):
        raise ValueError("Front body is not a JSON object")  # noqa: TRY004 - mapper contract
    event = _event(payload)
    conversation = event.get("conversation")
    if not isinstance(conversation, Mapping):
        raise ValueError("Front event without a conversation")  # noqa: TRY004
    conversation_id = text_of(conversation.get("id"))
    if conversation_id is None:
        raise ValueError("Front conversation without an id")
    target = _target(event)
    tags = conversation.get("tags")
    return TicketSnapshot(
        external_id=conversation_id,
        title=_title(conversation, target if event_type == "inbound" else {}),
        status=_TYPE_STATUS[event_type] or _STATUSES.get(str(conversation.get("status"))),
        tags=vendor_tags(_tag_names(tags)) if isinstance(tags, list) else None,
        tags_added=_target_tag(target) if event_type == "tag" else [],
        tags_removed=_target_tag(target) if event_type == "untag" else [],
        customer=_customer(conversation.get("recipient")),
        created_at=_moment(conversation.get("created_at")),
    )


def _event(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Front event: an application webhook wraps it as `payload`; else the body is it."""
    wrapped = body.get("payload")
    return wrapped if isinstance(wrapped, Mapping) else body


def _target(event: Mapping[str, Any]) -> Mapping[str, Any]:
    target = event.get("target")
    data = target.get("data") if isinstance(target, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _target_tag(target: Mapping[str, Any]) -> list[str]:
    # A `tag`/`untag` event names the one tag in `target.data` (the conversation lists them all).
    return vendor_tags([target.get("name")])


def _title(conversation: Mapping[str, Any], message: Mapping[str, Any]) -> str | None:
    # Chat channels have no subject: an inbound message's blurb stands in for it.
    found = text_of(conversation.get("subject")) or text_of(message.get("blurb"))
    return found[:_TITLE_LENGTH] if found else None


def _tag_names(tags: list[object]) -> list[object]:
    return [t.get("name") if isinstance(t, Mapping) else t for t in tags]


def _customer(recipient: object) -> Customer | None:
    """The conversation's main contact: its id from the contact link, its handle if an email."""
    if not isinstance(recipient, Mapping):
        return None
    handle = text_of(recipient.get("handle"))
    links = recipient.get("_links")
    related = links.get("related") if isinstance(links, Mapping) else None
    contact = text_of(related.get("contact")) if isinstance(related, Mapping) else None
    # Front links the contact (`…/contacts/crd_…`) but sends no id field for it.
    contact_id = contact.rstrip("/").rsplit("/", 1)[-1] if contact else None
    email = handle if handle and "@" in handle else None
    if contact_id is None and email is None:
        return None
    return Customer(external_id=contact_id, email=email)


def _moment(value: object) -> datetime | None:
    # Front times are seconds since the epoch, with a fraction.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)
