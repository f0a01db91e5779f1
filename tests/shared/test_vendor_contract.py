"""What every vendor's provider promises alike: a body that is no event is malformed, an ordinary
delivery is no setup handshake, any one of the configured secrets verifies, and a delivery signed
with another is refused without the error telling the secret or the expected signature. Signatures
are made as in the fuzz tests (`fuzz.vendors.SIGNERS`); vendor-specific behaviour stays in each
vendor's own test file."""

from __future__ import annotations

import base64
import re

import pytest

from fuzz.vendors import SIGNERS
from prodops.webhooks.provider import InboundWebhook, MalformedWebhookError
from prodops.webhooks.standard import SignatureError
from webhook_kit import MALFORMED, ORDINARY, ROUTING, VENDORS, vendor_webhook

NOW = 1_700_000_000.0
# `whsec_` secrets, as the Standard Webhooks senders need; the others use them as typed.
SECRET = "whsec_" + base64.b64encode(b"the-vendor-contract-secret").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-s-secret").decode()
# What the refusal says, where a vendor's own tests held it to a wording.
REFUSED = {"gitlab": "does not match", "freshdesk": "does not match"}


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


def _signed(vendor: str, secret: str) -> InboundWebhook:
    """An ordinary delivery of `vendor`, signed with `secret` as the vendor signs."""
    body = ORDINARY[vendor.removesuffix("-signed")][0]
    signed = SIGNERS[vendor](secret, body, NOW)
    headers = {**ROUTING.get(vendor, {}), **{k.lower(): v for k, v in signed.items()}}
    return InboundWebhook(headers, body)


def _verify(vendor: str, webhook: InboundWebhook, *secrets: str) -> None:
    VENDORS[vendor.removesuffix("-signed")].verify(webhook, secrets, now=NOW, tolerance=300)


@pytest.mark.parametrize("vendor", SIGNERS)
def test_delivery_signed_with_one_of_the_secrets_verifies(vendor: str) -> None:
    _verify(vendor, _signed(vendor, SECRET), SECRET)
    # A rotation: the new secret and the old one both verify until the old one is removed.
    _verify(vendor, _signed(vendor, SECRET), OTHER_SECRET, SECRET)
    _verify(vendor, _signed(vendor, OTHER_SECRET), OTHER_SECRET, SECRET)


@pytest.mark.parametrize("vendor", SIGNERS)
def test_delivery_signed_with_another_secret_is_refused_without_leaking(vendor: str) -> None:
    with pytest.raises(SignatureError, match=REFUSED.get(vendor)) as refused:
        _verify(vendor, _signed(vendor, OTHER_SECRET), SECRET)
    said = str(refused.value)
    assert SECRET not in said
    expected, sent = _signed(vendor, SECRET).headers, _signed(vendor, OTHER_SECRET).headers
    for name, value in expected.items():
        if value != sent[name]:
            assert value not in said
            # The digest alone too, without the `sha256=`, `sha1=` or `v1,` naming its method.
            assert re.sub(r"^(sha256=|sha1=|v1,)", "", value) not in said
