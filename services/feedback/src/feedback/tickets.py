"""Support-desk deliveries into feedback items: the normaliser the webhook pipeline calls."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import orjson

from feedback import service
from feedback.webhooks import Snapshot, freshdesk, front, generic, helpscout, intercom, zendesk
from prodops.runtime.db import Connection
from prodops.webhooks.intake import Delivery
from prodops.webhooks.provider import Provider

_VENDORS: tuple[ModuleType, ...] = (zendesk, intercom, freshdesk, helpscout, front, generic)
PROVIDERS: dict[str, Provider] = {m.PROVIDER.name: m.PROVIDER for m in _VENDORS}
_SNAPSHOTS: dict[str, Snapshot] = {m.PROVIDER.name: m.snapshot for m in _VENDORS}


async def normalise_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[bool]:
    """The webhook pipeline's normaliser: each of one workspace's deliveries in turn."""
    return [await normalise_delivery(conn, delivery) for delivery in deliveries]


async def normalise_delivery(conn: Connection, delivery: Delivery) -> bool:
    """Apply one stored delivery to its feedback item; False when the event is not for us."""
    payload = orjson.loads(delivery.body)
    snapshot = _SNAPSHOTS[delivery.provider](delivery.event_type, payload)
    if snapshot is None:
        return False
    await service.upsert_from_source(
        conn=conn,
        workspace=delivery.workspace,
        source_id=delivery.source_id,
        provider=delivery.provider,
        snapshot=snapshot,
    )
    return True
