"""Help Scout mailbox webhooks: conversations (`convo.*`) and satisfaction ratings.

`X-HelpScout-Signature` is the base64 HMAC-SHA1 of the raw body, keyed with the secret exactly as
typed into Help Scout. The event is the `X-HelpScout-Event` header; `helpscout.test` is the setup
ping. Both the Mailbox API 2.0 conversation (`primaryCustomer`, `first`/`last`, tag objects,
`userUpdatedAt`) and the older webhook shape (`customer`, `firstName`/`lastName`, tag strings,
`userModifiedAt`) are read. A rating names its conversation as `ticketId` (or `conversationId`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response

from feedback.domain import TicketSnapshot, normalise_tags
from prodops.contract import Customer
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    base64_hmac,
    body_hash,
    json_object,
    matches_one,
    required_header,
    signature_header,
    text_of,
)
from prodops.webhooks.standard import SignatureError

SIGNATURE_HEADER = "x-helpscout-signature"
EVENT_HEADER = "x-helpscout-event"
TEST_EVENT = "helpscout.test"
RATING_EVENT = "satisfaction.ratings"
_STATUSES: dict[str, Literal["open", "archived"]] = {
    "active": "open",
    "pending": "open",
    "closed": "archived",
    "spam": "archived",
}
_RATINGS = {"great": 1.0, "okay": 0.0, "not good": -1.0, "bad": -1.0}
# The first present one makes the dedup key; user-made changes first, as webhooks.md says.
_STAMPS = ("userUpdatedAt", "updatedAt", "userModifiedAt", "modifiedAt")


def sign(secret: str, body: bytes) -> str:
    """The `X-HelpScout-Signature` Help Scout sends for `body`."""
    return base64_hmac(secret, body, "sha1")


class HelpScout:
    """Help Scout: HMAC-SHA1 of the body, event + conversation + update time keys, a test ping."""

    name = "helpscout"

    def verify(self, webhook: InboundWebhook, secrets: Sequence[str], **_clock: float) -> None:
        """Raise SignatureError unless `X-HelpScout-Signature` is made with one of `secrets`."""
        offered = signature_header(webhook, SIGNATURE_HEADER)
        if not matches_one(offered, (sign(secret, webhook.body) for secret in secrets)):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """`<event>:<id>:<update time>`, stable across retries; the body hash when either lacks."""
        event = required_header(webhook, EVENT_HEADER)
        body = json_object(webhook.body)
        # Not the body hash first: retries re-render fields such as `customerWaitingSince.friendly`.
        ident = text_of(body.get("id"))
        stamp = next((v for v in (text_of(body.get(k)) for k in _STAMPS) if v), None)
        if ident is None or stamp is None:
            return Identity(body_hash(webhook), event)
        return Identity(f"{event}:{ident}:{stamp}", event)

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        """Answer the `helpscout.test` ping Help Scout sends when the webhook is saved."""
        if webhook.headers.get(EVENT_HEADER, "").strip() == TEST_EVENT:
            return JSONResponse({"status": "ok"})
        return None


PROVIDER = HelpScout()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:
    """The conversation of a `convo.*` event or the sentiment of a rating; None for the rest."""
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")  # noqa: TRY004
    if event_type == RATING_EVENT:
        return _rating(payload)
    if not event_type.startswith("convo."):
        return None
    conversation_id = _required_id(payload.get("id"), "conversation has no id")
    if event_type == "convo.deleted":
        # A deleted conversation may arrive as little more than its id.
        return TicketSnapshot(external_id=conversation_id, status="archived")
    status = text_of(payload.get("status"))
    return TicketSnapshot(
        external_id=conversation_id,
        title=text_of(payload.get("subject")),
        body=text_of(payload.get("preview")),
        url=_url(payload, conversation_id),
        status=None if status is None else _STATUSES.get(status.lower()),
        tags=_tags(payload.get("tags")),
        customer=_customer(payload.get("primaryCustomer") or payload.get("customer")),
        created_at=_datetime(payload.get("createdAt")),
    )


def _rating(payload: dict[str, Any]) -> TicketSnapshot:
    conversation = payload.get("ticketId") or payload.get("conversationId")
    conversation_id = _required_id(conversation, "rating has no ticketId")
    rating = text_of(payload.get("rating"))
    sentiment = None if rating is None else _RATINGS.get(rating.lower())
    if sentiment is None:
        raise ValueError(f"unknown rating {rating!r}")
    return TicketSnapshot(external_id=conversation_id, sentiment=sentiment)


def _required_id(value: Any, problem: str) -> str:
    ident = text_of(value)
    if ident is None:
        raise ValueError(problem)
    return ident


def _url(payload: dict[str, Any], conversation_id: str) -> str | None:
    links = payload.get("_links")
    web = links.get("web") if isinstance(links, dict) else None
    href = text_of(web.get("href")) if isinstance(web, dict) else None
    number = text_of(payload.get("number"))
    if href is None and number is not None:
        # The web address Help Scout documents for a conversation id and number.
        href = f"https://secure.helpscout.net/conversation/{conversation_id}/{number}/"
    return href


def _tags(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    names = [t.get("tag") if isinstance(t, dict) else t for t in value]
    # Help Scout allows spaces in tags; ours have none (see design.md §4 `roadmap-<key>`).
    return normalise_tags(["-".join(t.split()) for t in names if isinstance(t, str) and t.strip()])


def _customer(person: Any) -> Customer | None:
    if not isinstance(person, dict):
        return None
    first = text_of(person.get("first") or person.get("firstName"))
    last = text_of(person.get("last") or person.get("lastName"))
    name = " ".join(n for n in (first, last) if n) or None
    email = text_of(person.get("email")) or _first_email(person.get("emails"))
    external_id = text_of(person.get("id"))
    if external_id is None and email is None and name is None:
        return None
    return Customer(external_id=external_id, email=email, name=name)


def _first_email(emails: Any) -> str | None:
    if not isinstance(emails, list) or not emails:
        return None
    first = emails[0]
    return text_of(first.get("value") if isinstance(first, dict) else first)


def _datetime(value: Any) -> datetime | None:
    text = text_of(value)
    return None if text is None else datetime.fromisoformat(text)
