"""Support-desk webhooks: one module per vendor, each with a `PROVIDER` and a `snapshot()`.

`PROVIDER` implements `prodops.webhooks.Provider` (verify as the vendor signs, identify the
delivery, answer the setup handshake); `snapshot(event_type, payload)` maps one delivery to a
`TicketSnapshot`, or None for an event type feedback does not act on (stored as `ignored`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from feedback.domain import TicketSnapshot

Snapshot = Callable[[str, Any], TicketSnapshot | None]
