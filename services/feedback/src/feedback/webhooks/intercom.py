"""Intercom: conversation webhooks, in both the legacy (1.x) and the API 2.x shape.

`X-Hub-Signature` is `sha1=` + the hex HMAC-SHA1 of the raw body, keyed with the app's client
secret; Intercom sends no timestamp. The delivery key is the notification `id` (`notif_…`), the
event type its `topic`; a `ping` topic is sent when the webhook is saved. The conversation is
`data.item`: legacy apps get `user`, `conversation_message` and `tags_added`; 2.x apps get
`contacts`, `source`, `title` and `priority`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response

from feedback.domain import TicketSnapshot
from feedback.webhooks import vendor_tags
from prodops.contract import Customer, Priority
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    Provider,
    body_hash,
    hex_hmac,
    json_object,
    matches_one,
    text_of,
)
from prodops.webhooks.standard import SignatureError

SIGNATURE = "x-hub-signature"
PING = "ping"
_SCHEME = "sha1="
_TITLE_LENGTH = 200
# Topics whose `data.item` is a whole conversation; any other topic is ignored.
TOPICS = frozenset(
    {
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.admin.single.created",
        "conversation.admin.opened",
        "conversation.admin.closed",
        "conversation.admin.replied",
        "conversation.admin.noted",
        "conversation.admin.assigned",
        "conversation.admin.snoozed",
        "conversation.admin.unsnoozed",
        "conversation_part.tag.created",
        "conversation.priority.updated",
        "conversation.rating.added",
    }
)
Status = Literal["open", "archived"]
# A snoozed conversation is still waiting on the team, so it stays open.
_STATES: dict[str, Status] = {"open": "open", "snoozed": "open", "closed": "archived"}
_TOPIC_STATUS: dict[str, Status] = {
    "conversation.admin.opened": "open",
    "conversation.admin.closed": "archived",
}
_PRIORITIES: dict[str, Priority] = {"priority": "high", "not_priority": "normal"}
_CUSTOMER_TYPES = frozenset({"user", "lead", "contact"})
_MARKUP = re.compile(r"<[^>]*>")


class IntercomProvider:
    """Intercom's scheme: `sha1=` HMAC of the body, `notif_…` ids, a `ping` on setup."""

    name = "intercom"

    def verify(self, webhook: InboundWebhook, secrets: Sequence[str], **_clock: float) -> None:
        """Raise SignatureError unless `X-Hub-Signature` is made with one of `secrets`."""
        header = webhook.headers.get(SIGNATURE)
        if not header:
            raise SignatureError("missing X-Hub-Signature header")
        if not header.startswith(_SCHEME):
            raise SignatureError("X-Hub-Signature is not sha1=")
        expected = (hex_hmac(secret, webhook.body, "sha1") for secret in secrets)
        if not matches_one(header.removeprefix(_SCHEME), expected):
            raise SignatureError("no X-Hub-Signature matches")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The notification `id` and its `topic`."""
        body = json_object(webhook.body)
        topic = body.get("topic")
        if not isinstance(topic, str) or not topic:
            raise MalformedWebhookError("Intercom notification without a topic")
        key = body.get("id")
        return Identity(key if isinstance(key, str) and key else body_hash(webhook), topic)

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        """Answer the `ping` Intercom sends when the webhook is saved."""
        try:
            body = json_object(webhook.body)
        except MalformedWebhookError:
            return None  # identify() answers it as malformed
        if body.get("topic") == PING:
            return JSONResponse({"status": "pong"}, status_code=200)
        return None


PROVIDER: Provider = IntercomProvider()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:
    """The conversation one Intercom notification carries, or None for other topics."""
    if event_type not in TOPICS:
        return None
    item = _conversation(payload)
    opening = _opening(item)
    text = _plain(opening.get("body"))
    fields: dict[str, Any] = {
        "external_id": _conversation_id(item),
        "title": _title(item, opening, text),
        "body": text,
        "url": _web_link(item),
        "status": _TOPIC_STATUS.get(event_type) or _status(item),
        "tags": vendor_tags(_tag_names(item["tags"])) if "tags" in item else None,
        "priority": _PRIORITIES.get(text_of(item.get("priority")) or ""),
        "sentiment": _sentiment(item.get("conversation_rating")),
        "customer": _customer(item, opening),
        "account_external_id": _company(item),
        "created_at": _moment(item.get("created_at")),
    }
    if event_type == "conversation_part.tag.created" and "tags_added" in item:
        fields["tags_added"] = vendor_tags(_tag_names(item["tags_added"]))
    return TicketSnapshot(**fields)


def _conversation(payload: object) -> Mapping[str, Any]:
    data = payload.get("data") if isinstance(payload, Mapping) else None
    item = data.get("item") if isinstance(data, Mapping) else None
    if not isinstance(item, Mapping) or item.get("type") != "conversation":
        raise ValueError("Intercom notification without a conversation in data.item")
    return item


def _conversation_id(item: Mapping[str, Any]) -> str:
    found = text_of(item.get("id"))
    if found is None:
        raise ValueError("Intercom conversation without an id")
    return found


def _opening(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The message that opened the conversation: `source` (2.x) or `conversation_message`."""
    for key in ("source", "conversation_message"):
        found = item.get(key)
        if isinstance(found, Mapping):
            return found
    return {}


