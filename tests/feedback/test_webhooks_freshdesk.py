"""Freshdesk webhooks: the shared-secret header, body-hash keys and the "simple" template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from feedback.domain import TicketSnapshot
from feedback.webhooks.freshdesk import PROVIDER, snapshot
from prodops.contract import Customer
from prodops.webhooks.provider import Identity, InboundWebhook, body_hash
from prodops.webhooks.standard import SignatureError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "freshdesk"
SECRET = "whsec_c2VjcmV0LWZvci1mcmVzaGRlc2stdGVzdHM="
NOW = 1_700_000_000.0


def _body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _fields(name: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(_body(name))["freshdesk_webhook"]
    return fields


def _webhook(body: bytes, secret: str | None = SECRET) -> InboundWebhook:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-prodops-secret"] = secret
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str]) -> None:
    PROVIDER.verify(webhook, secrets, now=NOW, tolerance=300)


def test_freshdesk_delivery_without_the_secret_header_is_refused() -> None:
    with pytest.raises(SignatureError, match="missing x-prodops-secret"):
        _verify(_webhook(_body("zulip.ticket_created.json"), None), [SECRET])


def test_freshdesk_secret_header_with_non_ascii_text_is_refused_not_a_crash() -> None:
    with pytest.raises(SignatureError):
        _verify(_webhook(b"{}", "s\u00e9cret"), [SECRET])


def test_freshdesk_delivery_is_keyed_by_its_body_hash_and_triggered_event() -> None:
    webhook = _webhook(_body("zulip.ticket_created.json"))
    assert PROVIDER.identify(webhook) == Identity(body_hash(webhook), "{ticket_action:created}")
    changed = _webhook(_body("zulip.status_changed.json"))
    assert PROVIDER.identify(changed).event_type == "{status:{from:4,to:6}}"


def test_freshdesk_template_without_a_triggered_event_is_a_ticket_event() -> None:
    webhook = _webhook(b'{"freshdesk_webhook": {"ticket_id": "11"}}')
    assert PROVIDER.identify(webhook).event_type == "ticket"


def test_created_ticket_template_maps_to_its_ticket() -> None:
    payload = json.loads(_body("zulip.ticket_created.json"))
    assert snapshot("{ticket_action:created}", payload) == TicketSnapshot(
        external_id="11",
        title="Test ticket subject \u2603",
        body="<div>Test ticket description \u2603.</div>",
        url="http://test1234zzz.freshdesk.com/helpdesk/tickets/11",
        status="open",
        priority="high",
        customer=Customer(email="requester-bob@example.com", name="Requester \u2603 Bob"),
    )


def test_ticket_waiting_on_the_customer_stays_open_with_low_priority() -> None:
    payload = json.loads(_body("zulip.status_changed.json"))
    ticket = snapshot("{status:{from:4,to:6}}", payload)
    assert ticket is not None
    assert (ticket.external_id, ticket.status, ticket.priority) == ("11", "open", "low")
    assert ticket.customer == Customer(email="requester-bob@example.com", name="Requester Bob")


@pytest.mark.parametrize(
    ("status", "expected"),
    [("Open", "open"), ("Pending", "open"), ("Resolved", "archived"), ("Closed", "archived")],
)
def test_freshdesk_status_maps_to_open_or_archived(status: str, expected: str) -> None:
    fields = {**_fields("zulip.ticket_created.json"), "ticket_status": status}
    ticket = snapshot("ticket", {"freshdesk_webhook": fields})
    assert ticket is not None
    assert ticket.status == expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("Low", "low"), ("Medium", "normal"), ("High", "high"), ("Urgent", "urgent")],
)
def test_freshdesk_priority_maps_to_ours(priority: str, expected: str) -> None:
    fields = {**_fields("zulip.ticket_created.json"), "ticket_priority": priority}
    ticket = snapshot("ticket", {"freshdesk_webhook": fields})
    assert ticket is not None
    assert ticket.priority == expected


@pytest.mark.parametrize(
    "tags", ["Roadmap-CSV-Export, needs review,", ["Roadmap-CSV-Export", "needs  review"]]
)
def test_freshdesk_tags_are_lower_cased_without_spaces(tags: str | list[str]) -> None:
    fields = {**_fields("zulip.ticket_created.json"), "ticket_tags": tags}
    ticket = snapshot("ticket", {"freshdesk_webhook": fields})
    assert ticket is not None
    assert ticket.tags == ["roadmap-csv-export", "needs-review"]


def test_freshdesk_company_becomes_the_account() -> None:
    fields = {**_fields("zulip.ticket_created.json"), "ticket_company_name": "Acme Corp"}
    ticket = snapshot("ticket", {"freshdesk_webhook": fields})
    assert ticket is not None
    assert ticket.account_external_id == "Acme Corp"


def test_freshdesk_placeholders_rendered_empty_are_not_known() -> None:
    fields = {"ticket_id": 11, "ticket_subject": "", "ticket_tags": "", "requester_email": ""}
    assert snapshot("ticket", {"freshdesk_webhook": fields}) == TicketSnapshot(
        external_id="11", tags=[]
    )


@pytest.mark.parametrize(
    "payload",
    [{"freshdesk_webhook": {"ticket_id": "", "ticket_subject": "x"}}, {"ticket_id": "11"}],
)
def test_freshdesk_template_without_a_ticket_id_fails(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="freshdesk_webhook"):
        snapshot("ticket", payload)
