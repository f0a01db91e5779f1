"""Front webhooks: timestamp:body signatures, the setup challenge, event ids, conversations."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import PlainTextResponse

from feedback.webhooks.front import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook
from prodops.webhooks.standard import SignatureError
from webhook_kit import assert_only_the_signed_body_verifies

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "front"
TAGGED = FIXTURES / "zulip.conversation_tagged.json"
SECRET = "front-app-signing-secret-for-tests"
NOW = 1_700_000_000.0
STAMP = str(int(NOW * 1000))
CALCULON = Customer(external_id="crd_62euuy", email="calculon@momsbot.com")


def _signature(secret: str, stamp: str, body: bytes) -> str:
    # As Front signs: base64 HMAC-SHA256 of "<X-Front-Request-Timestamp>:" and the raw body.
    digest = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _webhook(
    body: bytes, *, stamp: str = STAMP, secret: str = SECRET, challenge: str | None = None
) -> InboundWebhook:
    headers = {
        "x-front-signature": _signature(secret, stamp, body),
        "x-front-request-timestamp": stamp,
    }
    if challenge is not None:
        headers["x-front-challenge"] = challenge
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str] | None = None, now: float = NOW) -> None:
    PROVIDER.verify(webhook, secrets or [SECRET], now=now, tolerance=300)


def _event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(TAGGED.read_bytes())
    return event


def _as(event_type: str) -> dict[str, Any]:
    event = copy.deepcopy(_event())
    event["type"] = event_type
    return event


def test_front_signature_verifies_only_with_the_app_secret_over_the_sent_body() -> None:
    assert_only_the_signed_body_verifies(
        _verify, _webhook, TAGGED.read_bytes(), (b"Urgent", b"Ignore")
    )


def test_front_signature_over_another_timestamp_is_rejected() -> None:
    signed = _webhook(TAGGED.read_bytes())
    moved = {**signed.headers, "x-front-request-timestamp": str(int(NOW * 1000) + 1)}
    with pytest.raises(SignatureError):
        _verify(InboundWebhook(moved, signed.body))


def test_stale_front_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(_webhook(TAGGED.read_bytes()), now=NOW + 301)


def test_front_timestamp_in_seconds_instead_of_milliseconds_is_stale() -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(_webhook(TAGGED.read_bytes(), stamp=str(int(NOW))))


def test_unreadable_front_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureError, match="milliseconds"):
        _verify(_webhook(TAGGED.read_bytes(), stamp="soon"))


@pytest.mark.parametrize("header", ["x-front-signature", "x-front-request-timestamp"])
def test_front_request_missing_a_signature_header_is_rejected(header: str) -> None:
    signed = _webhook(TAGGED.read_bytes())
    headers = {k: v for k, v in signed.headers.items() if k != header}
    with pytest.raises(SignatureError, match="missing"):
        _verify(InboundWebhook(headers, signed.body))


def test_front_event_is_identified_by_its_id_and_type() -> None:
    identity = PROVIDER.identify(_webhook(TAGGED.read_bytes()))
    assert identity == Identity("evt_28duooi", "tag")


def test_application_webhook_envelope_is_identified_by_the_event_inside() -> None:
    body = json.dumps({"type": "tag", "authorization": {"id": "cmp_abc"}, "payload": _event()})
    identity = PROVIDER.identify(_webhook(body.encode()))
    assert identity == Identity("evt_28duooi", "tag")


def test_front_event_without_an_id_is_identified_by_its_body_hash() -> None:
    body = b'{"type": "sync", "authorization": {"id": "cmp_abc"}}'
    identity = PROVIDER.identify(_webhook(body))
    assert identity == Identity("sha256:" + hashlib.sha256(body).hexdigest(), "sync")


def test_front_setup_challenge_is_echoed() -> None:
    body = b'{"type": "sync", "authorization": {"id": "cmp_abc"}}'
    webhook = _webhook(body, challenge="4f9c2a")
    _verify(webhook)  # the challenge request is signed like any delivery
    answer = PROVIDER.handshake(webhook)
    assert isinstance(answer, PlainTextResponse)
    assert answer.status_code == 200
    assert answer.body == b"4f9c2a"


def test_tagged_conversation_maps_the_tag_added() -> None:
    conversation = snapshot("tag", _event())
    assert conversation is not None
    assert conversation.external_id == "cnv_keocka"
    assert conversation.title == "Being a robot is great, but..."
    assert conversation.body is None
    assert conversation.status == "open"
    assert conversation.tags == ["urgent"]
    assert conversation.tags_added == ["urgent"]
    assert conversation.tags_removed == []
    assert conversation.customer == CALCULON
    assert conversation.created_at == datetime.fromtimestamp(1518309203.872, tz=UTC)
    assert conversation.url is None


def test_application_webhook_envelope_maps_the_event_inside() -> None:
    envelope = {"type": "tag", "authorization": {"id": "cmp_abc"}, "payload": _event()}
    assert snapshot("tag", envelope) == snapshot("tag", _event())


def test_untagged_conversation_maps_the_tag_removed() -> None:
    event = _as("untag")
    event["conversation"]["tags"] = []
    conversation = snapshot("untag", event)
    assert conversation is not None
    assert conversation.tags == []
    assert conversation.tags_added == []
    assert conversation.tags_removed == ["urgent"]


@pytest.mark.parametrize(
    ("event_type", "status"), [("archive", "archived"), ("reopen", "open"), ("unarchive", "open")]
)
def test_archive_and_reopen_map_the_status(event_type: str, status: str) -> None:
    conversation = snapshot(event_type, _as(event_type))
    assert conversation is not None
    assert conversation.status == status
    assert conversation.tags_added == conversation.tags_removed == []


def test_event_on_an_archived_conversation_keeps_it_archived() -> None:
    event = _as("tag")
    event["conversation"]["status"] = "archived"
    conversation = snapshot("tag", event)
    assert conversation is not None
    assert conversation.status == "archived"


def test_inbound_message_without_a_subject_titles_the_conversation_with_its_blurb() -> None:
    event = _as("inbound")
    event["conversation"]["subject"] = ""
    event["target"] = {
        "_meta": {"type": "message"},
        "data": {"id": "msg_1", "blurb": "Search cannot find invoices", "text": "…"},
    }
    conversation = snapshot("inbound", event)
    assert conversation is not None
    assert conversation.title == "Search cannot find invoices"
    assert conversation.tags_added == []


@pytest.mark.parametrize("event_type", ["sync", "comment", "assign", "move", "contact_created"])
def test_other_front_event_types_are_ignored(event_type: str) -> None:
    assert snapshot(event_type, _as(event_type)) is None


def test_front_event_without_a_conversation_fails_to_map() -> None:
    event = _as("archive")
    del event["conversation"]
    with pytest.raises(ValueError, match="conversation"):
        snapshot("archive", event)
