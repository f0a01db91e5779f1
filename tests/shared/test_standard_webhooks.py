"""Standard Webhooks signatures: what we verify inbound and sign outbound."""

from __future__ import annotations

import pytest

from prodops.webhooks.standard import SignatureError, new_secret, sign, verify


def test_a_signature_verifies_and_any_change_breaks_it() -> None:
    secret = new_secret()
    signature = sign(secret, message_id="msg_1", timestamp=1_700_000_000, body=b'{"a":1}')
    good = {
        "message_id": "msg_1",
        "timestamp": "1700000000",
        "now": 1_700_000_010.0,
        "tolerance": 300.0,
    }
    verify([secret], signature_header=signature, body=b'{"a":1}', **good)  # type: ignore[arg-type]
    for changed in ({"body": b'{"a":2}'}, {"message_id": "msg_2"}, {"timestamp": "1700000001"}):
        arguments = {**good, "body": b'{"a":1}', **changed}
        with pytest.raises(SignatureError):
            verify([secret], signature_header=signature, **arguments)  # type: ignore[arg-type]


def test_stale_or_garbled_headers_are_refused_without_crashing() -> None:
    secret = new_secret()
    signature = sign(secret, message_id="m", timestamp=1000, body=b"x")
    with pytest.raises(SignatureError, match="tolerance"):
        verify(
            [secret],
            message_id="m",
            timestamp="1000",
            signature_header=signature,
            body=b"x",
            now=2000.0,
            tolerance=300.0,
        )
    for header in ("v1,ünïcödé", "v2,abc", "", "v1,"):
        with pytest.raises(SignatureError):
            verify(
                [secret],
                message_id="m",
                timestamp="1000",
                signature_header=header,
                body=b"x",
                now=1000.0,
                tolerance=300.0,
            )
    with pytest.raises(SignatureError):
        verify(
            [secret],
            message_id="m",
            timestamp="soon",
            signature_header=signature,
            body=b"x",
            now=1000.0,
            tolerance=300.0,
        )


def test_several_signatures_and_several_secrets_allow_rotation() -> None:
    old, new = new_secret(), new_secret()
    header = " ".join(sign(s, message_id="m", timestamp=5, body=b"b") for s in (old, new))
    verify(
        [new],
        message_id="m",
        timestamp="5",
        signature_header=header,
        body=b"b",
        now=5.0,
        tolerance=1.0,
    )
    single = sign(old, message_id="m", timestamp=5, body=b"b")
    verify(
        [new, old],
        message_id="m",
        timestamp="5",
        signature_header=single,
        body=b"b",
        now=5.0,
        tolerance=1.0,
    )
