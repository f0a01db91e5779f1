"""Freshdesk ticket webhooks (automation rules calling "Trigger webhook").

Freshdesk signs nothing: the admin adds a custom header to the rule's webhook action,
`X-Prodops-Secret: <the source's secret>`, and we compare it in constant time. The body is the
rule's template; we read the "simple" shape, a `freshdesk_webhook` object of placeholders:

    {"freshdesk_webhook": {
        "triggered_event": "{{triggered_event}}", "ticket_id": "{{ticket.id}}",
        "ticket_url": "{{ticket.url}}", "ticket_subject": "{{ticket.subject}}",
        "ticket_description": "{{ticket.description}}", "ticket_status": "{{ticket.status}}",
        "ticket_priority": "{{ticket.priority}}", "ticket_tags": "{{ticket.tags}}",
        "requester_name": "{{ticket.requester.name}}",
        "requester_email": "{{ticket.requester.email}}", "requester_id": "{{ticket.requester.id}}",
        "ticket_company_name": "{{ticket.company.name}}"}}

`ticket_tags` may also be a list; the account comes from the first of `ticket_company_id`,
`ticket_company_name`, `company_id`, `company_name`, `organisation`, `organization`. Freshdesk
sends no delivery id, so deliveries are keyed by the body hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from fastapi.responses import Response

from feedback.domain import TicketSnapshot, normalise_tags
from prodops.contract import Customer, Priority
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    body_hash,
    json_object,
    matches_one,
    signature_header,
)
from prodops.webhooks.standard import SignatureError

SECRET_HEADER = "x-prodops-secret"  # noqa: S105 - a header name, not a secret
_ARCHIVED = {"resolved", "closed"}
_PRIORITIES: dict[str, Priority] = {
    "low": "low",
    "medium": "normal",
    "high": "high",
    "urgent": "urgent",
}
_ACCOUNT_KEYS = (
    "ticket_company_id",
    "ticket_company_name",
    "company_id",
    "company_name",
    "organisation",
    "organization",
)


class Freshdesk:
    """Freshdesk: a shared-secret header, body-hash delivery keys, no handshake."""

    name = "freshdesk"

    def verify(self, webhook: InboundWebhook, secrets: Sequence[str], **_clock: float) -> None:
        """Raise SignatureError unless `X-Prodops-Secret` equals one of `secrets`."""
        offered = signature_header(webhook, SECRET_HEADER)
        if not matches_one(offered, secrets):
            raise SignatureError(f"{SECRET_HEADER} does not match")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The body hash (Freshdesk sends no delivery id) and the template's triggered event."""
        fields = json_object(webhook.body).get("freshdesk_webhook")
        event = fields.get("triggered_event") if isinstance(fields, dict) else None
        event_type = event if isinstance(event, str) and event.strip() else "ticket"
        return Identity(body_hash(webhook), event_type)

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """Freshdesk has no setup request."""
        return None


PROVIDER = Freshdesk()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:  # noqa: ARG001
    """The ticket a Freshdesk rule's template describes; every rule fires about a ticket."""
    fields = payload.get("freshdesk_webhook") if isinstance(payload, dict) else None
    if not isinstance(fields, dict):
        # ValueError, like every mapping failure: the delivery is kept as `failed`.
        raise ValueError("no freshdesk_webhook object: check the rule's template")  # noqa: TRY004
    ticket_id = _text(fields.get("ticket_id"))
    if ticket_id is None:
        raise ValueError("freshdesk_webhook has no ticket_id")
    priority = _text(fields.get("ticket_priority"))
    return TicketSnapshot(
        external_id=ticket_id,
        title=_text(fields.get("ticket_subject")),
        body=_text(fields.get("ticket_description")),
        url=_text(fields.get("ticket_url")),
        status=_status(_text(fields.get("ticket_status"))),
        tags=_tags(fields.get("ticket_tags")),
        priority=None if priority is None else _PRIORITIES.get(priority.lower()),
        customer=_customer(fields),
        account_external_id=next(
            (v for v in (_text(fields.get(k)) for k in _ACCOUNT_KEYS) if v), None
        ),
    )


def _text(value: Any) -> str | None:
    # Placeholders of fields a ticket lacks render as "", which means "not known" here.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _status(status: str | None) -> Literal["open", "archived"] | None:
    if status is None:
        return None
    # Every other status (Pending, Waiting on Customer, custom ones) is still unresolved.
    return "archived" if status.lower() in _ARCHIVED else "open"


def _tags(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return None
    # Freshdesk allows spaces in tags; ours have none (see design.md §4 `roadmap-<key>`).
    return normalise_tags(["-".join(t.split()) for t in value if isinstance(t, str) and t.strip()])


def _customer(fields: dict[str, Any]) -> Customer | None:
    email = _text(fields.get("requester_email"))
    name = _text(fields.get("requester_name"))
    external_id = _text(fields.get("requester_id"))
    if email is None and name is None and external_id is None:
        return None
    return Customer(external_id=external_id, email=email, name=name)
