"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Our own inbound `generic` webhooks are verified with it, GitLab's newer signing uses it, and
insights signs its outbound webhooks with it. The signature itself is the `standardwebhooks`
reference package's; the timestamp rule is ours, because the package fixes its tolerance at five
minutes of the wall clock, and ours is a setting that tests give a clock of their own.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# The seconds a datetime can hold (the package signs one): far beyond any real timestamp.
_EARLIEST = int(datetime.min.replace(tzinfo=UTC).timestamp())
_LATEST = int(datetime.max.replace(tzinfo=UTC).timestamp()) - 1


class SignatureError(Exception):
    """A webhook's signature, or its timestamp, does not verify."""


def new_secret() -> str:
    """A random `whsec_…` secret (24 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signer(secret: str) -> Webhook:
    """The signer of a secret: keyed by the decoded base64 of a `whsec_` secret, else its bytes."""
    # The package would base64-decode any text; a vendor's plain token (GitLab's) is its bytes.
    return Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    return signer(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)


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
    if not _EARLIEST <= sent_at <= _LATEST or abs(now - sent_at) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    # Bytes, not text: compare_digest raises on non-ASCII text, which a sender controls.
    offered = [s.encode() for s in signature_header.split() if s.startswith("v1,")]
    for secret in secrets_:
        try:
            expected = sign(secret, message_id=message_id, timestamp=sent_at, body=body).encode()
        except EmptyWebhookSecretError:
            continue  # a secret that decodes to no bytes signs nothing a sender could match
        # Compare every candidate in constant time; several signatures allow key rotation.
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureError("no webhook-signature matches")
