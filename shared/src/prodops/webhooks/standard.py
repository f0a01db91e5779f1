"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Our own inbound `generic` webhooks are verified with it, GitLab's newer signing uses it, and
insights signs its outbound webhooks with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Far beyond any real timestamp, yet exact as a float.
_LATEST = 2**53


class SignatureError(Exception):
    """A webhook's signature, or its timestamp, does not verify."""


def new_secret() -> str:
    """A random `whsec_…` secret (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded base64 of a `whsec_` secret, else its bytes."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    return secret.encode()


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets_: Sequence[str],
    *,
    message_id: str,
    timestamp: str,
    signature_header: str,
    body: bytes,
    now: float,
    tolerance: float,
) -> None:
    """Raise SignatureError unless one `v1` signature matches one secret, in time."""
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    # The bound first: a caller's integer may be too large for a float (an OverflowError, a 500).
    if abs(sent_at) > _LATEST or abs(now - sent_at) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    # Bytes, not text: compare_digest raises on non-ASCII text, which a sender controls.
    offered = [
        s.removeprefix("v1,").encode() for s in signature_header.split() if s.startswith("v1,")
    ]
    for secret in secrets_:
        expected = sign(secret, message_id=message_id, timestamp=sent_at, body=body)[3:].encode()
        # Compare every candidate in constant time; several signatures allow key rotation.
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureError("no webhook-signature matches")
