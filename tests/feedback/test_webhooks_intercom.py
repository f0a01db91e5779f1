"""Intercom webhooks: sha1= signatures, notification ids, the ping, legacy and 2.x conversations."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from feedback.webhooks.intercom import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook
from prodops.webhooks.standard import SignatureError
from webhook_kit import assert_only_the_signed_body_verifies

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "intercom"
LEGACY = "hull-connectors.webhook-conversation-{}.body.json"
PRIORITY_UPDATED = FIXTURES / "zulip.conversation_priority_updated.json"
SECRET = "intercom-client-secret-for-tests"
NOW = 1_700_000_000.0
BOB = Customer(external_id="5ee3d479d1cf3dedbee23d68", email="bob.dylan@rei.com", name="Bob Dylan")
PING = {"type": "notification_event", "topic": "ping", "id": "notif_ping", "data": {}}


def _legacy(name: str) -> Path:
    return FIXTURES / LEGACY.format(name)


def _signature(secret: str, body: bytes) -> str:
    # As Intercom signs: sha1= and the hex HMAC-SHA1 of the raw body, keyed with the secret.
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _webhook(body: bytes, *, secret: str = SECRET) -> InboundWebhook:
    return InboundWebhook({"x-hub-signature": _signature(secret, body)}, body)


def _verify(webhook: InboundWebhook, secrets: list[str] | None = None) -> None:
    PROVIDER.verify(webhook, secrets or [SECRET], now=NOW, tolerance=300)


def _payload(path: Path) -> Any:
    return json.loads(path.read_bytes())


def test_intercom_signature_verifies_only_with_the_client_secret_over_the_sent_body() -> None:
    tamper = (b'"priority"', b'"urgent"')
    assert_only_the_signed_body_verifies(_verify, _webhook, PRIORITY_UPDATED.read_bytes(), tamper)


def test_intercom_signature_without_the_sha1_prefix_is_rejected() -> None:
    body = PRIORITY_UPDATED.read_bytes()
    bare = _signature(SECRET, body).removeprefix("sha1=")
    with pytest.raises(SignatureError, match="sha1="):
        _verify(InboundWebhook({"x-hub-signature": bare}, body))


def test_intercom_request_without_a_signature_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing"):
        _verify(InboundWebhook({}, PRIORITY_UPDATED.read_bytes()))


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        (
            PRIORITY_UPDATED,
            Identity("notif_92261e36-95a7-4a80-90ef-bda7b55287cf", "conversation.priority.updated"),
        ),
        (
            _legacy("admin-closed"),
            Identity("notif_2a8995f8-92cb-4edd-a38c-041f4cdbf659", "conversation.admin.closed"),
        ),
        (
            _legacy("part-tag-created"),
            Identity("notif_25be3656-da7c-4ee4-9573-346b8df8ffb0", "conversation_part.tag.created"),
        ),
    ],
)
def test_intercom_notification_is_identified_by_its_id_and_topic(
    path: Path, identity: Identity
) -> None:
    assert PROVIDER.identify(_webhook(path.read_bytes())) == identity


def test_intercom_ping_is_answered_with_pong() -> None:
    answer = PROVIDER.handshake(_webhook(json.dumps(PING).encode()))
    assert isinstance(answer, JSONResponse)
    assert answer.status_code == 200
    assert json.loads(bytes(answer.body)) == {"status": "pong"}


def test_ping_maps_to_nothing() -> None:
    assert snapshot("ping", PING) is None


@pytest.mark.parametrize(
    "topic", ["contact.created", "user.tag.created", "ticket.created", "conversation.deleted"]
)
def test_other_intercom_topics_are_ignored(topic: str) -> None:
    assert snapshot(topic, _payload(_legacy("admin-opened"))) is None


def test_legacy_conversation_maps_its_opening_message_and_user() -> None:
    conversation = snapshot("conversation.admin.assigned", _payload(_legacy("admin-assigned")))
    assert conversation is not None
    assert conversation.external_id == "137324500000000"
    assert conversation.title == "hi Bob"
    assert conversation.body == "hi Bob"
    assert conversation.status == "open"
    assert conversation.tags == []
    assert conversation.priority is None
    assert conversation.customer == BOB
    assert conversation.url == (
        "https://app.intercom.com/a/apps/lkqcyt9t/conversations/137324500000000"
    )
    assert conversation.created_at == datetime.fromtimestamp(1596634805, tz=UTC)
    assert conversation.sentiment is None


@pytest.mark.parametrize(
    ("name", "topic", "status"),
    [
        ("admin-opened", "conversation.admin.opened", "open"),
        ("admin-closed", "conversation.admin.closed", "archived"),
        ("admin-replied", "conversation.admin.replied", "open"),
        ("admin-noted", "conversation.admin.noted", "open"),
        ("admin-assigned", "conversation.admin.assigned", "open"),
        # An admin's one-off outbound message arrives already closed.
        ("admin-single-created", "conversation.admin.single.created", "archived"),
    ],
)
def test_legacy_conversation_topics_map_the_conversation_state(
    name: str, topic: str, status: str
) -> None:
    conversation = snapshot(topic, _payload(_legacy(name)))
    assert conversation is not None
    assert conversation.external_id == "137324500000000"
    assert conversation.status == status
    assert conversation.customer == BOB


def test_closed_topic_archives_even_if_the_item_says_open() -> None:
    payload = _payload(_legacy("admin-opened"))
    conversation = snapshot("conversation.admin.closed", payload)
    assert conversation is not None
    assert conversation.status == "archived"


def test_replied_conversation_reads_the_html_of_its_opening_message() -> None:
    conversation = snapshot("conversation.admin.replied", _payload(_legacy("admin-replied")))
    assert conversation is not None
    assert conversation.title == conversation.body == "Hi Bob,hola"


def test_tag_added_to_a_conversation_maps_tags_added() -> None:
    conversation = snapshot("conversation_part.tag.created", _payload(_legacy("part-tag-created")))
    assert conversation is not None
    assert conversation.tags == ["sample-tag"]
    assert conversation.tags_added == ["sample-tag"]
    assert conversation.tags_removed == []


def test_api_2_conversation_maps_its_source_contact_and_priority() -> None:
    conversation = snapshot("conversation.priority.updated", _payload(PRIORITY_UPDATED))
    assert conversation is not None
    assert conversation.external_id == "215472621202693"
    assert conversation.title == "helklo"
    assert conversation.body == "helklo"
    assert conversation.status == "open"
    assert conversation.priority == "high"
    assert conversation.tags == []
    assert conversation.customer == Customer(external_id="696205460674dbb9050aa7fd")
    assert conversation.created_at == datetime.fromtimestamp(1768031789, tz=UTC)
    assert conversation.url is None
    assert conversation.account_external_id is None


def test_api_2_conversation_without_priority_is_normal() -> None:
    payload = _payload(PRIORITY_UPDATED)
    payload["data"]["item"]["priority"] = "not_priority"
    conversation = snapshot("conversation.priority.updated", payload)
    assert conversation is not None
    assert conversation.priority == "normal"


def test_api_2_title_wins_over_the_message_and_is_truncated() -> None:
    payload = _payload(PRIORITY_UPDATED)
    payload["data"]["item"]["title"] = "Search " + "x" * 300
    conversation = snapshot("conversation.priority.updated", payload)
    assert conversation is not None
    assert conversation.title == ("Search " + "x" * 300)[:200]
    assert conversation.body == "helklo"


def test_api_2_contact_takes_email_and_name_from_the_message_it_wrote() -> None:
    payload = _payload(PRIORITY_UPDATED)
    author = payload["data"]["item"]["source"]["author"]
    author.update({"email": "lead@example.com", "name": "Lea"})
    conversation = snapshot("conversation.priority.updated", payload)
    assert conversation is not None
    assert conversation.customer == Customer(
        external_id="696205460674dbb9050aa7fd", email="lead@example.com", name="Lea"
    )


def test_conversation_company_is_its_account() -> None:
    payload = _payload(PRIORITY_UPDATED)
    payload["data"]["item"]["company"] = {"type": "company", "id": "6a1b2c"}
    conversation = snapshot("conversation.priority.updated", payload)
    assert conversation is not None
    assert conversation.account_external_id == "6a1b2c"


@pytest.mark.parametrize(("rating", "sentiment"), [(1, -1.0), (2, -0.5), (3, 0.0), (5, 1.0)])
def test_conversation_rating_maps_to_sentiment(rating: int, sentiment: float) -> None:
    payload = _payload(PRIORITY_UPDATED)
    payload["topic"] = "conversation.rating.added"
    payload["data"]["item"]["conversation_rating"] = {"rating": rating, "remark": "ok"}
    conversation = snapshot("conversation.rating.added", payload)
    assert conversation is not None
    assert conversation.sentiment == sentiment


def test_conversation_topic_without_a_conversation_fails_to_map() -> None:
    with pytest.raises(ValueError, match=r"data\.item"):
        snapshot("conversation.admin.closed", {"topic": "conversation.admin.closed", "data": {}})
