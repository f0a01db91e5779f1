"""What every vendor's provider promises alike: a body that is no event is malformed, and an
ordinary delivery is no setup handshake. Vendor-specific behaviour stays in each vendor's file."""

from __future__ import annotations

import pytest

from prodops.webhooks.provider import MalformedWebhookError
from webhook_kit import MALFORMED, ORDINARY, VENDORS, vendor_webhook


def _cases(table: dict[str, tuple[bytes, ...]]) -> list[object]:
    return [
        pytest.param(vendor, body, id=f"{vendor}-{i}")
        for vendor, bodies in table.items()
        for i, body in enumerate(bodies)
    ]


@pytest.mark.parametrize(("vendor", "body"), _cases(MALFORMED))
def test_vendor_body_that_is_not_its_event_is_malformed(vendor: str, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        VENDORS[vendor].identify(vendor_webhook(vendor, body))


@pytest.mark.parametrize(("vendor", "body"), _cases(ORDINARY))
def test_ordinary_vendor_delivery_is_not_a_handshake(vendor: str, body: bytes) -> None:
    assert VENDORS[vendor].handshake(vendor_webhook(vendor, body)) is None
