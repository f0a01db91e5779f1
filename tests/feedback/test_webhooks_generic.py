"""Our generic webhook: Standard Webhooks signatures, `webhook-id` keys, `ticket.upserted`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from feedback.domain import TicketSnapshot
from feedback.webhooks.generic import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError
from prodops.webhooks.standard import SignatureError

SECRET = "whsec_" + base64.b64encode(b"generic-webhook-secret-24").decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"the-secret-rotated-in-now").decode()
NOW = 1_700_000_000
TOLERANCE = 300.0
DATA = {
    "external_id": "T-1042",
    "title": "Export to CSV times out",
    "body": "Exports over 10k rows never finish.",
    "url": "https://desk.example.com/tickets/1042",
    "status": "open",
    "tags": ["Export", "Roadmap-CSV-Export", "needs review"],
    "priority": "high",
    "sentiment": -0.5,
    "customer": {"external_id": "c-7", "email": "ada@acme.example", "name": "Ada"},
    "account_external_id": "acme",
    "created_at": "2024-05-01T12:00:00Z",
}
BODY = json.dumps({"type": "ticket.upserted", "data": DATA}).encode()


def _signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    # As a sender signs, with the reference package: v1,base64 HMAC-SHA256 of "id.timestamp.body".
    return Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)


def _webhook(
    body: bytes = BODY, *, secret: str = SECRET, timestamp: int = NOW, signature: str | None = None
) -> InboundWebhook:
    headers = {
        "webhook-id": "msg_2b3c",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or _signature(secret, "msg_2b3c", timestamp, body),
    }
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str]) -> None:
    PROVIDER.verify(webhook, secrets, now=NOW, tolerance=TOLERANCE)


def test_generic_message_with_a_tampered_body_is_refused() -> None:
    tampered = InboundWebhook(_webhook().headers, BODY.replace(b"high", b"urgent"))
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        _verify(tampered, [SECRET])


@pytest.mark.parametrize("sent_at", [NOW - 301, NOW + 301])
def test_generic_message_outside_the_timestamp_tolerance_is_refused(sent_at: int) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(_webhook(timestamp=sent_at), [SECRET])


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_generic_message_missing_a_signing_header_is_refused(header: str) -> None:
    headers = {k: v for k, v in _webhook().headers.items() if k != header}
    with pytest.raises(SignatureError, match=f"missing {header}"):
        _verify(InboundWebhook(headers, BODY), [SECRET])


def test_generic_signature_with_non_ascii_text_is_refused_not_a_crash() -> None:
    with pytest.raises(SignatureError):
        _verify(_webhook(signature="v1,s\u00e9cret"), [SECRET])


def test_generic_message_with_several_signatures_verifies_when_one_matches() -> None:
    valid = _signature(SECRET, "msg_2b3c", NOW, BODY)
    stale = _signature(NEXT_SECRET, "msg_2b3c", NOW, BODY)
    _verify(_webhook(signature=f"v1,bm90LWl0 {stale} {valid}"), [SECRET])


def test_generic_message_is_keyed_by_its_webhook_id_and_typed_by_its_body() -> None:
    assert PROVIDER.identify(_webhook()) == Identity("msg_2b3c", "ticket.upserted")


def test_generic_message_without_a_webhook_id_is_malformed() -> None:
    with pytest.raises(MalformedWebhookError, match="webhook-id"):
        PROVIDER.identify(InboundWebhook({}, BODY))


def test_upserted_ticket_maps_every_documented_field() -> None:
    assert snapshot("ticket.upserted", json.loads(BODY)) == TicketSnapshot(
        external_id="T-1042",
        title="Export to CSV times out",
        body="Exports over 10k rows never finish.",
        url="https://desk.example.com/tickets/1042",
        status="open",
        tags=["export", "roadmap-csv-export", "needs-review"],
        priority="high",
        sentiment=-0.5,
        customer=Customer(external_id="c-7", email="ada@acme.example", name="Ada"),
        account_external_id="acme",
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
    )


def test_upserted_ticket_with_only_its_id_leaves_the_rest_unknown() -> None:
    payload = {"type": "ticket.upserted", "data": {"external_id": "T-1", "tags_added": ["A b"]}}
    assert snapshot("ticket.upserted", payload) == TicketSnapshot(
        external_id="T-1", tags_added=["a-b"]
    )


@pytest.mark.parametrize(
    "data",
    [
        {"title": "no id"},
        {**DATA, "status": "pending"},
        {**DATA, "sentiment": 2},
        {**DATA, "priorty": "high"},
        {**DATA, "tags": "export"},
    ],
)
def test_upserted_ticket_with_invalid_data_fails(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"invalid ticket\.upserted data"):
        snapshot("ticket.upserted", {"type": "ticket.upserted", "data": data})


def test_upserted_ticket_without_data_fails() -> None:
    with pytest.raises(ValueError, match="no `data` object"):
        snapshot("ticket.upserted", {"type": "ticket.upserted", "data": [DATA]})


@pytest.mark.parametrize("event_type", ["ticket.deleted", "ping", "user.created"])
def test_generic_types_other_than_upserted_are_ignored(event_type: str) -> None:
    assert snapshot(event_type, {"type": event_type, "data": DATA}) is None
