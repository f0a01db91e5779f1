"""Help Scout webhooks: HMAC-SHA1 signatures, event + conversation keys, conversations, ratings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from feedback.domain import TicketSnapshot
from feedback.webhooks.helpscout import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError, body_hash
from prodops.webhooks.standard import SignatureError

CONVERSATION = (
    Path(__file__).parents[1]
    / "fixtures"
    / "webhooks"
    / "helpscout"
    / "DERIVED.helpscout-api-php.conversation_v2.json"
)
SECRET = "whsec_aGVscHNjb3V0LXNlY3JldC1mb3ItdGVzdHM="
NOW = 1_700_000_000.0
RATING = {
    "id": 5434,
    "ticketId": 123,
    "threadId": 3002084,
    "rating": "Great",
    "comments": "quick and kind",
    "createdAt": "2017-04-22T09:00:00Z",
    "modifiedAt": "2017-04-22T09:05:00Z",
}


def _signature(secret: str, body: bytes) -> str:
    # As Help Scout signs: base64 HMAC-SHA1 of the raw body, keyed with the secret as typed.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def _webhook(
    body: bytes, event: str | None = "convo.updated", signature: str | None = None
) -> InboundWebhook:
    headers = {"x-helpscout-signature": signature or _signature(SECRET, body)}
    if event is not None:
        headers["x-helpscout-event"] = event
    return InboundWebhook(headers, body)


def _conversation() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(CONVERSATION.read_bytes())
    return payload


def _verify(webhook: InboundWebhook, secrets: list[str]) -> None:
    PROVIDER.verify(webhook, secrets, now=NOW, tolerance=300)


def test_helpscout_delivery_with_a_tampered_body_is_refused() -> None:
    body = CONVERSATION.read_bytes()
    tampered = InboundWebhook(_webhook(body).headers, body.replace(b"closed", b"active"))
    with pytest.raises(SignatureError, match="does not match"):
        _verify(tampered, [SECRET])


def test_helpscout_delivery_without_a_signature_is_refused() -> None:
    webhook = InboundWebhook({"x-helpscout-event": "convo.updated"}, CONVERSATION.read_bytes())
    with pytest.raises(SignatureError, match="missing x-helpscout-signature"):
        _verify(webhook, [SECRET])


def test_helpscout_conversation_is_keyed_by_event_id_and_user_update_time() -> None:
    webhook = _webhook(CONVERSATION.read_bytes(), "convo.updated")
    assert PROVIDER.identify(webhook) == Identity(
        "convo.updated:123:2017-04-21T14:43:24Z", "convo.updated"
    )


def test_helpscout_rating_is_keyed_by_its_id_and_modification_time() -> None:
    webhook = _webhook(json.dumps(RATING).encode(), "satisfaction.ratings")
    assert PROVIDER.identify(webhook).delivery_key == (
        "satisfaction.ratings:5434:2017-04-22T09:05:00Z"
    )


def test_helpscout_body_without_an_update_time_is_keyed_by_its_hash() -> None:
    webhook = _webhook(b'{"id": 123}', "convo.deleted")
    assert PROVIDER.identify(webhook) == Identity(body_hash(webhook), "convo.deleted")


def test_helpscout_delivery_without_an_event_header_is_malformed() -> None:
    with pytest.raises(MalformedWebhookError, match="x-helpscout-event"):
        PROVIDER.identify(_webhook(CONVERSATION.read_bytes(), event=None))


def test_helpscout_test_ping_is_answered_ok() -> None:
    answer = PROVIDER.handshake(_webhook(b"{}", "helpscout.test"))
    assert isinstance(answer, JSONResponse)
    assert (answer.status_code, json.loads(bytes(answer.body))) == (200, {"status": "ok"})


def test_helpscout_v2_conversation_maps_to_its_ticket() -> None:
    assert snapshot("convo.updated", _conversation()) == TicketSnapshot(
        external_id="123",
        title="Need Help",
        body="I'm having a hard time resolving this",
        url="https://secure.helpscout.net/conversation/123/15473/",
        status="archived",
        tags=["vip"],
        customer=Customer(external_id="238604"),
        created_at=datetime(2017, 4, 21, 14, 39, 56, tzinfo=UTC),
    )


def test_helpscout_webhook_shape_conversation_maps_customer_tags_and_link() -> None:
    payload = {
        **_conversation(),
        "status": "active",
        "tags": ["VIP", "roadmap-csv export"],
        "primaryCustomer": None,
        "customer": {"id": 29418, "firstName": "Vernon", "lastName": "Bear", "email": "b@x.io"},
        "_links": {"web": {"href": "https://secure.helpscout.net/conversation/123/15473"}},
    }
    ticket = snapshot("convo.created", payload)
    assert ticket is not None
    assert ticket.status == "open"
    assert ticket.tags == ["vip", "roadmap-csv-export"]
    assert ticket.customer == Customer(external_id="29418", email="b@x.io", name="Vernon Bear")
    assert ticket.url == "https://secure.helpscout.net/conversation/123/15473"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("active", "open"), ("pending", "open"), ("closed", "archived"), ("spam", "archived")],
)
def test_helpscout_status_maps_to_open_or_archived(status: str, expected: str) -> None:
    ticket = snapshot("convo.status", {**_conversation(), "status": status})
    assert ticket is not None
    assert ticket.status == expected


def test_deleted_helpscout_conversation_is_archived() -> None:
    assert snapshot("convo.deleted", {"id": 123}) == TicketSnapshot(
        external_id="123", status="archived"
    )


@pytest.mark.parametrize(
    ("rating", "sentiment"), [("Great", 1.0), ("Okay", 0.0), ("Not Good", -1.0), ("Bad", -1.0)]
)
def test_helpscout_rating_becomes_the_conversation_sentiment(rating: str, sentiment: float) -> None:
    assert snapshot("satisfaction.ratings", {**RATING, "rating": rating}) == TicketSnapshot(
        external_id="123", sentiment=sentiment
    )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [({**RATING, "rating": "Meh"}, "unknown rating"), ({"rating": "Great"}, "no ticketId")],
)
def test_helpscout_rating_that_cannot_be_read_fails(payload: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        snapshot("satisfaction.ratings", payload)


def test_helpscout_conversation_without_an_id_fails() -> None:
    with pytest.raises(ValueError, match="no id"):
        snapshot("convo.created", {"subject": "Need Help"})


@pytest.mark.parametrize("event", ["helpscout.test", "customer.created", "tag.created"])
def test_helpscout_events_that_are_not_about_a_conversation_are_ignored(event: str) -> None:
    assert snapshot(event, _conversation()) is None
