"""Zendesk webhooks: timestamped HMAC-SHA256 signatures, event ids, ticket snapshots, triggers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedback.webhooks.zendesk import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook
from prodops.webhooks.standard import SignatureError
from webhook_kit import assert_only_the_signed_body_verifies

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "zendesk"
CREATED = FIXTURES / "dust.ticket_created.example.json"
STATUS_CHANGED = FIXTURES / "dust.ticket_status_changed.example.json"
SECRET = "dGhpcyBpcyBhIHplbmRlc2sgc2lnbmluZyBzZWNyZXQ="
STAMP = "2025-01-08T10:12:07Z"
NOW = datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC).timestamp()


def _signature(secret: str, stamp: str, body: bytes) -> str:
    # As Zendesk signs: base64 HMAC-SHA256 of the timestamp header value followed by the body.
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _webhook(body: bytes, *, stamp: str = STAMP, secret: str = SECRET) -> InboundWebhook:
    headers = {
        "x-zendesk-webhook-signature": _signature(secret, stamp, body),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str] | None = None, now: float = NOW) -> None:
    PROVIDER.verify(webhook, secrets or [SECRET], now=now, tolerance=300)


def _payload(path: Path) -> Any:
    return json.loads(path.read_bytes())


def test_zendesk_signature_verifies_only_with_the_secret_over_the_sent_body() -> None:
    assert_only_the_signed_body_verifies(
        _verify, _webhook, CREATED.read_bytes(), (b"5158", b"5159")
    )


def test_zendesk_signature_verifies_within_the_tolerance_either_side() -> None:
    _verify(_webhook(CREATED.read_bytes()), now=NOW + 299)
    _verify(_webhook(CREATED.read_bytes()), now=NOW - 299)


def test_zendesk_signature_over_another_timestamp_is_rejected() -> None:
    signed = _webhook(CREATED.read_bytes())
    moved = {**signed.headers, "x-zendesk-webhook-signature-timestamp": "2025-01-08T10:12:08Z"}
    with pytest.raises(SignatureError):
        _verify(InboundWebhook(moved, signed.body))


def test_stale_zendesk_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(_webhook(CREATED.read_bytes()), now=NOW + 301)


def test_unreadable_zendesk_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureError, match="ISO 8601"):
        _verify(_webhook(CREATED.read_bytes(), stamp="yesterday"))


@pytest.mark.parametrize(
    "header", ["x-zendesk-webhook-signature", "x-zendesk-webhook-signature-timestamp"]
)
def test_zendesk_request_missing_a_signature_header_is_rejected(header: str) -> None:
    signed = _webhook(CREATED.read_bytes())
    headers = {k: v for k, v in signed.headers.items() if k != header}
    with pytest.raises(SignatureError, match="missing"):
        _verify(InboundWebhook(headers, signed.body))


def test_zendesk_event_is_identified_by_its_id_and_type() -> None:
    created = PROVIDER.identify(_webhook(CREATED.read_bytes()))
    changed = PROVIDER.identify(_webhook(STATUS_CHANGED.read_bytes()))
    assert created == Identity(
        "cbe4028c-7239-495d-b020-f22348516046", "zen:event-type:ticket.created"
    )
    assert changed == Identity(
        "a8b9c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d", "zen:event-type:ticket.status_changed"
    )


def test_zendesk_trigger_webhook_is_identified_by_its_body_hash_not_the_ticket_id() -> None:
    body = b'{"id": 42, "title": "Export is slow", "type": "question"}'
    identity = PROVIDER.identify(_webhook(body))
    assert identity == Identity("sha256:" + hashlib.sha256(body).hexdigest(), "trigger")


def test_created_ticket_maps_the_whole_detail_snapshot() -> None:
    ticket = snapshot("zen:event-type:ticket.created", _payload(CREATED))
    assert ticket is not None
    assert ticket.external_id == "5158"
    assert ticket.title == "Cannot login to mobile app"
    assert ticket.body == "Customer is experiencing login issues with the mobile app"
    assert ticket.status == "open"
    assert ticket.priority == "high"
    assert ticket.tags == ["mobile", "login"]
    assert ticket.tags_added == ticket.tags_removed == []
    assert ticket.customer == Customer(external_id="8447388090494")
    assert ticket.account_external_id == "8447346622462"
    assert ticket.created_at == datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)
    assert ticket.url is None
    assert ticket.sentiment is None


def test_solved_ticket_is_archived_with_its_current_tags() -> None:
    ticket = snapshot("zen:event-type:ticket.status_changed", _payload(STATUS_CHANGED))
    assert ticket is not None
    assert ticket.external_id == "5158"
    assert ticket.status == "archived"
    assert ticket.tags == ["mobile", "login", "priority-support"]


def test_status_change_reads_the_current_status_from_the_event() -> None:
    payload = _payload(STATUS_CHANGED)
    payload["event"] = {"current": "PENDING", "previous": "SOLVED"}
    ticket = snapshot("zen:event-type:ticket.status_changed", payload)
    assert ticket is not None
    assert ticket.status == "open"


@pytest.mark.parametrize(
    ("current", "priority"),
    [("LOW", "low"), ("NORMAL", "normal"), ("HIGH", "high"), ("URGENT", "urgent")],
)
def test_priority_change_maps_the_current_priority(current: str, priority: str) -> None:
    payload = _payload(CREATED)
    payload["type"] = "zen:event-type:ticket.priority_changed"
    payload["event"] = {"current": current, "previous": "HIGH"}
    ticket = snapshot("zen:event-type:ticket.priority_changed", payload)
    assert ticket is not None
    assert ticket.priority == priority


def test_ticket_without_a_priority_leaves_it_unknown() -> None:
    payload = _payload(CREATED)
    payload["detail"]["priority"] = None
    ticket = snapshot("zen:event-type:ticket.created", payload)
    assert ticket is not None
    assert ticket.priority is None


def test_tags_change_maps_the_added_and_removed_tags() -> None:
    payload = _payload(CREATED)
    payload["detail"]["tags"] = ["mobile", "Roadmap-Search"]
    payload["event"] = {"tags_added": ["Roadmap-Search"], "tags_removed": ["login"]}
    ticket = snapshot("zen:event-type:ticket.tags_changed", payload)
    assert ticket is not None
    assert ticket.tags == ["mobile", "roadmap-search"]
    assert ticket.tags_added == ["roadmap-search"]
    assert ticket.tags_removed == ["login"]


@pytest.mark.parametrize(
    "event_type",
    ["zen:event-type:user.created", "zen:event-type:organization.created", "something.else"],
)
def test_non_ticket_zendesk_events_are_ignored(event_type: str) -> None:
    assert snapshot(event_type, _payload(CREATED)) is None


def test_ticket_event_without_a_ticket_id_fails_to_map() -> None:
    payload = _payload(CREATED)
    del payload["detail"]["id"]
    with pytest.raises(ValueError, match=r"detail\.id"):
        snapshot("zen:event-type:ticket.created", payload)


def test_flat_trigger_body_maps_best_effort() -> None:
    body = {
        "ticket_id": 77,
        "subject": "Export is slow",
        "description": "CSV export takes minutes",
        "status": "Solved",
        "priority": "urgent",
        "tags": "export roadmap-exports",
        "requester_email": "ana@example.com",
    }
    ticket = snapshot("trigger", body)
    assert ticket is not None
    assert ticket.external_id == "77"
    assert ticket.title == "Export is slow"
    assert ticket.body == "CSV export takes minutes"
    assert ticket.status == "archived"
    assert ticket.priority == "urgent"
    assert ticket.tags == ["export", "roadmap-exports"]
    assert ticket.customer == Customer(email="ana@example.com")


def test_trigger_body_nested_under_ticket_maps_best_effort() -> None:
    body = {"ticket": {"id": "78", "title": "Dark mode", "tags": ["UI"]}}
    ticket = snapshot("trigger", body)
    assert ticket is not None
    assert (ticket.external_id, ticket.title, ticket.tags) == ("78", "Dark mode", ["ui"])


def test_trigger_body_without_an_id_or_title_fails_to_map() -> None:
    with pytest.raises(ValueError, match="trigger body"):
        snapshot("trigger", {"message": "something happened"})
