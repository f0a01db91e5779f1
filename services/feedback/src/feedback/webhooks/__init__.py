"""Support-desk webhooks: one module per vendor, each with a `PROVIDER` and a `snapshot()`.

`PROVIDER` implements `prodops.webhooks.provider.Provider`
(verify as the vendor signs, identify the
delivery, answer the setup handshake); `snapshot(event_type, payload)` maps one delivery to a
`TicketSnapshot`, or None for an event type feedback does not act on (stored as `ignored`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from feedback.domain import TicketSnapshot, normalise_tags
from prodops.webhooks.provider import InboundWebhook
from prodops.webhooks.standard import SignatureError

Snapshot = Callable[[str, Any], TicketSnapshot | None]

_TAG_SEPARATORS = re.compile(r"[\s,]+")


def vendor_tags(names: Iterable[object]) -> list[str]:
    """Vendor tags as feedback tags: lower case, spaces and commas turned into '-'."""
    return normalise_tags(
        [_TAG_SEPARATORS.sub("-", n.strip()) for n in names if isinstance(n, str) and n.strip()]
    )


def signing_headers(webhook: InboundWebhook, vendor: str, *names: str) -> list[str]:
    """The values of the headers a vendor signs with; SignatureError when one is missing."""
    values = [webhook.headers.get(name, "") for name in names]
    if not all(values):
        raise SignatureError(f"missing {vendor} signature headers")
    return values
