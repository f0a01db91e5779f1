"""Our own generic ticket webhook, for tools with no vendor module: Standard Webhooks signed.

A sender POSTs JSON to `/webhooks/generic/<source_id>` with three headers:

    webhook-id: <unique per message; a retry repeats it>
    webhook-timestamp: <Unix seconds; refused when more than the tolerance (5 min) off>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>"> [v1,<…> …]

The HMAC key is the base64-decoded part of the source's `whsec_…` secret (else the secret's bytes);
several space-separated signatures let a sender roll its secret. The body:

    {"type": "ticket.upserted",
     "data": {"external_id": "T-1042",                 # required, 1-200 characters
              "title": "Export to CSV times out", "body": "…", "url": "https://…",
              "status": "open" | "archived",
              "tags": ["export", "roadmap-csv-export"],  # the whole set; or, one by one:
              "tags_added": ["…"], "tags_removed": ["…"],
              "priority": "low" | "normal" | "high" | "urgent",
              "sentiment": -1.0 … 1.0,
              "customer": {"external_id": "…", "email": "…", "name": "…"},
              "account_external_id": "acme",
              "created_at": "2024-05-01T12:00:00Z"}}

Only `external_id` is required; a field omitted or null is not known from this message and keeps
its stored value. Tags are lower-cased, spaces become `-`. Unknown `data` keys fail the delivery
(kept as `failed`, replayable); other `type`s are stored and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response
from pydantic import ValidationError

from feedback.domain import TicketSnapshot, normalise_tags
from prodops.webhooks import standard as standard_webhooks
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    json_object,
    required_header,
)
from prodops.webhooks.standard import SignatureError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
UPSERTED = "ticket.upserted"
_TAG_FIELDS = ("tags", "tags_added", "tags_removed")


class Generic:
    """Our generic webhook: Standard Webhooks signatures, `webhook-id` keys, no handshake."""

    name = "generic"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless one `v1` signature matches one secret, in time."""
        headers = webhook.headers
        for header in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            if header not in headers:
                raise SignatureError(f"missing {header} header")
        standard_webhooks.verify(
            secrets,
            message_id=headers[ID_HEADER],
            timestamp=headers[TIMESTAMP_HEADER],
            signature_header=headers[SIGNATURE_HEADER],
            body=webhook.body,
            now=now,
            tolerance=tolerance,
        )

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The sender's `webhook-id` and the body's `type`."""
        message_id = required_header(webhook, ID_HEADER)
        event_type = json_object(webhook.body).get("type")
        if not isinstance(event_type, str) or not event_type.strip():
            raise MalformedWebhookError("body has no string `type`")
        return Identity(message_id, event_type)

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """Our generic webhook has no setup request."""
        return None


PROVIDER = Generic()


def snapshot(event_type: str, payload: Any) -> TicketSnapshot | None:
    """The ticket a `ticket.upserted` message carries in `data`; None for other types."""
    if event_type != UPSERTED:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ValueError(f"{UPSERTED} has no `data` object")  # noqa: TRY004
    try:
        return TicketSnapshot.model_validate(_with_normalised_tags(data))
    except ValidationError as exc:
        # A plain ValueError keeps the stored error readable: "ValueError: <what was wrong>".
        raise ValueError(f"invalid {UPSERTED} data: {exc}") from exc


def _with_normalised_tags(data: dict[str, Any]) -> dict[str, Any]:
    normalised = dict(data)
    for field in _TAG_FIELDS:
        tags = data.get(field)
        # Anything but a list of strings is left for the model to reject with a clear message.
        if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
            normalised[field] = normalise_tags(["-".join(t.split()) for t in tags if t.strip()])
    return normalised
