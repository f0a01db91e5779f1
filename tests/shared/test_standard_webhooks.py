"""Standard Webhooks signatures: what we verify inbound and sign outbound."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from prodops.webhooks.standard import SignatureError, new_secret, sign, verify


def _verify(
    secrets: Sequence[str],
    signature_header: str,
    *,
    message_id: str = "m",
    timestamp: str = "1000",
    body: bytes = b"x",
    now: float = 1000.0,
    tolerance: float = 300.0,
) -> None:
    verify(
        secrets,
        message_id=message_id,
        timestamp=timestamp,
        signature_header=signature_header,
        body=body,
        now=now,
        tolerance=tolerance,
    )


def test_a_signature_verifies_and_any_change_breaks_it() -> None:
    secret = new_secret()
    signature = sign(secret, message_id="msg_1", timestamp=1_700_000_000, body=b'{"a":1}')
    good = {"message_id": "msg_1", "timestamp": "1700000000", "now": 1_700_000_010.0}
    _verify([secret], signature, body=b'{"a":1}', **good)  # type: ignore[arg-type]
    for changed in ({"body": b'{"a":2}'}, {"message_id": "msg_2"}, {"timestamp": "1700000001"}):
        arguments = {**good, "body": b'{"a":1}', **changed}
        with pytest.raises(SignatureError):
            _verify([secret], signature, **arguments)  # type: ignore[arg-type]


def test_stale_or_garbled_headers_are_refused_without_crashing() -> None:
    secret = new_secret()
    signature = sign(secret, message_id="m", timestamp=1000, body=b"x")
    with pytest.raises(SignatureError, match="tolerance"):
        _verify([secret], signature, now=2000.0)
    for header in ("v1,ünïcödé", "v2,abc", "", "v1,"):
        with pytest.raises(SignatureError):
            _verify([secret], header)
    with pytest.raises(SignatureError):
        _verify([secret], signature, timestamp="soon")


def test_several_signatures_and_several_secrets_allow_rotation() -> None:
    old, new = new_secret(), new_secret()
    header = " ".join(sign(s, message_id="m", timestamp=5, body=b"b") for s in (old, new))
    _verify([new], header, timestamp="5", body=b"b", now=5.0, tolerance=1.0)
    single = sign(old, message_id="m", timestamp=5, body=b"b")
    _verify([new, old], single, timestamp="5", body=b"b", now=5.0, tolerance=1.0)