def _title(item: Mapping[str, Any], opening: Mapping[str, Any], text: str | None) -> str | None:
    # 2.x conversations may carry a `title`; most carry neither it nor a subject (chats).
    found = _plain(item.get("title")) or _plain(opening.get("subject")) or text
    return found[:_TITLE_LENGTH] if found else None


def _status(item: Mapping[str, Any]) -> Status | None:
    state = item.get("state")
    if isinstance(state, str):
        return _STATES.get(state)
    is_open = item.get("open")
    if isinstance(is_open, bool):
        return "open" if is_open else "archived"
    return None


def _tag_names(tag_list: object) -> list[object]:
    """The names in a `{"type": "tag.list", "tags": [...]}` (or a bare list of tags)."""
    tags = tag_list.get("tags") if isinstance(tag_list, Mapping) else tag_list
    if not isinstance(tags, list):
        return []
    return [t.get("name") if isinstance(t, Mapping) else t for t in tags]


def _sentiment(rating: object) -> float | None:
    score = rating.get("rating") if isinstance(rating, Mapping) else None
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        return None
    return (score - 3) / 2


def _customer(item: Mapping[str, Any], opening: Mapping[str, Any]) -> Customer | None:
    user = item.get("user")  # legacy: the conversation's user or lead
    if isinstance(user, Mapping):
        return _person(user)
    contacts = item.get("contacts")  # 2.x: a contact.list; the first is the customer
    listed = contacts.get("contacts") if isinstance(contacts, Mapping) else None
    if not isinstance(listed, list) or not listed or not isinstance(listed[0], Mapping):
        return None
    contact = _person(listed[0])
    author = opening.get("author")
    # A 2.x contact carries ids only; its email and name are on the message it wrote, if any.
    if contact and isinstance(author, Mapping) and author.get("type") in _CUSTOMER_TYPES:
        wrote = _person(author)
        if wrote and wrote.external_id == contact.external_id:
            return wrote
    return contact


def _person(person: Mapping[str, Any]) -> Customer | None:
    found = {k: text_of(person.get(k)) for k in ("id", "email", "name")}
    if not any(found.values()):
        return None
    return Customer(external_id=found["id"], email=found["email"], name=found["name"])


def _company(item: Mapping[str, Any]) -> str | None:
    company = item.get("company")
    return text_of(company.get("id")) if isinstance(company, Mapping) else None


def _web_link(item: Mapping[str, Any]) -> str | None:
    links = item.get("links")
    return text_of(links.get("conversation_web")) if isinstance(links, Mapping) else None


def _plain(value: object) -> str | None:
    """Text of an Intercom HTML body: tags dropped, entities decoded, whitespace collapsed."""
    if not isinstance(value, str):
        return None
    return " ".join(html.unescape(_MARKUP.sub(" ", value)).split()) or None


def _moment(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)
